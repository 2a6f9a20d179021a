"""Thousands of random and hostile requests to every endpoint, signed and unsigned.

No answer may be a 5xx, nothing may be stored from an unsigned (or unauthenticated)
request, and the gateway must work normally afterwards. Seeded, so a failure
can be replayed.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any
from urllib.parse import quote

import pytest

from app import create_app
from app.services import Services
from db.pool import Database
from tests.webapp import (
    CUSTOMER,
    inbound,
    message_json,
    new_sid,
    post_signed,
    push,
    receipt,
    rows,
    sent_message,
    sign,
)

SEED = 20261201
TABLES = ("outbox", "twilio_receipts", "inbound_messages", "consent", "consent_history",
          "keyword_messages", "sms_gateway_state", "twilio_messages", "cxone_status_updates")
TWILIO_FIELDS = ("MessageSid", "SmsSid", "SmsMessageSid", "MessageStatus", "SmsStatus",
                 "ErrorCode", "From", "To", "Body", "NumMedia", "MediaUrl0",
                 "MediaContentType0", "OptOutType", "AccountSid", "NumSegments")
ADMIN = {"Authorization": "Bearer admin-secret"}


def hostile_text(rng: random.Random) -> str:
    """A value an attacker (or a broken peer) might send."""
    choice = rng.randrange(14)
    if choice == 0:
        return "".join(chr(rng.randrange(0, 256)) for _ in range(rng.randrange(1, 60)))
    if choice == 1:
        return str(rng.choice([2 ** 31, 2 ** 63, -1, 10 ** 40, 99999999999999999999]))
    if choice == 2:
        return "[" * rng.randrange(1, 3000) + "]" * rng.randrange(0, 3000)
    if choice == 3:
        return rng.choice(["\x00", "\x07", "\x1b[31m", "\u0085", "\u2028"]) * rng.randrange(1, 5)
    if choice == 4:
        return rng.choice([CUSTOMER, "+18005550100", new_sid(), "delivered", "STOP"]) + \
            rng.choice(["\n", "\r\n", " ", "\t", "\x00"])
    if choice == 5:
        return "x" * rng.choice([100, 2000, 20_000])
    if choice == 6:
        return rng.choice(["..", ".", "../../etc/passwd", "%2e%2e", "/", "a/b", "file:///etc/passwd",
                           "javascript:alert(1)", "http://169.254.169.254/latest"])
    if choice == 7:
        return rng.choice(["\U0001f600" * 50, "e\u0301" * 30, "\ufeff", "\u202e"])
    if choice == 8:
        return ""
    if choice == 9:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 80)))
    if choice == 10:
        return rng.choice(["SM" + "0" * 31, "SM" + "g" * 32, "sm" + "a" * 32, "MM" + "f" * 32])
    if choice == 11:
        return rng.choice(["+", "+1", "+0000000", "+1" + "9" * 20, "++14155550100", "+1415555010O"])
    if choice == 12:
        return rng.choice(["queued", "sent", "delivered", "failed", "undelivered", "read",
                           "canceled", "bogus", "DELIVERED"])
    return str(rng.random())


def hostile_form(rng: random.Random, base: dict[str, str]) -> dict[str, str]:
    form = dict(base)
    for _ in range(rng.randrange(1, 5)):
        form[rng.choice(TWILIO_FIELDS)] = hostile_text(rng)
    if rng.random() < 0.1:
        form[hostile_text(rng)[:50] or "k"] = hostile_text(rng)
    return form


def hostile_json(rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        return hostile_text(rng)  # sent raw, not as JSON
    if choice == 1:
        return [rng.random()] * rng.randrange(0, 5)
    body = message_json()
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice(["id", "conversationId", "to", "from", "body", "status", "direction",
                          "channel", "attachments", hostile_text(rng)[:20] or "k"])
        value: Any = hostile_text(rng)
        if key == "attachments" and rng.random() < 0.5:
            value = [{"url": hostile_text(rng)}] * rng.randrange(0, 15)
        elif rng.random() < 0.15:
            value = rng.choice([None, 0, 10 ** 30, [], {}, True, {"x": [1, {"y": None}]}])
        body[key] = value
    return body


@pytest.fixture
def fuzz_client(database_url):
    from tests.webapp import gateway_settings

    services = Services(settings=gateway_settings(ADMIN_TOKEN="admin-secret"),
                        db=Database(database_url, max_size=4))
    yield create_app(services=services).test_client()
    services.close()


def _send(client, rng: random.Random, *, signed: bool) -> tuple[int, bool]:
    """Send one hostile request; (status, whether the endpoint needs a signature or token)."""
    endpoint = rng.randrange(6)
    return _send_to(client, rng, endpoint, signed=signed), endpoint < 5


def _send_to(client, rng: random.Random, endpoint: int, *, signed: bool) -> int:
    if endpoint in (0, 1):
        path = "/twilio/receipts" if endpoint == 0 else "/twilio/inbound"
        base = receipt(new_sid(), "sent") if endpoint == 0 else inbound("hello")
        form = hostile_form(rng, base)
        forged = "".join(c for c in hostile_text(rng)[:100] if c.isprintable() and c.isascii())
        headers = {"X-Twilio-Signature": sign(path, form) if signed else
                   rng.choice(["", "forged", forged])}
        if rng.random() < 0.05:  # raw bytes, not a form at all
            return client.post(path, data=bytes(rng.randrange(256) for _ in range(200)),
                               headers=headers,
                               content_type="application/x-www-form-urlencoded").status_code
        return client.post(path, data=form, headers=headers).status_code
    if endpoint == 2:
        body = hostile_json(rng)
        token = "push-secret" if signed else rng.choice([None, "nope"])
        if isinstance(body, str):
            return client.post("/cxone/outbound", data=body.encode("utf-8", "surrogatepass"),
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {token}"}).status_code
        return push(client, body, token=token).status_code
    if endpoint == 3:
        headers = ADMIN if signed else {"Authorization": rng.choice(["", "Bearer x"])}
        number = quote(hostile_text(rng)[:200], safe="") or "x"
        method = rng.choice(["get", "put"])
        if method == "get":
            return client.get(f"/admin/consent/{number}", headers=headers).status_code
        return client.put(f"/admin/consent/{number}", headers=headers,
                          json=rng.choice([{"status": "opted_in",
                                            "evidence": {"n": hostile_text(rng)}},
                                           {"status": hostile_text(rng)}, []])).status_code
    if endpoint == 4:
        headers = ADMIN if signed else {}
        query = {rng.choice(["limit", "kind", "error"]): hostile_text(rng)[:500]}
        path = rng.choice(["/admin/dead-letters", "/admin/status", "/admin/messages/x/trace",
                           f"/admin/messages/{quote(hostile_text(rng)[:100], safe='') or 'x'}"
                           "/trace",
                           "/admin/dead-letters/1"])
        return client.get(path, headers=headers, query_string=query).status_code
    # /readyz is left out: with no worker running it rightly answers 503 (checked after).
    path = rng.choice(["/healthz", "/metrics", "/nope", "/admin/dead-letters/replay"])
    return client.open(path, method=rng.choice(["GET", "POST", "DELETE"]),
                       data=hostile_text(rng)).status_code


def _counts(database_url: str) -> dict[str, int]:
    return {t: rows(database_url, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def test_hostile_requests_never_5xx_and_unsigned_store_nothing(fuzz_client, database_url):
    rng = random.Random(SEED)
    for n in range(1500):
        status, guarded = _send(fuzz_client, rng, signed=False)
        assert status < 500, f"unsigned request {n} answered {status}"
        assert not (guarded and 200 <= status < 300), f"unsigned request {n} was accepted"
    assert all(v == 0 for v in _counts(database_url).values()), _counts(database_url)

    statuses = []
    for n in range(1500):
        status, _ = _send(fuzz_client, rng, signed=True)
        assert status < 500, f"signed request {n} answered {status}"
        statuses.append(status)
    # The signed half got past the gates: much of it was refused as bad input, some stored.
    assert statuses.count(400) > 200 and sum(200 <= s < 300 for s in statuses) > 200
    assert _counts(database_url)["inbound_messages"] > 0

    # Still healthy: the database answers and ordinary traffic works as before.
    assert fuzz_client.get("/healthz").status_code == 200
    assert fuzz_client.get("/readyz").get_json()["checks"]["database"]["status"] == "ok"
    sid, _ = sent_message(database_url)
    assert post_signed(fuzz_client, "/twilio/receipts", receipt(sid, "delivered")).status_code \
        == 200
    assert post_signed(fuzz_client, "/twilio/inbound", inbound("still here")).status_code == 200
    assert push(fuzz_client, message_json()).status_code == 202
    assert json.loads(fuzz_client.get("/admin/status", headers=ADMIN).data)["queue"]


def test_hostile_requests_to_the_byoc_box_and_media_never_5xx(database_url):
    from tests.integration.test_byoc import CHANNEL, THREAD, dfo_settings, reply, token

    services = Services(settings=dfo_settings(), db=Database(database_url, max_size=4))
    box = create_app(services=services).test_client()
    rng = random.Random(SEED + 1)
    try:
        for n in range(600):  # unauthenticated: nothing stored
            body = hostile_json(rng) if rng.random() < 0.5 else reply(hostile_text(rng))
            path = rng.choice([f"/byoc/2.0/channel/{CHANNEL}/outbound",
                               f"/byoc/1.0/posts/{THREAD}/messages",
                               f"/byoc/2.0/channel/{quote(hostile_text(rng)[:80], safe='')}"
                               "/outbound", "/byoc/1.0/token"])
            answer = box.post(path, json=body if not isinstance(body, str) else None,
                              data=body if isinstance(body, str) else None,
                              headers={"Authorization": "Bearer " + rng.choice(["x", ""])})
            assert answer.status_code < 500, (n, path, answer.status_code)
            assert path.endswith("/token") or not 200 <= answer.status_code < 300
        assert _counts(database_url)["outbox"] == 0
        bearer = token(box)
        for n in range(600):  # with a valid token: bad bodies are 4xx, good ones 200
            body = reply(hostile_text(rng)) if rng.random() < 0.6 else hostile_json(rng)
            if isinstance(body, dict) and rng.random() < 0.5:
                body[rng.choice(["thread", "endUserRecipients", "attachments", "messageId"])] = \
                    rng.choice([hostile_text(rng), [{"idOnExternalPlatform": hostile_text(rng),
                                                      "isPrimary": True}], None, {}, 10 ** 30])
            answer = box.post(f"/byoc/2.0/channel/{CHANNEL}/outbound",
                              json=body if not isinstance(body, str) else None,
                              data=body if isinstance(body, str) else None,
                              content_type="application/json",
                              headers={"Authorization": f"Bearer {bearer}"})
            assert answer.status_code < 500, (n, answer.status_code, answer.get_data()[:200])
        for _ in range(200):
            name = quote(hostile_text(rng)[:120], safe="") or "x"
            assert box.get(f"/media/{name}").status_code in (404, 308)
        assert box.get("/healthz").status_code == 200
    finally:
        services.close()
