"""The DFO 3.0 simulator over real HTTP: identity, the DFO API, the agent side, limits, faults."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask, Response, jsonify, request

from sandbox import defaults
from sandbox.dfo_sim import DfoSimConfig, config_from_env, create_app, parse_channels
from sandbox.server import RunningServer, serve_in_thread

CHANNEL, BUSINESS = next(iter(defaults.DFO_CHANNELS.items()))
CUSTOMER = "+14155559876"
THREAD = f"{BUSINESS[1:]}_{CUSTOMER[1:]}"
BYOC = (defaults.BYOC_CLIENT_ID, defaults.BYOC_CLIENT_SECRET)


class FakeGateway:
    """The gateway's BYOC callbacks, as small as a test needs: 401 first, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.reject_first = True
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.app = Flask("fake-gateway")
        self.app.add_url_rule("/byoc/1.0/token", view_func=self._token, methods=["POST"])
        self.app.add_url_rule("/byoc/2.0/channel/<channel_id>/outbound", view_func=self._reply,
                              methods=["POST"])
        self.app.add_url_rule("/byoc/1.0/posts/<post_id>/messages", view_func=self._legacy,
                              methods=["POST"])
        self.server: RunningServer | None = None

    def _record(self, kind: str) -> None:
        with self._lock:
            self.requests.append({"kind": kind, "path": request.path,
                                  "auth": request.headers.get("Authorization"),
                                  "json": request.get_json(silent=True),
                                  "form": request.form.to_dict()})

    def _token(self) -> Response:
        self._record("token")
        fields = request.get_json(silent=True) or request.form.to_dict()
        if (fields.get("client_id"), fields.get("client_secret")) != BYOC:
            return Response('{"error": "invalid_client"}', 401, mimetype="application/json")
        token = f"gw-token-{next(self._ids)}"
        self.tokens.add(token)
        return jsonify({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _authorized(self) -> bool:
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.reject_first or token not in self.tokens:
            self.reject_first = False
            return False
        return True

    def _reply(self, channel_id: str) -> Response:
        self._record("reply")
        if not self._authorized():
            return Response("", 401, headers={"WWW-Authenticate": "Bearer"})
        body = request.get_json()
        thread = body["thread"]["idOnExternalPlatform"]
        customer = body["endUserRecipients"][0]["idOnExternalPlatform"]
        return jsonify({"message": {"idOnExternalPlatform": self._id(body),
                                    "createdAtWithMilliseconds": "2026-12-01T14:03:22.517Z"},
                        "thread": {"idOnExternalPlatform": thread},
                        "recipients": [{"idOnExternalPlatform": customer, "isPrimary": True}],
                        "endUserIdentities": [{"idOnExternalPlatform": customer}]})

    def _legacy(self, post_id: str) -> Response:
        self._record("legacy")
        if not self._authorized():
            return Response("", 401)
        return jsonify({"idOnExternalPlatform": self._id(request.get_json())})

    def _id(self, body: dict[str, Any]) -> str:
        # The same callback twice is a retry: same id (the contract's dedupe, in miniature).
        return "gw-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == kind]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app(DfoSimConfig()))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[tuple[FakeGateway, RunningServer]]:
    fake = FakeGateway()
    running = serve_in_thread(fake.app)
    yield fake, running
    running.stop()


@pytest.fixture
def gateway(gateway_server: tuple[FakeGateway, RunningServer], sim: Sim) -> FakeGateway:
    fake, running = gateway_server
    fake.requests.clear()
    fake.tokens.clear()
    fake.reject_first = True
    sim.control("POST", "/config", 200, json={"gateway_url": running.url})
    return fake


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.token = ""

    def fetch_token(self, password: str = defaults.DFO_ACCESS_KEY_SECRET,
                    client: tuple[str, str] = (defaults.CXONE_CLIENT_ID,
                                               defaults.CXONE_CLIENT_SECRET),
                    grant: str = "password") -> requests.Response:
        data = {"grant_type": grant, "username": defaults.DFO_ACCESS_KEY_ID, "password": password}
        return self.http.post(f"{self.url}/auth/token", auth=client, data=data, timeout=5)

    def login(self) -> None:
        self.token = self.fetch_token().json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {self.token}"})
        return self.http.request(method, f"{self.url}/dfo/3.0{path}", headers=headers,
                                 timeout=5, **kwargs)

    def create(self, body: dict[str, Any], channel: str = CHANNEL) -> requests.Response:
        return self.api("POST", f"/channels/{channel}/messages", json=body)

    def put_status(self, message_id: str, body: Any, channel: str = CHANNEL) -> requests.Response:
        return self.api("PUT", f"/channels/{channel}/messages/{message_id}/status", json=body)

    def control(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_sandbox{path}", timeout=10, **kwargs)
        if expect is None:
            return response
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def sim(server: RunningServer) -> Sim:
    client = Sim(server.url)
    client.control("POST", "/reset", 200)
    client.login()
    return client


def inbound(message_id: str = "SM" + "1" * 32, **changes: Any) -> dict[str, Any]:
    body = {
        "idOnExternalPlatform": message_id, "direction": "inbound",
        "createdAtWithMilliseconds": "2026-12-01T14:03:22.481Z",
        "thread": {"idOnExternalPlatform": THREAD},
        "messageContent": {"type": "TEXT", "payload": {"text": "Where is my order?"}},
        "authorEndUserIdentity": {"idOnExternalPlatform": CUSTOMER, "nickname": CUSTOMER},
        "recipients": [{"idOnExternalPlatform": BUSINESS, "isPrimary": True, "isPrivate": False}],
    }
    return {**body, **changes}


def claims(jwt: str) -> dict[str, Any]:
    header, payload, signature = jwt.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "none"
    assert signature == ""
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return result


def agent_reply(sim: Sim, **fields: Any) -> dict[str, Any]:
    body = {"channelId": CHANNEL, "customer": CUSTOMER, "text": "Hi, this is Dana.", **fields}
    result: dict[str, Any] = sim.control("POST", "/agent-replies", 200, json=body)
    return result


# --- identity ---------------------------------------------------------------------------


def test_discovery_then_password_grant_then_tenant_configuration(sim: Sim) -> None:
    discovery = requests.get(f"{sim.url}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == sim.url
    assert discovery["token_endpoint"] == f"{sim.url}/auth/token"

    token = sim.fetch_token()
    assert token.status_code == 200, token.text
    answer = token.json()
    assert set(answer) == {"access_token", "token_type", "expires_in", "refresh_token", "id_token"}
    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 3600)
    identity = claims(answer["id_token"])
    assert (identity["iss"], identity["tenantId"]) == (sim.url, defaults.DFO_TENANT_ID)

    tenant = requests.get(f"{identity['iss']}/.well-known/cxone-configuration",
                          params={"tenantId": identity["tenantId"]}, timeout=5)
    assert tenant.status_code == 200
    assert (tenant.json()["area"], tenant.json()["domain"]) == ("na1", "niceincontact.com")
    unknown = requests.get(f"{sim.url}/.well-known/cxone-configuration",
                           params={"tenantId": "nope"}, timeout=5)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "tenantId"


def test_the_token_endpoint_refuses_bad_credentials(sim: Sim) -> None:
    assert sim.fetch_token(client=("sandbox-client", "wrong")).status_code == 401
    assert sim.fetch_token(password="wrong=").status_code == 401
    assert sim.fetch_token(grant="client_credentials").status_code == 400
    # The secret holds '+' and ends in '=': sent without URL-encoding, it is wrong.
    raw = (f"grant_type=password&username={defaults.DFO_ACCESS_KEY_ID}"
           f"&password={defaults.DFO_ACCESS_KEY_SECRET}")
    unencoded = sim.http.post(f"{sim.url}/auth/token", data=raw, timeout=5,
                              auth=(defaults.CXONE_CLIENT_ID, defaults.CXONE_CLIENT_SECRET),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unencoded.status_code == 401
    assert unencoded.json()["error"] == "invalid_grant"


def test_refresh_token_and_expired_tokens(sim: Sim) -> None:
    refresh = sim.fetch_token().json()["refresh_token"]
    renewed = sim.http.post(f"{sim.url}/auth/token", timeout=5,
                            auth=(defaults.CXONE_CLIENT_ID, defaults.CXONE_CLIENT_SECRET),
                            data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert renewed.status_code == 200
    assert sim.control("POST", "/expire-tokens", 200)["expired"] >= 2

    refused = sim.create(inbound())
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["errors"][0]["errorCode"] == "Unauthorized" and refused.json()["uid"]
    sim.login()
    assert sim.create(inbound()).status_code == 200


def test_every_api_call_needs_a_bearer_token(sim: Sim) -> None:
    assert sim.api("POST", f"/channels/{CHANNEL}/messages", json=inbound(),
                   headers={}).status_code == 401
    assert sim.api("PUT", f"/channels/{CHANNEL}/messages/x/status", headers={},
                   json={"status": "delivered"}).status_code == 401
    assert sim.api("POST", "/one-time-token/verification", headers={"Authorization": "Bearer x"},
                   json={}).status_code == 401


# --- customer messages ------------------------------------------------------------------


def test_a_customer_message_is_created_once_and_a_duplicate_is_409(sim: Sim) -> None:
    first = sim.create(inbound())
    again = sim.create(inbound())

    assert first.status_code == 200, first.text
    assert again.status_code == 409
    error = again.json()["errors"][0]
    assert (error["field"], error["errorCode"]) == ("idOnExternalPlatform", "DuplicateMessage")
    [stored] = sim.control("GET", "/messages", 200)["items"]
    assert (stored["threadId"], stored["author"], stored["text"]) == (
        THREAD, CUSTOMER, "Where is my order?")
    assert sim.create(inbound(), channel="no-such-channel").status_code == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"direction": "outbound"}, "direction"),
        ({"thread": {"idOnExternalPlatform": f"{CUSTOMER[1:]}_{BUSINESS[1:]}"}},
         "thread.idOnExternalPlatform"),
        ({"authorEndUserIdentity": {"idOnExternalPlatform": "4155559876"}},
         "authorEndUserIdentity.idOnExternalPlatform"),
        ({"messageContent": {"type": "TEXT", "payload": {"text": ""}}},
         "messageContent.payload.text"),
        ({"messageContent": {"type": "TEXT", "text": "old shape"}}, "messageContent.payload"),
        ({"createdAtWithMilliseconds": "yesterday"}, "createdAtWithMilliseconds"),
        ({"attachments": [{"friendlyName": "a.jpg", "url": "ftp://x/a.jpg"}]},
         "attachments[0].url"),
        ({"recipients": [{"idOnExternalPlatform": "+18005559999", "isPrimary": True}]},
         "recipients"),
    ],
)
def test_bad_customer_messages_are_400_with_the_field(sim: Sim, changes: dict[str, Any],
                                                      field: str) -> None:
    response = sim.create(inbound(**changes))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert sim.control("GET", "/messages", 200)["items"] == []


# --- the agent side and status updates --------------------------------------------------


def test_an_agent_reply_fetches_a_token_on_401_and_retries_once(sim: Sim,
                                                                gateway: FakeGateway) -> None:
    result = agent_reply(sim)

    assert result["status"] == 200 and result["messageId"].startswith("gw-")
    assert result["problems"] == []
    assert [(a["kind"], a["status"]) for a in result["attempts"]] == [
        ("token", 200), ("callback", 401), ("token", 200), ("callback", 200)]
    sent = gateway.of_kind("reply")[-1]
    assert sent["path"] == f"/byoc/2.0/channel/{CHANNEL}/outbound"
    assert sent["json"]["thread"] == {"idOnExternalPlatform": THREAD}
    assert sent["json"]["messageContent"] == {"type": "TEXT",
                                              "payload": {"text": "Hi, this is Dana."}}
    assert sent["json"]["endUserRecipients"][0]["idOnExternalPlatform"] == CUSTOMER
    assert gateway.of_kind("token")[0]["form"] == {
        "grant_type": "client_credentials", "client_id": BYOC[0], "client_secret": BYOC[1]}

    second = agent_reply(sim, text="Anything else?")
    assert [a["kind"] for a in second["attempts"]] == ["callback"]  # the cached token


def test_a_repeated_callback_is_identical_and_legacy_mode_uses_the_post_path(
    sim: Sim, gateway: FakeGateway
) -> None:
    sim.control("POST", "/config", 200, json={"byoc_token_format": "json"})
    repeated = agent_reply(sim, repeat=2)
    legacy = agent_reply(sim, mode="legacy", threadId=THREAD)

    bodies = [r["json"] for r in gateway.of_kind("reply")]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]  # 401, retry, repeat
    assert [s["messageId"] for s in repeated["sends"]] == [repeated["messageId"]] * 2
    assert gateway.of_kind("token")[0]["json"]["client_id"] == BYOC[0]
    last = gateway.of_kind("legacy")[-1]
    assert last["path"] == f"/byoc/1.0/posts/{THREAD}/messages"
    assert last["json"]["post"] == {"idOnExternalPlatform": THREAD}
    assert last["json"]["messageContent"]["text"] == "Hi, this is Dana."
    assert legacy["status"] == 200 and legacy["messageId"]


def test_status_updates_need_a_known_id_and_are_all_recorded(sim: Sim,
                                                            gateway: FakeGateway) -> None:
    assert sim.put_status("gw-unknown", {"status": "delivered",
                                         "updatedAt": "2026-12-01T14:03:40.000Z"}
                          ).status_code == 404
    message_id = agent_reply(sim)["messageId"]

    bad = sim.put_status(message_id, {"status": "DELIVERED", "updatedAt": "2026-12-01T14:03:40Z"})
    no_reason = sim.put_status(message_id, {"status": "failed", "updatedAt": "2026-12-01T14:03Z"})
    ok = sim.put_status(message_id, {"status": "failed", "updatedAt": "2026-12-01T14:03:40.000Z",
                                     "reason": "30003 Unreachable destination handset"})
    other_channel = sim.put_status(message_id, {"status": "seen", "updatedAt": "2026-12-01T14:03Z"},
                                   channel=list(defaults.DFO_CHANNELS)[1])

    assert [r.status_code for r in (bad, no_reason, ok, other_channel)] == [400, 400, 200, 404]
    reply = sim.control("GET", f"/outbound/{message_id}", 200)
    assert [u["response_status"] for u in reply["statusUpdates"]] == [400, 400, 200]
    assert reply["statusUpdates"][2]["body"]["reason"].startswith("30003")
    assert len(sim.control("GET", "/status-updates", 200)["items"]) == 5


# --- the Add action ---------------------------------------------------------------------


def test_one_time_token_verification_then_channel_creation(sim: Sim, gateway: FakeGateway) -> None:
    issued = sim.control("POST", "/one-time-tokens", 201, json={"userId": "admin-7"})
    assert issued["addUrl"].startswith(f"{sim.control('GET', '/config', 200)['gateway_url']}"
                                       "/byoc/actions/add?")
    verification = {"brandId": issued["brandId"], "userId": "admin-7", "token": issued["token"],
                    "purpose": "channel-integration"}

    verified = sim.api("POST", "/one-time-token/verification", json=verification)
    reused = sim.api("POST", "/one-time-token/verification", json=verification)
    forged = sim.api("POST", "/one-time-token/verification",
                     json={**verification, "token": "forged"})

    assert verified.status_code == 200, verified.text
    assert (reused.status_code, forged.status_code) == (400, 401)
    assert reused.json()["errors"][0]["errorCode"] == "TokenAlreadyUsed"
    access = verified.json()["accessToken"]
    assert claims(access)["brandId"] == issued["brandId"]
    channel = {"id": "chat_new_18005550199", "idOnExternalPlatform": "+18005550199",
               "channelIntegrationId": "smsgw", "realExternalPlatformId": "sms",
               "name": "SMS +18005550199", "isPrivate": True, "hasTreeStructure": False}
    with_api_token = sim.api("POST", "/channels", json=channel)
    created = sim.api("POST", "/channels", json=channel,
                      headers={"Authorization": f"Bearer {access}"})
    again = sim.api("POST", "/channels", json=channel,
                    headers={"Authorization": f"Bearer {access}"})
    assert (with_api_token.status_code, created.status_code, again.status_code) == (401, 200, 409)
    listed = {c["id"]: c for c in sim.control("GET", "/channels", 200)["items"]}
    assert listed["chat_new_18005550199"]["source"] == "add-action"
    new_thread = {"idOnExternalPlatform": f"18005550199_{CUSTOMER[1:]}"}
    recipients = [{"idOnExternalPlatform": "+18005550199", "isPrimary": True}]
    assert sim.create(inbound(thread=new_thread, recipients=recipients),
                      channel="chat_new_18005550199").status_code == 200


# --- limits, faults, files --------------------------------------------------------------


def test_the_per_contact_limit_counts_always_and_answers_429_when_enforced(sim: Sim) -> None:
    sim.control("POST", "/config", 200, json={"contact_burst": 2, "contact_refill_per_min": 1})
    statuses = [sim.create(inbound(f"SM{n:032d}")).status_code for n in range(3)]
    assert statuses == [200, 200, 200]
    assert sim.control("GET", "/limits", 200)["threads"][THREAD]["exceeded"] == 1

    sim.control("POST", "/config", 200, json={"enforce_limits": True, "contact_burst": 2})
    statuses = [sim.create(inbound(f"SM{n:032d}")).status_code for n in range(3, 6)]
    limited = sim.create(inbound("SM" + "9" * 32))
    assert statuses == [200, 200, 429] and limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["errors"][0]["errorCode"] == "TooManyRequests"
    limits = sim.control("GET", "/limits", 200)
    assert limits["enforced"] and limits["threads"][THREAD]["exceeded"] == 2
    assert limits["exceeded"] == 2 and limits["tenant"]["requests"] == 4  # counted afresh
    assert len(sim.control("GET", "/messages", 200)["items"]) == 5


def test_faults_on_the_dfo_api(sim: Sim) -> None:
    sim.control("POST", "/faults", 201, json={"target": "create", "status": 409, "after": True,
                                              "count": 1})
    sim.control("POST", "/faults", 201, json={"target": "status", "status": 429,
                                              "retry_after": 7, "count": 1})
    sim.control("POST", "/faults", 201, json={"target": "token", "drop": True, "count": 1})

    conflicted = sim.create(inbound())
    limited = sim.put_status("gw-x", {"status": "delivered", "updatedAt": "2026-12-01T14:03Z"})
    with pytest.raises(requests.ConnectionError):
        sim.fetch_token()

    assert conflicted.status_code == 409 and conflicted.json()["errors"][0]["errorCode"]
    assert len(sim.control("GET", "/messages", 200)["items"]) == 1  # stored, answer lost
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert sim.fetch_token().status_code == 200
    tokens = sim.control("GET", "/requests", 200, params={"endpoint": "token"})["items"]
    assert [t["response_status"] for t in tokens][-2:] == [None, 200]


def test_files_serve_attachments_for_agent_replies(sim: Sim, gateway: FakeGateway) -> None:
    label = sim.control("POST", "/files", 201, json={
        "name": "label.pdf", "content_type": "application/pdf", "size": 50_000})
    sim.control("POST", "/files", 201, json={"name": "note.txt", "content_type": "text/plain",
                                             "text": "hello"})

    fetched = requests.get(label["url"], timeout=5)
    result = agent_reply(sim, attachments=[{"file": "label.pdf"}])

    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/pdf"
    assert hashlib.sha256(fetched.content).hexdigest() == label["sha256"]
    assert len(fetched.content) == 50_000
    assert result["request"]["attachments"] == [{"friendlyName": "label.pdf",
                                                 "url": label["url"]}]
    assert requests.get(f"{sim.url}/_sandbox/files/nope", timeout=5).status_code == 404
    assert sim.control("POST", "/files", json={"name": "../x", "text": "x"}).status_code == 400


def test_config_from_env() -> None:
    config = config_from_env({
        "DFO_SIM_GATEWAY_URL": "http://gw:8000", "BYOC_CLIENT_ID": "id", "BYOC_CLIENT_SECRET": "s",
        "CXONE_ACCESS_KEY_ID": "AK", "CXONE_ACCESS_KEY_SECRET": "x+y=", "DFO_SIM_TOKEN_TTL_S": "60",
        "DFO_SIM_ENFORCE_LIMITS": "true", "DFO_CHANNELS": "c1=+15551230000, c2=+15551230001",
        "DFO_SIM_BYOC_TOKEN_FORMAT": "json",
    })
    assert (config.gateway_url, config.byoc_client_id, config.byoc_client_secret) == (
        "http://gw:8000", "id", "s")
    assert (config.access_key_id, config.access_key_secret, config.token_ttl_s) == (
        "AK", "x+y=", 60)
    assert config.enforce_limits and config.byoc_token_format == "json"
    assert config.channels == {"c1": "+15551230000", "c2": "+15551230001"}
    assert config_from_env({}) == DfoSimConfig()
    with pytest.raises(ValueError):
        parse_channels("c1=5551230000")


def test_the_add_url_carries_the_admin_fields(sim: Sim, gateway: FakeGateway) -> None:
    issued = sim.control("POST", "/one-time-tokens", 201, json={"brandId": 77, "userId": "u1"})
    expected = urlencode({"userId": "u1", "brandId": 77, "token": issued["token"],
                          "backUrl": f"{sim.url}/_sandbox/admin/back"})
    assert issued["addUrl"].endswith(f"/byoc/actions/add?{expected}")
    assert requests.get(issued["backUrl"], params={"ok": "1"}, timeout=5).status_code == 200
    assert sim.control("GET", "/admin/backs", 200)["items"][0]["query"] == {"ok": "1"}


def test_the_harness_fixture_and_its_gateway_env(dfo: Any) -> None:
    from tests.harness import dfo_gateway_env

    env = dfo_gateway_env(dfo)
    served = dfo.upload_file("a.txt", "text/plain", text="abc")
    dfo.configure(enforce_limits=True)

    discovery = requests.get(f"{env['CXONE_ISSUER_URL']}/.well-known/openid-configuration",
                             timeout=5).json()
    assert requests.get(served["url"], timeout=5).text == "abc"
    assert dfo.limits()["enforced"] and dfo.messages() == []
    assert parse_channels(env["DFO_CHANNELS"]) == defaults.DFO_CHANNELS
    dfo.reset()
    assert discovery["issuer"] == dfo.url and not dfo.limits()["enforced"]
