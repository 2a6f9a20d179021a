"""The Twilio simulator, driven over real HTTP by the official ``twilio`` package.

Only ``client.api.base_url`` is changed (edge/region stay unset). Callbacks and
inbound webhooks go to a small recording receiver, and every one of them must
pass ``twilio.request_validator.RequestValidator``.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from flask import Flask, Response, request
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox import defaults
from sandbox.server import RunningServer, serve_in_thread
from sandbox.twilio_sim import TwilioSimConfig, config_from_env, create_app

SID = defaults.TWILIO_ACCOUNT_SID
TOKEN = defaults.TWILIO_AUTH_TOKEN
SERVICE = defaults.TWILIO_MESSAGING_SERVICE_SID
POOL = defaults.SENDER_NUMBERS

# The properties of ``api.v2010.account.message`` in twilio/twilio-oai,
# spec/json/twilio_api_v2010.json (commit d50069b4, 2026-04-14).
SPEC_MESSAGE_KEYS = {
    "body", "num_segments", "direction", "from", "to", "date_updated", "price",
    "error_message", "uri", "account_sid", "num_media", "status",
    "messaging_service_sid", "sid", "date_sent", "date_created", "error_code",
    "price_unit", "api_version", "subresource_uris",
}  # fmt: skip
# The keys of ``ListMessageResponse`` in the same file.
SPEC_LIST_KEYS = {
    "end", "first_page_uri", "next_page_uri", "page", "page_size", "previous_page_uri",
    "start", "uri", "messages",
}  # fmt: skip
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
MESSAGE_SID = re.compile(r"^SM[0-9a-f]{32}$")
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


class Receiver:
    """A tiny webhook receiver that records every POST it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.app = Flask("receiver")
        self.app.add_url_rule("/<path:path>", view_func=self._record, methods=["POST"])
        self.server: RunningServer | None = None

    def _record(self, path: str) -> Response:
        with self._cond:
            self.requests.append(
                {
                    "url": request.url,
                    "path": "/" + path,
                    "form": request.form.to_dict(),
                    "signature": request.headers.get("X-Twilio-Signature", ""),
                    "at": time.time(),
                }
            )
            self._cond.notify_all()
        return Response(TWIML_EMPTY, mimetype="text/xml")

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()

    def for_sid(self, sid: str) -> list[dict[str, Any]]:
        with self._cond:
            return [r for r in self.requests if r["form"].get("MessageSid") == sid]

    def wait_for(self, sid: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The callbacks for ``sid`` once ``count`` have arrived (fails on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._matching(sid)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._matching(sid)

    def _matching(self, sid: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["form"].get("MessageSid") == sid]


def signed_correctly(hook: dict[str, Any]) -> bool:
    return bool(RequestValidator(TOKEN).validate(hook["url"], hook["form"], hook["signature"]))


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningServer]:
    server = serve_in_thread(create_app(TwilioSimConfig(step_delay_s=0)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    hooks.server = serve_in_thread(hooks.app)
    yield hooks
    hooks.server.stop()


@pytest.fixture(autouse=True)
def clean(sim: RunningServer, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # Edge/region would rewrite 127.0.0.1 into 127.us1.0.1.
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)
    control(sim, "post", "/reset")
    control(sim, "post", "/config", json={"step_delay_s": 0})
    receiver.clear()


@pytest.fixture
def client(sim: RunningServer) -> Client:
    twilio = Client(SID, TOKEN)
    twilio.api.base_url = sim.url
    return twilio


def control(sim: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{sim.url}/_sandbox{path}", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def sim_message(sim: RunningServer, sid: str) -> dict[str, Any]:
    return next(m for m in control(sim, "get", "/messages")["messages"] if m["sid"] == sid)


def wait_status(client: Client, sid: str, status: str) -> Any:
    return wait_until(lambda: (m := client.messages(sid).fetch()).status == status and m)


def statuses(hooks: list[dict[str, Any]]) -> list[str]:
    return [hook["form"]["MessageStatus"] for hook in hooks]


# --- create ------------------------------------------------------------------


def test_a_created_message_has_exactly_the_spec_fields_and_types(sim: RunningServer) -> None:
    response = requests.post(
        f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json",
        data={"To": "+14155550100", "MessagingServiceSid": SERVICE, "Body": "Hello"},
        auth=(SID, TOKEN),
        timeout=5,
    )

    assert response.status_code == 201
    msg = response.json()
    assert set(msg) == SPEC_MESSAGE_KEYS
    assert MESSAGE_SID.match(msg["sid"])
    assert msg["status"] == "accepted"  # a Messaging Service send starts accepted
    assert msg["from"] is None  # no sender picked yet
    assert msg["date_sent"] is None
    assert msg["num_segments"] == "0"  # the spec: 0 until a sender is assigned
    assert msg["num_media"] == "0"
    assert msg["error_code"] is None and msg["price"] is None
    assert RFC2822.match(msg["date_created"]) and RFC2822.match(msg["date_updated"])
    assert msg["direction"] == "outbound-api"
    assert msg["api_version"] == "2010-04-01"
    assert msg["messaging_service_sid"] == SERVICE
    assert msg["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{msg['sid']}.json"
    assert msg["subresource_uris"] == {
        "media": f"/2010-04-01/Accounts/{SID}/Messages/{msg['sid']}/Media.json"
    }


def test_a_service_message_gets_a_pool_sender_and_walks_to_delivered(
    client: Client, sim: RunningServer
) -> None:
    created = client.messages.create(to="+14155550101", messaging_service_sid=SERVICE, body="hi")

    done = wait_status(client, created.sid, "delivered")
    assert done.from_ in POOL
    assert done.num_segments == "1"
    assert done.date_sent is not None and done.price is not None and done.price.startswith("-")
    history = [h["status"] for h in sim_message(sim, created.sid)["status_history"]]
    assert history == ["accepted", "queued", "sending", "sent", "delivered"]


def test_a_message_from_a_pool_number_starts_queued_with_its_segments(client: Client) -> None:
    created = client.messages.create(to="+14155550102", from_=POOL[1], body="x" * 161)

    assert created.status == "queued"
    assert created.from_ == POOL[1]
    assert created.num_segments == "2"
    assert created.date_sent is None


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("a" * 306, "2"),
        ("a" * 307, "3"),
        ("€" * 80, "1"),  # GSM-7 extension: two septets each
        ("€" * 81, "2"),
        ("ł" * 70, "1"),  # not GSM-7: the whole body is UCS-2
        ("a" * 100 + "ł", "2"),
        ("ł" * 134, "2"),  # UCS-2 parts carry 67 characters
        ("ł" * 135, "3"),
        ("👍" * 35, "1"),  # two UTF-16 units each
        ("👍" * 36, "2"),
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(client: Client, body: str, segments: str) -> None:
    created = client.messages.create(to="+14155550103", from_=POOL[0], body=body)

    assert created.num_segments == segments


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550003", 21408), ("+15005550004", 21610),
     ("+15005550009", 21614), ("+15005550002", 21612), ("4155550100", 21211)],
)  # fmt: skip
def test_magic_and_invalid_destinations_are_refused(
    client: Client, sim: RunningServer, to: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=to, messaging_service_sid=SERVICE, body="hi")

    assert (refused.value.status, refused.value.code) == (400, code)
    assert control(sim, "get", "/messages")["messages"] == []
    assert control(sim, "get", "/creates")["creates"][0]["error_code"] == code


def test_a_magic_valid_number_is_accepted(client: Client) -> None:
    created = client.messages.create(to="+15005550006", messaging_service_sid=SERVICE, body="hi")

    assert created.status == "accepted"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"messaging_service_sid": SERVICE}, 21602),  # no Body, no MediaUrl
        ({"messaging_service_sid": SERVICE, "body": "x" * 1601}, 21617),
        ({"messaging_service_sid": SERVICE, "from_": "+14155559999", "body": "hi"}, 21606),
        ({"from_": "+14155559999", "body": "hi"}, 21606),
        ({"messaging_service_sid": "MG" + "0" * 32, "body": "hi"}, 21701),
        ({"messaging_service_sid": "MGnope", "body": "hi"}, 21705),
        ({"body": "hi"}, 21603),  # neither From nor MessagingServiceSid
        ({"messaging_service_sid": SERVICE, "body": "hi", "validity_period": 0}, 21624),
        ({"messaging_service_sid": SERVICE, "body": "hi", "validity_period": 36001}, 21624),
        ({"messaging_service_sid": SERVICE, "media_url": ["https://e.x/a.jpg"] * 11}, 21623),
        ({"messaging_service_sid": SERVICE, "body": "hi", "status_callback": "nope"}, 21609),
    ],
)
def test_invalid_creates_get_twilios_error_codes(
    client: Client, params: dict[str, Any], code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+14155550104", **params)

    assert (refused.value.status, refused.value.code) == (400, code)


def test_media_and_validity_period_are_accepted(client: Client) -> None:
    created = client.messages.create(
        to="+14155550105",
        messaging_service_sid=SERVICE,
        media_url=["https://e.x/a.jpg", "https://e.x/b.png"],
        validity_period=600,
        provide_feedback=True,
    )

    assert created.num_media == "2"
    assert created.sid.startswith("MM")  # Twilio's prefix for messages with media
    assert set(created.subresource_uris) == {"media", "feedback"}


def test_a_wrong_token_is_20003(sim: RunningServer) -> None:
    intruder = Client(SID, "0" * 32)
    intruder.api.base_url = sim.url

    with pytest.raises(TwilioRestException) as refused:
        intruder.messages.create(to="+14155550106", messaging_service_sid=SERVICE, body="hi")

    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert control(sim, "get", "/creates")["creates"] == []


def test_another_account_in_the_path_is_20404(sim: RunningServer) -> None:
    other = Client(SID, TOKEN, account_sid="AC" + "0" * 32)
    other.api.base_url = sim.url

    with pytest.raises(TwilioRestException) as refused:
        other.messages.create(to="+14155550107", messaging_service_sid=SERVICE, body="hi")

    assert (refused.value.status, refused.value.code) == (404, 20404)


def test_an_unknown_message_is_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()

    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_a_service_without_senders_is_21704() -> None:
    server = serve_in_thread(create_app(TwilioSimConfig(sender_numbers=(), step_delay_s=0)))
    empty = Client(SID, TOKEN)
    empty.api.base_url = server.url
    try:
        with pytest.raises(TwilioRestException) as refused:
            empty.messages.create(to="+14155550134", messaging_service_sid=SERVICE, body="hi")
    finally:
        server.stop()

    assert (refused.value.status, refused.value.code) == (400, 21704)


def test_a_destination_rule_can_refuse_the_create(client: Client, sim: RunningServer) -> None:
    control(sim, "post", "/destinations", json={
        "to": "+14155550108", "outcome": "create_error",
        "create_error": {"code": 21610, "status": 400},
    })  # fmt: skip

    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+14155550108", messaging_service_sid=SERVICE, body="hi")

    assert (refused.value.status, refused.value.code) == (400, 21610)


def test_the_creates_log_shows_requests_and_the_sender_used(
    client: Client, sim: RunningServer
) -> None:
    created = client.messages.create(to="+14155550109", messaging_service_sid=SERVICE, body="a")
    with pytest.raises(TwilioRestException):
        client.messages.create(to="+15005550001", messaging_service_sid=SERVICE, body="b")
    wait_status(client, created.sid, "delivered")

    creates = control(sim, "get", "/creates")["creates"]
    assert [c["result"] for c in creates] == ["created", "error"]
    assert creates[0]["sid"] == created.sid and creates[0]["from"] is None
    assert creates[0]["sender"] in POOL
    assert creates[1]["error_code"] == 21211
    assert creates[0]["at"] <= creates[1]["at"]


# --- fetch and list ----------------------------------------------------------


def test_list_filters_by_to_from_and_date_sent(client: Client) -> None:
    a = client.messages.create(to="+14155550110", from_=POOL[0], body="a")
    b = client.messages.create(to="+14155550110", from_=POOL[1], body="b")
    c = client.messages.create(to="+14155550111", from_=POOL[0], body="c")
    for msg in (a, b, c):
        wait_status(client, msg.sid, "delivered")
    now = datetime.now(UTC)
    today = now.strftime("%Y-%m-%d")

    assert [m.sid for m in client.messages.list(to="+14155550110")] == [b.sid, a.sid]
    assert [m.sid for m in client.messages.list(to="+14155550110", from_=POOL[0])] == [a.sid]
    after = client.messages.list(to="+14155550110", date_sent_after=now - timedelta(minutes=5))
    assert {m.sid for m in after} == {a.sid, b.sid}
    assert client.messages.list(to="+14155550110", date_sent_before=now - timedelta(days=1)) == []
    assert len(client.messages.list(to="+14155550110", date_sent=today)) == 2
    assert len(client.messages.list(to="+14155550110", date_sent=now)) == 2
    assert client.messages.list(to="+14155550110", date_sent="2008-01-02") == []
    assert len(client.messages.list(to="+14155550110", date_sent_before=today)) == 2


def test_unsent_messages_do_not_match_date_sent(client: Client, sim: RunningServer) -> None:
    control(sim, "post", "/config", json={"step_delay_s": 5})
    client.messages.create(to="+14155550112", messaging_service_sid=SERVICE, body="slow")

    listed = client.messages.list(
        to="+14155550112", date_sent_after=datetime.now(UTC) - timedelta(days=1)
    )

    assert listed == []
    assert len(client.messages.list(to="+14155550112")) == 1


def test_list_pages_newest_first_across_pages(client: Client, sim: RunningServer) -> None:
    sids = [
        client.messages.create(to="+14155550113", from_=POOL[0], body=str(i)).sid
        for i in range(7)
    ]
    newest_first = list(reversed(sids))

    assert [m.sid for m in client.messages.list(to="+14155550113", page_size=3)] == newest_first
    assert [m.sid for m in client.messages.list(to="+14155550113", limit=5, page_size=2)] == (
        newest_first[:5]
    )
    raw = requests.get(
        f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json",
        params={"To": "+14155550113", "PageSize": 3},
        auth=(SID, TOKEN),
        timeout=5,
    ).json()
    assert set(raw) == SPEC_LIST_KEYS
    assert (raw["page"], raw["page_size"], raw["start"], raw["end"]) == (0, 3, 0, 2)
    assert raw["previous_page_uri"] is None
    assert raw["next_page_uri"].endswith(f"&PageSize=3&Page=1&PageToken=PA{newest_first[2]}")
    assert raw["uri"] == (
        f"/2010-04-01/Accounts/{SID}/Messages.json?To=%2B14155550113&PageSize=3&Page=0"
    )


def test_paging_stays_stable_while_new_messages_arrive(client: Client) -> None:
    for i in range(4):
        client.messages.create(to="+14155550114", from_=POOL[0], body=str(i))
    first = client.messages.page(to="+14155550114", page_size=2)
    seen = [m.sid for m in first]
    client.messages.create(to="+14155550114", from_=POOL[0], body="late")

    second = first.next_page()

    assert second is not None
    seen += [m.sid for m in second]
    assert len(seen) == len(set(seen)) == 4
    assert second.next_page_url is None


# --- faults ------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status", "code"), [("429", 429, 20429), ("500", 500, 20500),
                                                       ("503", 503, 20503)])  # fmt: skip
def test_an_error_fault_refuses_the_create_without_creating(
    client: Client, sim: RunningServer, kind: str, status: int, code: int
) -> None:
    control(sim, "post", "/faults", json={"target": "create", "kind": kind, "count": 1})

    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+14155550115", messaging_service_sid=SERVICE, body="hi")
    retried = client.messages.create(to="+14155550115", messaging_service_sid=SERVICE, body="hi")

    assert (refused.value.status, refused.value.code) == (status, code)
    assert [m["sid"] for m in control(sim, "get", "/messages")["messages"]] == [retried.sid]
    first = control(sim, "get", "/creates")["creates"][0]
    assert (first["result"], first["fault"]) == ("fault", kind)


def test_drop_after_accept_creates_but_never_answers(client: Client, sim: RunningServer) -> None:
    control(sim, "post", "/faults", json={"target": "create", "kind": "drop_after_accept"})

    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to="+14155550116", messaging_service_sid=SERVICE, body="hi")

    messages = control(sim, "get", "/messages")["messages"]
    assert [m["to"] for m in messages] == ["+14155550116"]
    wait_until(lambda: sim_message(sim, messages[0]["sid"])["status"] == "delivered")
    assert [m.sid for m in client.messages.list(to="+14155550116")] == [messages[0]["sid"]]


def test_timeout_creates_then_holds_the_connection(sim: RunningServer) -> None:
    control(sim, "post", "/faults", json={"target": "create", "kind": "timeout",
                                           "delay_ms": 1500})  # fmt: skip
    impatient = Client(SID, TOKEN, http_client=TwilioHttpClient(timeout=0.3))
    impatient.api.base_url = sim.url

    with pytest.raises(requests.exceptions.Timeout):
        impatient.messages.create(to="+14155550117", messaging_service_sid=SERVICE, body="hi")

    assert [m["to"] for m in control(sim, "get", "/messages")["messages"]] == ["+14155550117"]


def test_slow_answers_after_the_delay(client: Client, sim: RunningServer) -> None:
    control(sim, "post", "/faults", json={"target": "any", "kind": "slow", "delay_ms": 300})

    started = time.monotonic()
    created = client.messages.create(to="+14155550118", messaging_service_sid=SERVICE, body="hi")

    assert time.monotonic() - started >= 0.3
    assert created.status == "accepted"


def test_faults_hit_fetch_and_list_only_when_targeted(client: Client, sim: RunningServer) -> None:
    created = client.messages.create(to="+14155550119", messaging_service_sid=SERVICE, body="hi")
    control(sim, "post", "/faults", json={"target": "fetch", "kind": "503", "count": 1})
    control(sim, "post", "/faults", json={"target": "list", "kind": "429", "count": 1})

    with pytest.raises(TwilioRestException) as fetch_refused:
        client.messages(created.sid).fetch()
    with pytest.raises(TwilioException):  # the package's list raises "Unable to fetch page"
        client.messages.list(to="+14155550119")

    assert (fetch_refused.value.status, fetch_refused.value.code) == (503, 20503)
    assert client.messages(created.sid).fetch().sid == created.sid
    assert len(client.messages.list(to="+14155550119")) == 1


def test_a_probability_fault_hits_a_fraction(client: Client, sim: RunningServer) -> None:
    control(sim, "post", "/faults", json={"target": "create", "kind": "429", "probability": 0.5})
    refused = 0
    for _ in range(60):
        try:
            client.messages.create(to="+14155550120", messaging_service_sid=SERVICE, body="hi")
        except TwilioRestException as exc:
            assert exc.code == 20429
            refused += 1

    assert 10 < refused < 50


# --- lifecycle and status callbacks ------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected", "error_code"),
    [
        ({}, ["queued", "sending", "sent", "delivered"], None),
        ({"outcome": "undelivered"}, ["queued", "sending", "sent", "undelivered"], 30003),
        ({"outcome": "undelivered", "error_code": 30006},
         ["queued", "sending", "sent", "undelivered"], 30006),
        ({"outcome": "failed", "error_code": 30008}, ["queued", "sending", "failed"], 30008),
        ({"outcome": "failed", "error_code": 30022}, ["queued", "sending", "failed"], 30022),
    ],
)  # fmt: skip
def test_callbacks_walk_the_lifecycle_signed_and_in_order(
    client: Client, sim: RunningServer, receiver: Receiver,
    rule: dict[str, Any], expected: list[str], error_code: int | None,
) -> None:  # fmt: skip
    control(sim, "post", "/destinations", json={"to": "+14155550121", **rule})
    callback = f"{receiver.url}/status?tag=a%20b"

    created = client.messages.create(
        to="+14155550121", messaging_service_sid=SERVICE, body="hi", status_callback=callback
    )
    hooks = receiver.wait_for(created.sid, len(expected))

    assert statuses(hooks) == expected
    assert all(signed_correctly(hook) for hook in hooks)
    assert all(hook["url"] == callback for hook in hooks)
    final = hooks[-1]["form"]
    assert final["SmsStatus"] == final["MessageStatus"] == expected[-1]
    assert final["SmsSid"] == created.sid and final["AccountSid"] == SID
    assert final["MessagingServiceSid"] == SERVICE and final["ApiVersion"] == "2010-04-01"
    assert final["To"] == "+14155550121" and final["From"] in POOL
    assert final.get("ErrorCode") == (str(error_code) if error_code else None)
    if expected[-1] in ("delivered", "undelivered"):
        assert re.fullmatch(r"\d{10}", final["RawDlrDoneDate"])
    fetched = client.messages(created.sid).fetch()
    assert (fetched.status, fetched.error_code) == (expected[-1], error_code)
    assert (fetched.error_message is None) == (error_code is None)
    recorded = sim_message(sim, created.sid)["callbacks"]
    assert [c["http_status"] for c in recorded] == [200] * len(expected)


def test_no_callback_for_the_initial_status_without_a_service(
    client: Client, receiver: Receiver
) -> None:
    created = client.messages.create(
        to="+14155550122", from_=POOL[0], body="hi", status_callback=f"{receiver.url}/s"
    )

    hooks = receiver.wait_for(created.sid, 3)

    assert statuses(hooks) == ["sending", "sent", "delivered"]
    assert "MessagingServiceSid" not in hooks[0]["form"]


def test_no_receipt_stops_at_sent(client: Client, sim: RunningServer, receiver: Receiver) -> None:
    control(sim, "post", "/destinations", json={"to": "+14155550123", "outcome": "no_receipt"})

    created = client.messages.create(
        to="+14155550123", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    hooks = receiver.wait_for(created.sid, 3)
    time.sleep(0.2)

    assert statuses(receiver.for_sid(created.sid)) == ["queued", "sending", "sent"]
    assert all(signed_correctly(hook) for hook in hooks)
    assert client.messages(created.sid).fetch().status == "sent"


def test_duplicate_sends_every_callback_twice(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/destinations", json={"to": "+14155550124", "callbacks": "duplicate"})

    created = client.messages.create(
        to="+14155550124", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    hooks = receiver.wait_for(created.sid, 8)

    assert statuses(hooks) == [s for s in ("queued", "sending", "sent", "delivered") for _ in "ab"]
    assert all(signed_correctly(hook) for hook in hooks)


def test_reorder_sends_the_final_callback_first(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/destinations", json={"to": "+14155550125", "callbacks": "reorder"})

    created = client.messages.create(
        to="+14155550125", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    hooks = receiver.wait_for(created.sid, 4)

    assert statuses(hooks) == ["delivered", "queued", "sending", "sent"]
    assert all(signed_correctly(hook) for hook in hooks)


def test_drop_sends_no_callback_but_the_message_still_walks(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/destinations", json={"to": "+14155550126", "callbacks": "drop"})

    created = client.messages.create(
        to="+14155550126", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    wait_status(client, created.sid, "delivered")
    time.sleep(0.2)

    assert receiver.for_sid(created.sid) == []
    assert len(sim_message(sim, created.sid)["status_history"]) == 5


def test_delay_ms_makes_callbacks_late(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/destinations", json={"to": "+14155550127", "delay_ms": 400})

    created = client.messages.create(
        to="+14155550127", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    hooks = receiver.wait_for(created.sid, 4)

    accepted_at = sim_message(sim, created.sid)["accepted_at"]
    assert statuses(hooks) == ["queued", "sending", "sent", "delivered"]
    assert hooks[0]["at"] - accepted_at >= 0.4


def test_step_delay_spaces_the_lifecycle(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/config", json={"step_delay_s": 0.1})

    created = client.messages.create(
        to="+14155550128", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    hooks = receiver.wait_for(created.sid, 4)

    history = sim_message(sim, created.sid)["status_history"]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(history)]
    assert statuses(hooks) == ["queued", "sending", "sent", "delivered"]
    assert len(gaps) == 4 and all(gap >= 0.1 for gap in gaps)


def test_a_manual_callback_is_sent_now_and_signed(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    created = client.messages.create(
        to="+14155550129", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip
    receiver.wait_for(created.sid, 4)

    answer = control(sim, "post", f"/messages/{created.sid}/callback",
                     json={"status": "undelivered", "error_code": 30005})  # fmt: skip

    assert answer["http_status"] == 200
    late = receiver.for_sid(created.sid)[-1]
    assert (late["form"]["MessageStatus"], late["form"]["ErrorCode"]) == ("undelivered", "30005")
    assert signed_correctly(late)


def test_cancel_stops_a_message_that_has_not_left(
    client: Client, sim: RunningServer, receiver: Receiver
) -> None:
    control(sim, "post", "/config", json={"step_delay_s": 5})
    created = client.messages.create(
        to="+14155550130", messaging_service_sid=SERVICE, body="hi",
        status_callback=f"{receiver.url}/s",
    )  # fmt: skip

    canceled = client.messages(created.sid).update(status="canceled")

    assert canceled.status == "canceled"
    assert statuses(receiver.wait_for(created.sid, 1)) == ["canceled"]


def test_a_body_can_be_redacted(client: Client) -> None:
    created = client.messages.create(to="+14155550135", from_=POOL[0], body="secret")

    client.messages(created.sid).update(body="")

    assert client.messages(created.sid).fetch().body == ""


def test_callbacks_keep_up_with_hundreds_of_messages(
    sim: RunningServer, receiver: Receiver
) -> None:
    def send(i: int) -> str:
        response = requests.post(
            f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json",
            data={"To": f"+1415556{i:04d}", "MessagingServiceSid": SERVICE, "Body": "load",
                  "StatusCallback": f"{receiver.url}/load"},
            auth=(SID, TOKEN), timeout=10,
        )  # fmt: skip
        assert response.status_code == 201
        return str(response.json()["sid"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        sids = list(pool.map(send, range(300)))
    wait_until(lambda: len(receiver.requests) >= 4 * len(sids), timeout=20)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"300 messages and 1200 callbacks took {elapsed:.1f}s"
    for sid in sids[:20]:
        assert statuses(receiver.for_sid(sid)) == ["queued", "sending", "sent", "delivered"]


# --- inbound -----------------------------------------------------------------


def test_an_inbound_message_is_posted_signed_with_its_fields(
    sim: RunningServer, receiver: Receiver
) -> None:
    url = f"{receiver.url}/twilio/inbound"
    answer = control(sim, "post", "/inbound", json={
        "from": "+14155550131", "to": POOL[0], "body": "STOP", "opt_out_type": "STOP",
        "media": [{"url": "https://e.x/cat.jpg", "content_type": "image/jpeg"},
                  {"url": "https://e.x/dog.png", "content_type": "image/png"}],
        "url": url,
    })  # fmt: skip

    hooks = receiver.wait_for(answer["sid"], 1)
    form = hooks[0]["form"]
    assert answer["http_status"] == 200 and answer["response_body"] == TWIML_EMPTY
    assert signed_correctly(hooks[0]) and hooks[0]["url"] == url
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"] == answer["sid"]
    assert (form["From"], form["To"], form["Body"]) == ("+14155550131", POOL[0], "STOP")
    assert (form["AccountSid"], form["MessagingServiceSid"]) == (SID, SERVICE)
    assert (form["SmsStatus"], form["ApiVersion"], form["OptOutType"]) == (
        "received", "2010-04-01", "STOP")  # fmt: skip
    assert (form["NumMedia"], form["NumSegments"]) == ("2", "1")
    assert form["MediaUrl1"] == "https://e.x/dog.png" and form["MediaContentType1"] == "image/png"
    assert (form["FromCity"], form["FromState"], form["FromCountry"]) == (
        "SAN FRANCISCO", "CA", "US")  # fmt: skip
    assert {"FromZip", "ToCity", "ToState", "ToZip", "ToCountry"} <= set(form)


def test_an_inbound_message_can_arrive_twice(sim: RunningServer, receiver: Receiver) -> None:
    control(sim, "post", "/config", json={"inbound_url": f"{receiver.url}/twilio/inbound"})

    answer = control(sim, "post", "/inbound", json={
        "from": "+14155550132", "to": POOL[0], "body": "hello", "repeat": 2,
    })  # fmt: skip

    hooks = receiver.wait_for(answer["sid"], 2)
    assert len(hooks) == 2 and hooks[0]["form"] == hooks[1]["form"]
    assert "OptOutType" not in hooks[0]["form"]
    assert all(signed_correctly(hook) for hook in hooks)


# --- configuration -----------------------------------------------------------


def test_config_comes_from_the_environment() -> None:
    config = config_from_env({
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "2" * 32,
        "SENDER_NUMBERS": "+18005550111, +18005550112",
        "PUBLIC_BASE_URL": "https://gw.example.com/", "TWILIO_SIM_STEP_DELAY_MS": "250",
    })  # fmt: skip

    assert config.account_sid == "AC" + "1" * 32 and config.auth_token == "t" * 32
    assert config.messaging_service_sid == "MG" + "2" * 32
    assert config.sender_numbers == ("+18005550111", "+18005550112")
    assert config.inbound_url == "https://gw.example.com/twilio/inbound"
    assert config.step_delay_s == 0.25
    explicit = config_from_env({"TWILIO_SIM_INBOUND_URL": "http://x/in", "PUBLIC_BASE_URL": "y"})
    assert explicit.inbound_url == "http://x/in"
    assert config_from_env({}) == TwilioSimConfig()


def test_dates_are_rfc2822_gmt(client: Client, sim: RunningServer) -> None:
    created = client.messages.create(to="+14155550133", from_=POOL[0], body="hi")
    wait_status(client, created.sid, "delivered")

    raw = requests.get(
        f"{sim.url}/2010-04-01/Accounts/{SID}/Messages/{created.sid}.json",
        auth=(SID, TOKEN), timeout=5,
    ).json()  # fmt: skip

    assert RFC2822.match(raw["date_sent"])
    sent = parsedate_to_datetime(raw["date_sent"])
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 5
