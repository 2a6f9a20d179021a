"""Delivery receipts: dedupe, history, the forward-only state machine, CXone updates.

The same path serves Twilio's status callbacks, receipts that arrived before
their SID was stored (applied when it lands), and the reconciler's fetches.
The write itself is one statement (smsgw_apply_receipt); what follows a final
status (CXone update, re-dispatch, opt-out) is decided here. Database work
only: no call to CXone or Twilio happens here.
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
    twilio_rank,
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

    @property
    def final(self) -> bool:
        return self.status in TWILIO_FINAL

    @property
    def needs_follow_up(self) -> bool:
        """Python must act after the write (re-dispatch, opt-out): run it in a transaction.

        Every other receipt, final ones included, is a single statement.
        """
        return self.error_code == OPT_OUT_ERROR or should_redispatch(self.status,
                                                                     self.error_code)


def parse_error_code(value: Any) -> int | None:
    """Twilio's ErrorCode as an int (absent, empty, junk or out of range → None).

    Twilio's codes have five digits; anything longer is not one of them (and
    would not fit the column).
    """
    raw = str(value).strip() if value is not None else ""
    if not raw or len(raw) > 6 or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def record_receipt(conn: Connection, settings: Settings, receipt: Receipt, *,
                   receipt_id: int | None = None) -> str:
    """Store and apply one receipt; returns what happened.

    When ``receipt.needs_follow_up`` it must run inside the caller's transaction
    (the status and what follows from it commit together); otherwise it is one
    statement that also records the outcome and queues the CXone update.
    ``duplicate``: seen before. ``pending``: SID not stored yet (kept, applied when
    it lands). ``stale``: it would move the status backwards. Otherwise
    ``applied``, ``superseded``, ``redispatch`` or ``final``.
    """
    update = None
    if receipt.final and not receipt.needs_follow_up:
        update = cxone_update_for_final(receipt.status, receipt.error_code)
    row = messages.apply_receipt(conn, sid=receipt.sid, status=receipt.status,
                                 rank=twilio_rank(receipt.status),
                                 error_code=receipt.error_code, from_=receipt.from_,
                                 source=receipt.source, receipt_id=receipt_id,
                                 cxone_update=update)
    result = row["result"]
    if result == "pending":
        event(log, "receipt.unknown_sid", sid=receipt.sid, status=receipt.status)
    elif result == "final":
        _log_final(receipt, row["cxone_message_id"])
    elif result == "applied" and receipt.needs_follow_up:
        result = _follow_up(conn, settings, receipt, row)
    elif result == "applied" and row["purpose"] == "reply" and not row["mapped"]:
        result = "superseded"  # an earlier dispatch of a re-dispatched message
    metrics.RECEIPTS.labels(receipt.status, result).inc()
    return str(result)


def apply_pending_receipts(conn: Connection, settings: Settings, sid: str) -> int:
    """Apply receipts that arrived before ``sid`` was stored, inside one transaction."""
    pending = messages.unapplied_receipts(conn, sid)
    for row in pending:
        receipt = Receipt(sid=sid, status=row["message_status"], error_code=row["error_code"],
                          source=row["source"])
        record_receipt(conn, settings, receipt, receipt_id=int(row["id"]))
    return len(pending)


def _follow_up(conn: Connection, settings: Settings, receipt: Receipt,
               message: dict[str, Any]) -> str:
    """What only Python can do after the write: opt-out, re-dispatch (or its final report)."""
    if receipt.error_code == OPT_OUT_ERROR:
        record_consent(conn, message["to_number"], OPTED_OUT, source="twilio_21610",
                       evidence={"sid": receipt.sid, "via": receipt.source})
    message_id = message["cxone_message_id"]
    if message["purpose"] != "reply" or not message_id:
        return "applied"
    if not message["mapped"]:
        return "superseded"  # an earlier dispatch of a re-dispatched message
    if not receipt.final:
        return "applied"
    if should_redispatch(receipt.status, receipt.error_code) \
            and schedule_redispatch(conn, settings, message, receipt):
        return "redispatch"
    messages.set_outcome(conn, receipt.sid, receipt.status)
    update = cxone_update_for_final(receipt.status, receipt.error_code)
    assert update is not None
    enqueue_cxone_update(conn, message_id, update)
    _log_final(receipt, message_id)
    return "final"


def _log_final(receipt: Receipt, message_id: str | None) -> None:
    event(log, "receipt.final", sid=receipt.sid, status=receipt.status,
          error_code=receipt.error_code, message_id=message_id)


def schedule_redispatch(conn: Connection, settings: Settings, message: dict[str, Any],
                        receipt: Receipt) -> bool:
    """30008/30022: send again later from another sender, within the attempt cap.

    False when the cap is reached (the failure is then final).
    """
    message_id = message["cxone_message_id"]
    job = outbox.get_by_dedupe_key(conn, message_id)
    if job is None:
        return False  # the job is long gone (housekeeping): report the failure instead
    if job["state"] == "queued":
        event(log, "send.redispatch_skipped", sid=receipt.sid, message_id=message_id,
              reason="send job is still live")
        return True
    attempts = int(job["attempts"])
    if attempts + 1 >= settings.max_attempts:
        event(log, "send.redispatch_exhausted", logging.WARNING, sid=receipt.sid,
              message_id=message_id, attempts=attempts + 1)
        return False
    sender = next_sender(settings.sender_numbers, receipt.from_ or message["from_number"])
    delay = settings.retry_30008_delay_s * (2 if receipt.error_code == 30022 else 1)
    delay += random.uniform(0, max(1.0, delay / 3))
    patch = {"dispatch": int(message["dispatch"]) + 1, "sender": sender, "slot": None,
             "redispatch_of": receipt.sid}
    if outbox.reopen(conn, message_id, patch, delay_s=delay) is None:
        return False
    audit.append(conn, "send.redispatch_scheduled", source=receipt.source,
                 message_id=message_id, sid=receipt.sid, from_state=receipt.status,
                 to_state="queued", reason=str(receipt.error_code),
                 details={"delay_s": round(delay, 1), "sender": sender,
                          "dispatch": patch["dispatch"]})
    event(log, "send.redispatch_scheduled", sid=receipt.sid, error_code=receipt.error_code,
          message_id=message_id, sender=sender, delay_s=round(delay, 1))
    return True


def next_sender(pool: tuple[str, ...], failed: str | None) -> str | None:
    """The pool's next number after ``failed`` (None: let Twilio pick from the service)."""
    if not pool:
        return None
    if failed in pool:
        return pool[(pool.index(failed) + 1) % len(pool)]
    return pool[0]
