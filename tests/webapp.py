"""Driving the web app in tests: signed Twilio webhooks, CXone pushes, rows to check.

The ``settings`` and ``client`` fixtures (tests/integration/conftest.py) build
the app on a fresh database; these helpers sign and post what Twilio and CXone
would send.
"""

from __future__ import annotations

import uuid

import psycopg
from twilio.request_validator import RequestValidator

from app.config import Settings
from sandbox import defaults

PUBLIC = "https://sms.example.com"
CUSTOMER = "+14155550100"
BUSINESS = "+18005550100"


def gateway_settings(**overrides: str) -> Settings:
    """The web process's settings for these tests (Twilio signs against PUBLIC)."""
    return Settings.from_env({
        "CXONE_CLIENT_ID": "id", "CXONE_CLIENT_SECRET": "secret",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": PUBLIC, "SENDER_NUMBERS": f"{BUSINESS},+18005550101",
        "CXONE_WEBHOOK_TOKEN": "push-secret", "RETRY_30008_DELAY_S": "30",
        **overrides,
    })


def sign(path: str, params: dict[str, str], token: str = defaults.TWILIO_AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC + path, params)


def post_signed(client, path: str, params: dict[str, str], **headers):
    return client.post(path, data=params,
                       headers={"X-Twilio-Signature": sign(path, params), **headers})


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def rows(url: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def sent_message(url: str, *, status: str = "accepted", message_id: str | None = None) -> tuple:
    """A message the worker sent: its SID, the CXone ids, as the send job records them."""
    sid, message_id = new_sid(), message_id or f"msg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, "
                     "to_number, from_number, status) VALUES (%s, %s, 'conv_1', %s, %s, %s)",
                     (sid, message_id, CUSTOMER, BUSINESS, status))
        conn.execute("INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id, "
                     "twilio_message_sid, twilio_status, direction, to_number, from_number) "
                     "VALUES ('conv_1', %s, %s, %s, 'OUTBOUND', %s, %s)",
                     (message_id, sid, status, CUSTOMER, BUSINESS))
        conn.execute("INSERT INTO outbox (kind, dedupe_key, payload, state) "
                     "VALUES ('send_sms', %s, %s, 'done')",
                     (message_id, psycopg.types.json.Jsonb({"to": CUSTOMER, "body": "x"})))
    return sid, message_id


def receipt(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
              "AccountSid": defaults.TWILIO_ACCOUNT_SID, "From": BUSINESS, "To": CUSTOMER,
              "ApiVersion": "2010-04-01",
              "MessagingServiceSid": defaults.TWILIO_MESSAGING_SERVICE_SID}
    if error_code:
        params["ErrorCode"] = error_code
    return params


def cxone_updates(url: str, message_id: str) -> list[tuple]:
    return rows(url, "SELECT status, reason_code FROM cxone_status_updates "
                     "WHERE cxone_message_id = %s ORDER BY id", message_id)


def inbound(body: str, *, sid: str | None = None, **extra: str) -> dict[str, str]:
    sid = sid or new_sid()
    return {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": defaults.TWILIO_ACCOUNT_SID,
            "MessagingServiceSid": defaults.TWILIO_MESSAGING_SERVICE_SID, "From": CUSTOMER,
            "To": BUSINESS, "Body": body, "NumMedia": "0", "NumSegments": "1",
            "SmsStatus": "received", "ApiVersion": "2010-04-01", **extra}


def message_json(**overrides) -> dict:
    return {"id": f"msg_{uuid.uuid4().hex[:8]}", "conversationId": "conv_1",
            "direction": "OUTBOUND", "channel": "SMS", "from": BUSINESS, "to": CUSTOMER,
            "body": "pushed", "status": "PENDING", "createdTime": "2026-11-28T10:00:00Z",
            **overrides}


def push(client, body, token="push-secret"):
    return client.post("/cxone/outbound", json=body,
                       headers={"Authorization": f"Bearer {token}"} if token else {})
