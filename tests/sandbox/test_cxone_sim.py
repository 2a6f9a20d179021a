"""The CXone simulator over real HTTP: the contract's API, its control API and fault switches."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox import defaults
from sandbox.cxone_sim import CxoneSimConfig, config_from_env, create_app
from sandbox.server import RunningServer, serve_in_thread

API = "/api/v2/open-messaging"
CUSTOMER = "+14155559876"
BUSINESS = "+18005550100"


class Sim:
    """A plain-``requests`` client for the simulator: API calls carry the bearer token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.token = ""

    def fetch_token(self, client_id: str = defaults.CXONE_CLIENT_ID,
                    secret: str = defaults.CXONE_CLIENT_SECRET,
                    grant_type: str | None = "client_credentials") -> requests.Response:
        data = {"grant_type": grant_type} if grant_type else {}
        return self.http.post(f"{self.url}/auth/token", auth=(client_id, secret), data=data,
                              timeout=5)

    def login(self) -> None:
        response = self.fetch_token()
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {self.token}"})
        kwargs.setdefault("timeout", 5)
        return self.http.request(method, f"{self.url}{API}{path}", headers=headers, **kwargs)

    def poll(self, **params: Any) -> requests.Response:
        params.setdefault("channel", "SMS")
        params.setdefault("direction", "OUTBOUND")
        return self.api("GET", "/messages", params=params)

    def put_status(self, message_id: str, body: Any) -> requests.Response:
        return self.api("PUT", f"/messages/{message_id}", json=body)

    def control(self, method: str, path: str, expect: int | None = None,
                **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_sandbox{path}", timeout=5, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.text
            return response.json()
        return response

    def reply(self, **item: Any) -> dict[str, Any]:
        item.setdefault("from", BUSINESS)
        item.setdefault("to", CUSTOMER)
        item.setdefault("body", "Your appointment is confirmed.")
        return self.control("POST", "/replies", 201, json=item)["items"][0]

    def conversation(self, customer: str = CUSTOMER, business: str = BUSINESS) -> dict[str, Any]:
        body = {"customerNumber": customer, "businessNumber": business}
        return self.control("POST", "/conversations", 201, json=body)

    def fault(self, **rule: Any) -> dict[str, Any]:
        return self.control("POST", "/faults", 201, json=rule)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app(CxoneSimConfig()))
    yield running
    running.stop()


@pytest.fixture
def sim(server: RunningServer) -> Sim:
    client = Sim(server.url)
    client.control("POST", "/reset", 200)
    client.login()
    return client


def sent(sid: str = "SM" + "a" * 32) -> dict[str, Any]:
    return {"status": "SENT", "externalId": sid}


def failed(status: str = "FAILED") -> dict[str, Any]:
    return {"status": status, "reason": {"code": "30003", "message": "Unreachable handset"}}


def drain(sim: Sim, cursor: str | None, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Poll until an empty page; returns every item and the last cursor."""
    items: list[dict[str, Any]] = []
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = sim.poll(**query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert isinstance(page["cursor"], str) and page["cursor"]
        cursor = page["cursor"]
        if not page["items"]:
            return items, cursor
        items.extend(page["items"])


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- config ---------------------------------------------------------------------------


def test_config_from_env_reads_the_three_variables() -> None:
    config = config_from_env(
        {"CXONE_CLIENT_ID": "id", "CXONE_CLIENT_SECRET": "secret", "CXONE_SIM_TOKEN_TTL_S": "5"}
    )
    assert (config.client_id, config.client_secret, config.token_ttl_s) == ("id", "secret", 5)
    assert config_from_env({}) == CxoneSimConfig()
    with pytest.raises(ValueError, match="CXONE_SIM_TOKEN_TTL_S"):
        config_from_env({"CXONE_SIM_TOKEN_TTL_S": "soon"})


# --- tokens ---------------------------------------------------------------------------


def test_token_flow_issues_a_bearer_token_the_api_accepts(sim: Sim) -> None:
    response = sim.fetch_token()
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    sim.token = token["access_token"]
    assert sim.poll().status_code == 200


def test_token_rejects_bad_credentials(sim: Sim) -> None:
    response = sim.fetch_token(secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    no_auth = sim.http.post(f"{sim.url}/auth/token", data={"grant_type": "client_credentials"})
    assert no_auth.status_code == 401


def test_token_rejects_other_grants(sim: Sim) -> None:
    response = sim.fetch_token(grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert sim.fetch_token(grant_type=None).status_code == 400


def test_api_needs_a_live_bearer_token(sim: Sim) -> None:
    assert sim.api("GET", "/messages", headers={}).status_code == 401
    bogus = sim.api("GET", "/messages", headers={"Authorization": "Bearer nope"})
    assert bogus.status_code == 401
    assert bogus.json()["error"] == "invalid_token"
    assert sim.poll().status_code == 200

    assert sim.control("POST", "/expire-tokens", 200)["expired"] >= 1
    expired = sim.poll()
    assert expired.status_code == 401
    assert "invalid_token" in expired.headers["WWW-Authenticate"]
    sim.login()
    assert sim.poll().status_code == 200


def test_token_expires_after_its_ttl(sim: Sim) -> None:
    sim.control("POST", "/config", 200, json={"token_ttl_s": 1})
    response = sim.fetch_token()
    assert response.json()["expires_in"] == 1
    sim.token = response.json()["access_token"]
    assert sim.poll().status_code == 200
    time.sleep(1.1)
    assert sim.poll().status_code == 401


# --- the poll feed ----------------------------------------------------------------------


def test_poll_pages_through_the_feed_with_cursors(sim: Sim) -> None:
    ids = [sim.reply(body=f"reply {n}")["id"] for n in range(5)]
    pages, cursor = [], None
    for _ in range(3):
        page = sim.poll(pageSize=2, **({"cursor": cursor} if cursor else {})).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["cursor"]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]

    empty = sim.poll(pageSize=2, cursor=cursor).json()
    assert empty["items"] == []
    assert empty["cursor"]
    again = sim.poll(pageSize=2, cursor=empty["cursor"]).json()
    assert again == {"items": [], "cursor": empty["cursor"]}

    late = sim.reply(body="one more")
    resumed = sim.poll(pageSize=2, cursor=empty["cursor"]).json()
    assert [item["id"] for item in resumed["items"]] == [late["id"]]


def test_poll_items_carry_exactly_the_contract_fields(sim: Sim) -> None:
    reply = sim.reply(body="Hello")
    [item] = sim.poll().json()["items"]
    assert item == reply
    assert list(item) == ["id", "conversationId", "direction", "channel", "from", "to", "body",
                          "status", "createdTime"]
    assert item["id"].startswith("msg_")
    assert item["conversationId"].startswith("conv_")
    assert (item["direction"], item["channel"], item["status"]) == ("OUTBOUND", "SMS", "PENDING")
    assert datetime.strptime(item["createdTime"], "%Y-%m-%dT%H:%M:%SZ")


def test_poll_rejects_bad_parameters(sim: Sim) -> None:
    sim.reply()
    cursor = sim.poll().json()["cursor"]
    assert sim.poll(pageSize=100).status_code == 200
    too_big = sim.poll(pageSize=101)
    assert too_big.status_code == 400
    assert "pageSize" in too_big.json()["message"]
    assert sim.poll(pageSize=0).status_code == 400
    assert sim.poll(pageSize="ten").status_code == 400
    assert sim.poll(direction="SIDEWAYS").status_code == 400
    past_end = json.dumps({"e": json.loads(_unb64(cursor))["e"], "p": 99}).encode()
    for garbage in ("garbage!", "bm90IGpzb24", _b64(b'{"x": 1}'), _b64(past_end)):
        response = sim.poll(cursor=garbage)
        assert response.status_code == 400, garbage
        assert "cursor" in response.json()["message"]


def test_poll_filters_by_direction(sim: Sim) -> None:
    reply = sim.reply()
    posted = sim.api("POST", f"/conversations/{reply['conversationId']}/messages",
                     json=_inbound(externalId="SM1")).json()
    outbound, _ = drain(sim, None)
    inbound, _ = drain(sim, None, direction="INBOUND")
    assert [m["id"] for m in outbound] == [reply["id"]]
    assert [m["id"] for m in inbound] == [posted["id"]]


def test_out_of_order_creation_is_seen_once_by_a_cursor_poller(sim: Sim) -> None:
    _, cursor = drain(sim, None)
    early = sim.reply(body="created first, visible late", visibleAfterMs=400)
    later = sim.reply(body="created second")
    assert early["createdTime"] <= later["createdTime"]

    seen, cursor = drain(sim, cursor)
    assert [m["id"] for m in seen] == [later["id"]]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and early["id"] not in {m["id"] for m in seen}:
        time.sleep(0.05)
        more, cursor = drain(sim, cursor)
        seen.extend(more)
    assert [m["id"] for m in seen] == [later["id"], early["id"]]
    assert drain(sim, cursor)[0] == []
    # From the start, the feed is in visibility order, not creation order.
    assert [m["id"] for m in drain(sim, None)[0]] == [later["id"], early["id"]]


def test_a_reply_created_in_the_past_joins_the_end_of_the_feed(sim: Sim) -> None:
    first = sim.reply(body="now")
    backdated = sim.reply(body="old", createdTime="2024-06-15T14:30:00Z")
    assert backdated["createdTime"] == "2024-06-15T14:30:00Z"
    assert [m["id"] for m in drain(sim, None)[0]] == [first["id"], backdated["id"]]


def test_stale_filter_pages_independently_of_the_poll_cursor(sim: Sim) -> None:
    old = iso(datetime.now(UTC) - timedelta(hours=1))
    stale = [sim.reply(body=f"stale {n}", createdTime=old)["id"] for n in range(3)]
    fresh = sim.reply(body="fresh")["id"]
    stale_sent = sim.reply(body="stale but sent", createdTime=old)["id"]
    assert sim.put_status(stale_sent, sent()).status_code == 200

    first_page = sim.poll(pageSize=2).json()
    assert [m["id"] for m in first_page["items"]] == stale[:2]

    cutoff = iso(datetime.now(UTC) - timedelta(minutes=15))
    found, cursor = [], None
    while True:
        params = {"status": "PENDING", "createdBefore": cutoff, "pageSize": 2}
        page = sim.poll(**params, **({"cursor": cursor} if cursor else {})).json()
        if not page["items"]:
            break
        found.extend(m["id"] for m in page["items"])
        cursor = page["cursor"]
    assert found == stale

    rest, _ = drain(sim, first_page["cursor"], pageSize=2)
    assert [m["id"] for m in rest] == [stale[2], fresh, stale_sent]
    assert sim.poll(createdBefore="yesterday").status_code == 400


def test_a_cursor_from_before_a_reset_starts_over(sim: Sim) -> None:
    sim.reply()
    _, cursor = drain(sim, None)
    sim.control("POST", "/reset", 200)
    after = sim.reply(body="after the reset")
    assert [m["id"] for m in drain(sim, cursor)[0]] == [after["id"]]


# --- status updates -------------------------------------------------------------------


def test_put_status_updates_and_records_every_attempt(sim: Sim) -> None:
    message_id = sim.reply()["id"]
    bad_bodies: list[Any] = [
        {"status": "PENDING"},
        {"status": "UNDIVERABLE", "reason": {"code": "1", "message": "x"}},
        {},
        {"status": "FAILED"},
        {"status": "SENT"},
        {"status": "DELIVERED", "deliveryReceipt": {"status": "DELIVERED", "timestamp": "never"}},
        ["not", "an", "object"],
    ]
    for body in bad_bodies:
        response = sim.put_status(message_id, body)
        assert response.status_code == 400, body
        assert response.json()["message"]
    assert sim.control("GET", f"/messages/{message_id}", 200)["status"] == "PENDING"

    assert sim.put_status(message_id, sent()).json()["status"] == "SENT"
    receipt = {"status": "DELIVERED",
               "deliveryReceipt": {"status": "DELIVERED", "timestamp": "2024-06-15T14:30:45Z"}}
    ok = sim.put_status(message_id, receipt)
    assert ok.status_code == 200
    assert ok.json()["status"] == "DELIVERED"
    assert sim.put_status(message_id, failed()).status_code == 409
    assert sim.put_status(message_id, receipt).status_code == 409
    assert sim.put_status("msg_unknown", receipt).status_code == 404

    message = sim.control("GET", f"/messages/{message_id}", 200)
    assert message["status"] == "DELIVERED"
    updates = message["statusUpdates"]
    assert [u["response_status"] for u in updates] == [400] * 7 + [200, 200, 409, 409]
    assert [u["body"] for u in updates] == [*bad_bodies, sent(), receipt, failed(), receipt]
    assert all(u["at"].endswith("Z") for u in updates)
    everything = sim.control("GET", "/status-updates", 200)["items"]
    assert [(u["messageId"], u["response_status"]) for u in everything][-3:] == [
        (message_id, 409), (message_id, 409), ("msg_unknown", 404)
    ]


def test_undeliverable_needs_a_reason_and_is_final(sim: Sim) -> None:
    message_id = sim.reply()["id"]
    assert sim.put_status(message_id, {"status": "UNDELIVERABLE"}).status_code == 400
    assert sim.put_status(message_id, failed("UNDELIVERABLE")).status_code == 200
    assert sim.put_status(message_id, sent()).status_code == 409
    listed = sim.control("GET", "/messages", 200, params={"status": "UNDELIVERABLE"})["items"]
    assert [m["id"] for m in listed] == [message_id]


# --- conversations --------------------------------------------------------------------


def test_conversations_create_get_and_close(sim: Sim) -> None:
    body = {"channel": "SMS", "customerNumber": CUSTOMER, "businessNumber": BUSINESS}
    created = sim.api("POST", "/conversations", json=body)
    assert created.status_code == 201
    conversation = created.json()
    assert conversation["id"].startswith("conv_")
    assert (conversation["status"], conversation["customerNumber"],
            conversation["businessNumber"]) == ("OPEN", CUSTOMER, BUSINESS)
    fetched = sim.api("GET", f"/conversations/{conversation['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == conversation

    closed = sim.control("POST", f"/conversations/{conversation['id']}/close", 200)
    assert closed["status"] == "CLOSED"
    assert sim.api("GET", f"/conversations/{conversation['id']}").json()["status"] == "CLOSED"
    assert sim.api("GET", "/conversations/conv_nope").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"customerNumber": CUSTOMER, "businessNumber": BUSINESS},
        {"channel": "EMAIL", "customerNumber": CUSTOMER, "businessNumber": BUSINESS},
        {"channel": "SMS", "customerNumber": "4155559876", "businessNumber": BUSINESS},
        {"channel": "SMS", "customerNumber": CUSTOMER},
        "not json",
    ],
)
def test_conversation_create_rejects_bad_bodies(sim: Sim, body: Any) -> None:
    response = sim.api("POST", "/conversations", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert sim.control("GET", "/conversations", 200)["items"] == []


def test_control_lists_conversations_with_both_directions_in_order(sim: Sim) -> None:
    reply = sim.reply(body="agent says hi")
    conversation_id = reply["conversationId"]
    inbound = sim.api("POST", f"/conversations/{conversation_id}/messages",
                      json=_inbound(externalId="SM2")).json()
    second = sim.reply(body="agent again")
    assert second["conversationId"] == conversation_id  # the OPEN one is reused
    [listed] = sim.control("GET", "/conversations", 200)["items"]
    assert [m["id"] for m in listed["messages"]] == [reply["id"], inbound["id"], second["id"]]
    assert [m["direction"] for m in listed["messages"]] == ["OUTBOUND", "INBOUND", "OUTBOUND"]

    sim.control("POST", f"/conversations/{conversation_id}/close", 200)
    assert sim.reply(body="after close")["conversationId"] != conversation_id


# --- inbound --------------------------------------------------------------------------


def test_inbound_post_creates_a_message(sim: Sim) -> None:
    conversation = sim.conversation()
    attachments = [{"url": "https://example.com/a.jpg", "contentType": "image/jpeg"}]
    response = sim.api("POST", f"/conversations/{conversation['id']}/messages",
                       json=_inbound(externalId="SM3", attachments=attachments))
    assert response.status_code == 201
    posted = response.json()
    assert posted["id"].startswith("msg_")
    assert posted["conversationId"] == conversation["id"]
    stored = sim.control("GET", f"/messages/{posted['id']}", 200)
    assert (stored["direction"], stored["from"], stored["to"]) == ("INBOUND", CUSTOMER, BUSINESS)
    assert stored["externalId"] == "SM3"
    assert stored["attachments"] == attachments


def test_inbound_duplicate_external_id_returns_the_first_message(sim: Sim) -> None:
    first_conv, second_conv = sim.conversation(), sim.conversation()
    post = _inbound(externalId="SMdup", allowDuplicateMessages=False)
    first = sim.api("POST", f"/conversations/{first_conv['id']}/messages", json=post)
    again = sim.api("POST", f"/conversations/{first_conv['id']}/messages", json=post)
    elsewhere = sim.api("POST", f"/conversations/{second_conv['id']}/messages", json=post)
    assert first.status_code == 201
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    # The duplicate check spans the tenant, not one conversation.
    assert (elsewhere.status_code, elsewhere.json()["id"]) == (200, first.json()["id"])
    allowed = sim.api("POST", f"/conversations/{first_conv['id']}/messages",
                      json=_inbound(externalId="SMdup"))
    assert allowed.status_code == 201
    assert allowed.json()["id"] != first.json()["id"]

    log = sim.control("GET", "/inbound", 200)["items"]
    assert [(p["response_status"], p["duplicate"]) for p in log] == [
        (201, False), (200, True), (200, True), (201, False)
    ]
    assert [p["messageId"] for p in log][:3] == [first.json()["id"]] * 3
    assert log[0]["body"] == post
    assert log[2]["conversationId"] == second_conv["id"]


def test_inbound_to_a_closed_or_unknown_conversation(sim: Sim) -> None:
    conversation = sim.conversation()
    path = f"/conversations/{conversation['id']}/messages"
    posted = sim.api("POST", path, json=_inbound(externalId="SM4", allowDuplicateMessages=False))
    sim.control("POST", f"/conversations/{conversation['id']}/close", 200)

    closed = sim.api("POST", path, json=_inbound(externalId="SM5"))
    assert closed.status_code == 409
    assert "CLOSED" in closed.json()["message"]
    # A retry of a post that went through before the close gets the first message back.
    retry = sim.api("POST", path, json=_inbound(externalId="SM4", allowDuplicateMessages=False))
    assert (retry.status_code, retry.json()["id"]) == (200, posted.json()["id"])
    unknown = sim.api("POST", "/conversations/conv_nope/messages", json=_inbound())
    assert unknown.status_code == 404
    log = sim.control("GET", "/inbound", 200)["items"]
    assert [p["response_status"] for p in log] == [201, 409, 200, 404]


@pytest.mark.parametrize(
    "change",
    [
        {"from": "+14155550000"},
        {"to": "+18005550101"},
        {"direction": "OUTBOUND"},
        {"channel": None},
        {"body": ""},
        {"allowDuplicateMessages": False},
        {"attachments": [{"url": "ftp://x", "contentType": "image/png"}]},
    ],
)
def test_inbound_rejects_bad_bodies(sim: Sim, change: dict[str, Any]) -> None:
    conversation = sim.conversation()
    body = {key: value for key, value in {**_inbound(), **change}.items() if value is not None}
    response = sim.api("POST", f"/conversations/{conversation['id']}/messages", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert sim.control("GET", "/messages", 200)["items"] == []


# --- fault switches -------------------------------------------------------------------


def test_429_with_retry_after_for_count_requests(sim: Sim) -> None:
    sim.fault(target="poll", status=429, count=2, retry_after=3)
    first, second, third = sim.poll(), sim.poll(), sim.poll()
    assert [r.status_code for r in (first, second, third)] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert "Retry-After" not in third.headers
    assert sim.control("GET", "/stats", 200)["poll"] == 3
    [rule] = sim.control("GET", "/faults", 200)["items"]
    assert (rule["fired"], rule["remaining"]) == (2, 0)
    statuses = [r["response_status"] for r in sim.control("GET", "/requests", 200,
                                                         params={"endpoint": "poll"})["items"]]
    assert statuses == [429, 429, 200]


def test_5xx_on_put_leaves_the_message_unchanged(sim: Sim) -> None:
    message_id = sim.reply()["id"]
    sim.fault(target="put", status=503, count=1)
    assert sim.put_status(message_id, sent()).status_code == 503
    assert sim.control("GET", f"/messages/{message_id}", 200)["status"] == "PENDING"
    assert sim.put_status(message_id, sent()).status_code == 200
    updates = sim.control("GET", f"/messages/{message_id}", 200)["statusUpdates"]
    assert [u["response_status"] for u in updates] == [503, 200]


def test_a_fault_after_handling_applies_the_change_but_loses_the_answer(sim: Sim) -> None:
    message_id = sim.reply()["id"]
    sim.fault(target="put", status=500, count=1, after=True)
    assert sim.put_status(message_id, failed()).status_code == 500
    assert sim.control("GET", f"/messages/{message_id}", 200)["status"] == "FAILED"
    assert sim.put_status(message_id, failed()).status_code == 409


def test_slow_responses(sim: Sim) -> None:
    sim.fault(target="poll", delay_ms=300, count=2)
    started = time.monotonic()
    assert sim.poll().status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        sim.api("GET", "/messages", timeout=0.1)
    started = time.monotonic()
    assert sim.poll().status_code == 200
    assert time.monotonic() - started < 0.3


def test_401_on_the_token_endpoint_and_on_the_api(sim: Sim) -> None:
    sim.fault(target="token", status=401, count=1)
    refused = sim.fetch_token()
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert sim.fetch_token().status_code == 200

    sim.fault(target="poll", status=401, count=1)
    revoked = sim.poll()
    assert (revoked.status_code, revoked.json()["error"]) == (401, "invalid_token")
    assert sim.poll().status_code == 200


def test_any_target_and_clearing_the_faults(sim: Sim) -> None:
    sim.fault(target="any", status=500)
    assert sim.fetch_token().status_code == 500
    assert sim.poll().status_code == 500
    assert sim.api("GET", "/conversations/conv_x").status_code == 500
    assert sim.control("DELETE", "/faults", 200) == {"removed": 1}
    assert sim.poll().status_code == 200


def test_a_fault_with_probability_zero_never_fires(sim: Sim) -> None:
    sim.fault(target="poll", status=500, probability=0)
    assert [sim.poll().status_code for _ in range(5)] == [200] * 5
    assert sim.control("GET", "/faults", 200)["items"][0]["fired"] == 0


def test_a_dropped_connection(sim: Sim) -> None:
    sim.fault(target="poll", drop=True, count=1)
    with pytest.raises(requests.ConnectionError):
        sim.poll()
    assert sim.poll().status_code == 200
    polls = sim.control("GET", "/requests", 200, params={"endpoint": "poll"})["items"]
    assert [r["response_status"] for r in polls] == [None, 200]


@pytest.mark.parametrize(
    "rule",
    [
        {"target": "everything", "status": 500},
        {"target": "poll"},
        {"target": "poll", "status": 200},
        {"target": "poll", "status": 500, "drop": True},
        {"target": "poll", "status": 500, "probability": 2},
        {"target": "poll", "status": 500, "count": 0},
        {"target": "poll", "status": 500, "colour": "red"},
    ],
)
def test_bad_fault_rules_are_rejected(sim: Sim, rule: dict[str, Any]) -> None:
    response = sim.control("POST", "/faults", json=rule)
    assert response.status_code == 400
    assert response.json()["message"]
    assert sim.control("GET", "/faults", 200)["items"] == []


def test_stats_count_requests_per_endpoint(sim: Sim) -> None:
    conversation_id = sim.api("POST", "/conversations", json={
        "channel": "SMS", "customerNumber": CUSTOMER, "businessNumber": BUSINESS,
    }).json()["id"]
    sim.api("GET", f"/conversations/{conversation_id}")
    sim.api("POST", f"/conversations/{conversation_id}/messages", json=_inbound())
    sim.put_status("msg_x", sent())
    sim.poll()
    sim.poll()
    assert sim.control("GET", "/stats", 200) == {
        "token": 1, "poll": 2, "put": 1, "conversation_get": 1, "conversation_create": 1,
        "inbound": 1,
    }


# --- replies and malformed items ------------------------------------------------------


def test_malformed_raw_items_enter_the_feed_as_given(sim: Sim) -> None:
    conversation = sim.conversation()
    base = {"conversationId": conversation["id"], "direction": "OUTBOUND", "channel": "SMS",
            "from": BUSINESS, "status": "PENDING", "createdTime": "2024-06-15T14:30:00Z"}
    raws = [
        {**base, "to": CUSTOMER, "body": "no id"},
        {**base, "id": "msg_bad_to", "to": "555-1234", "body": "bad number"},
        {**base, "id": "msg_empty", "to": CUSTOMER, "body": ""},
    ]
    created = sim.control("POST", "/replies", 201, json={"items": [{"raw": r} for r in raws]})
    assert created["items"] == raws
    assert drain(sim, None)[0] == raws

    assert sim.put_status("msg_bad_to", failed()).status_code == 200
    assert sim.control("GET", "/messages/msg_bad_to", 200)["status"] == "FAILED"
    listed = sim.control("GET", "/messages", 200)["items"]
    assert [m["id"] for m in listed] == ["msg_bad_to", "msg_empty"]


def test_a_duplicate_feed_entry(sim: Sim) -> None:
    original = sim.reply()
    sim.control("POST", "/replies", 201, json={"duplicateOf": original["id"]})
    assert [m["id"] for m in drain(sim, None)[0]] == [original["id"], original["id"]]


def test_replies_batch_is_checked_before_anything_is_created(sim: Sim) -> None:
    good = {"from": BUSINESS, "to": CUSTOMER, "body": "fine"}
    bad = {"from": BUSINESS, "to": "415", "body": "bad"}
    response = sim.control("POST", "/replies", json={"items": [good, bad]})
    assert response.status_code == 400
    assert "items[1].to" in response.json()["message"]
    assert sim.control("GET", "/messages", 200)["items"] == []

    sim.reply(id="msg_custom")
    assert sim.control("POST", "/replies", json={**good, "id": "msg_custom"}).status_code == 409
    unknown = sim.control("POST", "/replies", json={**good, "conversationId": "conv_nope"})
    assert unknown.status_code == 404
    assert sim.control("POST", "/replies", json={**good, "visible": 1}).status_code == 400


def test_replies_into_a_named_conversation_use_its_numbers(sim: Sim) -> None:
    conversation = sim.conversation(customer="+14155550123", business="+18005550101")
    created = sim.control("POST", "/replies", 201, json={"items": [
        {"conversationId": conversation["id"], "body": "one"},
        {"conversationId": conversation["id"], "body": "two", "status": "SENT"},
    ]})["items"]
    assert [(m["from"], m["to"], m["status"]) for m in created] == [
        ("+18005550101", "+14155550123", "PENDING"), ("+18005550101", "+14155550123", "SENT"),
    ]
    assert {m["conversationId"] for m in created} == {conversation["id"]}


def test_a_reply_joins_the_newest_open_conversation_of_its_pair(sim: Sim) -> None:
    older, newer = sim.conversation(), sim.conversation()
    other = sim.conversation(customer="+14155550123")
    assert sim.reply()["conversationId"] == newer["id"]
    sim.control("POST", f"/conversations/{newer['id']}/close", 200)
    assert sim.reply()["conversationId"] == older["id"]
    sim.control("POST", f"/conversations/{older['id']}/close", 200)
    fresh = sim.reply()["conversationId"]
    assert fresh not in {older["id"], newer["id"], other["id"]}
    assert sim.reply()["conversationId"] == fresh
    assert sim.reply(to="+14155550123")["conversationId"] == other["id"]
    assert sim.reply(to="+14155550123", **{"from": "+18005550101"})["conversationId"] not in {
        other["id"], fresh}
    sim.control("POST", "/reset", 200)
    assert sim.reply()["conversationId"] != fresh


def test_a_bulk_load_gives_each_new_pair_its_own_conversation(sim: Sim) -> None:
    items = [{"from": BUSINESS, "to": f"+1415{n:07d}", "body": f"bulk {n}"}
             for n in range(2000)]
    created = sim.control("POST", "/replies", 201, json={"items": items})["items"]
    conversations = [m["conversationId"] for m in created]
    assert len(set(conversations)) == len(items)
    again = sim.reply(to="+14150001234")
    assert again["conversationId"] == conversations[1234]
    assert len(sim.control("GET", "/conversations", 200)["items"]) == len(items)


def test_reset_forgets_everything_but_tokens(sim: Sim) -> None:
    sim.reply()
    sim.fault(target="poll", status=500)
    sim.control("POST", "/config", 200, json={"token_ttl_s": 5})
    sim.control("POST", "/reset", 200)
    assert sim.poll().json()["items"] == []
    assert sim.control("GET", "/messages", 200)["items"] == []
    assert sim.control("GET", "/faults", 200)["items"] == []
    assert sim.control("GET", "/config", 200)["token_ttl_s"] == 3600
    assert sim.control("GET", "/stats", 200)["poll"] == 1


def _inbound(**overrides: Any) -> dict[str, Any]:
    return {"direction": "INBOUND", "channel": "SMS", "from": CUSTOMER, "to": BUSINESS,
            "body": "Can we move it to 11?", **overrides}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- attachments ----------------------------------------------------------------------


def test_reply_attachments_can_point_at_files_that_need_the_token(sim: Sim) -> None:
    served = sim.control("POST", "/files", 201, json={
        "name": "label.pdf", "content_type": "application/pdf", "size": 2048})
    reply = sim.reply(body="", attachments=[
        {"file": "label.pdf"}, {"url": "https://cdn.example/a.jpg", "contentType": "image/jpeg"}])

    [item] = sim.poll().json()["items"]
    without = sim.http.get(served["url"], timeout=5)
    with_token = sim.http.get(served["url"], headers={"Authorization": f"Bearer {sim.token}"},
                              timeout=5)

    assert item == reply and item["attachments"] == [
        {"url": served["url"], "contentType": "application/pdf"},
        {"url": "https://cdn.example/a.jpg", "contentType": "image/jpeg"}]
    assert served["url"] == f"{sim.url}/_sandbox/files/label.pdf" and served["require_token"]
    assert without.status_code == 401
    assert with_token.status_code == 200 and len(with_token.content) == 2048
    assert with_token.headers["Content-Type"] == "application/pdf"
    fetches = sim.control("GET", "/files", 200)["items"][0]["fetches"]
    assert [(f["status"], f["with_token"]) for f in fetches] == [(401, False), (200, True)]


@pytest.mark.parametrize("attachments", [
    [{"file": "missing.pdf"}], [{"url": "ftp://x/a", "contentType": "image/jpeg"}],
    [{"url": "https://x/a"}], [{"file": "a"}] * 11, "label.pdf",
])
def test_bad_reply_attachments_are_refused(sim: Sim, attachments: Any) -> None:
    response = sim.control("POST", "/replies", json={
        "from": BUSINESS, "to": CUSTOMER, "body": "x", "attachments": attachments})
    assert response.status_code in (400, 404)
    assert sim.poll().json()["items"] == []


def test_inbound_attachments_are_readable_through_the_control_api(sim: Sim) -> None:
    conversation = sim.conversation()
    pictures = [{"url": "https://gw.example/media/1", "contentType": "image/jpeg"},
                {"url": "https://gw.example/media/2", "contentType": "image/png"}]
    posted = sim.api("POST", f"/conversations/{conversation['id']}/messages",
                     json=_inbound(attachments=pictures, body=""))
    assert posted.status_code == 201, posted.text

    items = sim.control("GET", "/attachments", 200)["items"]
    assert [(i["url"], i["contentType"]) for i in items] == [
        (p["url"], p["contentType"]) for p in pictures]
    assert {i["messageId"] for i in items} == {posted.json()["id"]}
    assert items[0]["conversationId"] == conversation["id"]
