"""Driving the web app in tests: signed Twilio webhooks, CXone pushes, rows to check.

The ``settings`` and ``client`` fixtures (tests/integration/conftest.py) build
the app on a fresh database; these helpers sign and post what Twilio and CXone
would send.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
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
    """A reply the worker sent (its SID and CXone id), recorded the way the send job records
    one (smsgw_record_sent), except that no SENT report is queued."""
    from app.jobs import Kind, SendJob
    from app.statuses import twilio_rank
    from db import send

    sid, message_id = new_sid(), message_id or f"msg_{uuid.uuid4().hex[:8]}"
    job = SendJob(to=CUSTOMER, body="x", message_id=message_id, conversation_id="conv_1",
                  from_=BUSINESS)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        job_id = conn.execute("INSERT INTO outbox (kind, dedupe_key, payload, claims) "
                              "VALUES (%s, %s, %s, 1) RETURNING id",
                              (job.kind, job.dedupe_key, Jsonb(job.payload()))).fetchone()["id"]
        send.record_sent(conn, sid=sid, status=status, status_rank=twilio_rank(status),
                         message_id=message_id, conversation_id="conv_1", purpose="reply",
                         dispatch=1, to=CUSTOMER, **{"from": BUSINESS}, adopted=False,
                         idempotency_key=f"key-{sid}", report_to=message_id, report_status=None,
                         status_kind=Kind.CXONE_STATUS, job_id=job_id, job_claims=1,
                         audit_event="send.created", audit_details={}, part=1, parts=1,
                         segments=1, encoding="GSM-7", complete=True)
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
