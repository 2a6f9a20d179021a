"""Delivery receipts: dedupe, history, the forward-only state machine, CXone updates.

The same path serves Twilio's status callbacks, receipts that arrived before
their SID was stored (applied when it lands), and the reconciler's fetches.
Database work only: no call to CXone or Twilio happens here.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from app import metrics
from app.compliance import OPTED_OUT
from app.config import Settings
from app.consent import record_consent
from app.logs import event
from app.status_sync import enqueue_cxone_update
from app.statuses import (
    OPT_OUT_ERROR,
    TWILIO_FINAL,
    cxone_update_for_final,
    should_redispatch,
    twilio_moves_forward,
)
from db import audit, messages, outbox
from db.pool import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """One status report for one Twilio message."""

    sid: str
    status: str
    error_code: int | None = None
    from_: str | None = None
    source: str = "callback"  # or "reconcile"


def parse_error_code(value: Any) -> int | None:
    """Twilio's ErrorCode as an int (absent, empty or junk → None)."""
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def record_receipt(conn: Connection, settings: Settings, receipt: Receipt) -> str:
    """Store and apply one receipt inside the caller's transaction; returns what happened.

    ``duplicate``: seen before. ``pending``: SID not stored yet (kept, applied when
    it lands). Otherwise the result of :func:`_apply`.
    """
    messages.lock_sid(conn, receipt.sid)
    receipt_id = messages.insert_receipt(conn, sid=receipt.sid, status=receipt.status,
                                         error_code=receipt.error_code, source=receipt.source)
    if receipt_id is None:
        result = "duplicate"
    else:
        message = messages.twilio_message_for_update(conn, receipt.sid)
        if message is None:
            event(log, "receipt.unknown_sid", sid=receipt.sid, status=receipt.status)
            result = "pending"
        else:
            result = _apply(conn, settings, message, receipt, receipt_id)
    metrics.RECEIPTS.labels(receipt.status, result).inc()
    return result


def apply_pending_receipts(conn: Connection, settings: Settings, sid: str) -> int:
    """Apply receipts that arrived before ``sid`` was stored (caller holds lock_sid)."""
    pending = messages.unapplied_receipts(conn, sid)
    for row in pending:
        message = messages.twilio_message_for_update(conn, sid)
        if message is None:
            return 0
        receipt = Receipt(sid=sid, status=row["message_status"], error_code=row["error_code"],
                          source=row["source"])
        _apply(conn, settings, message, receipt, int(row["id"]))
    return len(pending)


def _apply(conn: Connection, settings: Settings, message: dict[str, Any], receipt: Receipt,
           receipt_id: int) -> str:
    messages.mark_receipt_applied(conn, receipt_id)
    if not twilio_moves_forward(message["status"], receipt.status):
        event(log, "receipt.stale", sid=receipt.sid, status=receipt.status,
              current=message["status"])
        return "stale"
    messages.set_twilio_message_status(conn, receipt.sid, receipt.status,
                                       error_code=receipt.error_code, from_=receipt.from_)
    message_id = message["cxone_message_id"]
    audit.append(conn, "message.status", source=receipt.source, message_id=message_id,
                 sid=receipt.sid, from_state=message["status"], to_state=receipt.status,
                 reason=None if receipt.error_code is None else str(receipt.error_code))
    if receipt.error_code == OPT_OUT_ERROR:
        record_consent(conn, message["to_number"], OPTED_OUT, source="twilio_21610",
                       evidence={"sid": receipt.sid, "via": receipt.source})
    if message["purpose"] != "reply" or not message_id:
        return "applied"
    if messages.state_of_sid(conn, receipt.sid) is None:
        return "superseded"  # an earlier dispatch of a re-dispatched message
    final = receipt.status in TWILIO_FINAL
    if final and should_redispatch(receipt.status, receipt.error_code) \
            and schedule_redispatch(conn, settings, message, receipt):
        messages.set_state_status(conn, receipt.sid, receipt.status,
                                  error_code=receipt.error_code, from_=receipt.from_, outcome=None)
        return "redispatch"
    messages.set_state_status(conn, receipt.sid, receipt.status, error_code=receipt.error_code,
                              from_=receipt.from_, outcome=receipt.status if final else None)
    if not final:
        return "applied"
    update = cxone_update_for_final(receipt.status, receipt.error_code)
    assert update is not None
    enqueue_cxone_update(conn, message_id, update)
    event(log, "receipt.final", sid=receipt.sid, status=receipt.status,
          error_code=receipt.error_code, message_id=message_id)
    return "final"


def schedule_redispatch(conn: Connection, settings: Settings, message: dict[str, Any],
                        receipt: Receipt) -> bool:
    """30008/30022: send again later from another sender, within the attempt cap.

    False when the cap is reached (the failure is then final).
    """
    job = outbox.get_by_dedupe_key(conn, message["cxone_message_id"])
    if job is None:
        return False  # the job is long gone (housekeeping): report the failure instead
    if job["state"] == "queued":
        event(log, "send.redispatch_skipped", sid=receipt.sid,
              message_id=message["cxone_message_id"], reason="send job is still live")
        return True
    attempts = int(job["attempts"])
    if attempts + 1 >= settings.max_attempts:
        event(log, "send.redispatch_exhausted", logging.WARNING, sid=receipt.sid,
              message_id=message["cxone_message_id"], attempts=attempts + 1)
        return False
    failed_sender = receipt.from_ or message["from_number"]
    sender = next_sender(settings.sender_numbers, failed_sender)
    delay = settings.retry_30008_delay_s * (2 if receipt.error_code == 30022 else 1)
    delay += random.uniform(0, max(1.0, delay / 3))
    patch = {"dispatch": int(message["dispatch"]) + 1, "sender": sender, "slot": None,
             "redispatch_of": receipt.sid}
    if outbox.reopen(conn, message["cxone_message_id"], patch, delay_s=delay) is None:
        return False
    audit.append(conn, "send.redispatch_scheduled", source=receipt.source,
                 message_id=message["cxone_message_id"], sid=receipt.sid,
                 from_state=receipt.status, to_state="queued",
                 reason=str(receipt.error_code),
                 details={"delay_s": round(delay, 1), "sender": sender,
                          "dispatch": patch["dispatch"]})
    event(log, "send.redispatch_scheduled", sid=receipt.sid, error_code=receipt.error_code,
          message_id=message["cxone_message_id"], sender=sender, delay_s=round(delay, 1))
    return True


def next_sender(pool: tuple[str, ...], failed: str | None) -> str | None:
    """The pool's next number after ``failed`` (None: let Twilio pick from the service)."""
    if not pool:
        return None
    if failed in pool:
        return pool[(pool.index(failed) + 1) % len(pool)]
    return pool[0]
