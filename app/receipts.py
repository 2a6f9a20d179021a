"""Delivery receipts: dedupe, history, the forward-only state machine, CXone reports.

The same path serves Twilio's status callbacks, receipts that arrived before
their SID was stored (applied when it lands), and the reconciler's fetches.
Every decision is made here, before the write: the status's rank and finality,
what CXone hears if this receipt ends the message, and whether a 30008/30022
failure is sent again instead. The write is one statement (smsgw_apply_receipt);
afterwards only an opt-out (21610) or a re-dispatch remain. Database work only:
no call to CXone or Twilio happens here.
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
from app.jobs import Kind, SendJob
from app.logs import event
from app.statuses import OPT_OUT_ERROR, is_final, report_for_final, should_redispatch, twilio_rank
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
    def needs_follow_up(self) -> bool:
        """More than one statement (an opt-out, a possible re-dispatch): run it in a
        transaction. Every other receipt, final ones included, is a single statement."""
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

    When ``receipt.needs_follow_up`` it must run inside the caller's transaction.
    ``duplicate``: seen before. ``pending``: SID not stored yet (kept, applied when
    it lands). ``stale``: it would move the status backwards. Otherwise ``applied``,
    ``superseded`` (an earlier dispatch), ``redispatch`` or ``final``.
    """
    final = is_final(receipt.status)
    report = report_for_final(receipt.status, receipt.error_code) if final else None
    again: Redispatch | None = None
    if report is not None and should_redispatch(receipt.status, receipt.error_code):
        again = _next_dispatch(conn, settings, receipt)
        if again is not None:
            report = None  # not the end of the message: it is sent again
    row = messages.apply_receipt(conn, sid=receipt.sid, status=receipt.status,
                                 rank=twilio_rank(receipt.status), final=final,
                                 error_code=receipt.error_code, from_=receipt.from_,
                                 source=receipt.source, receipt_id=receipt_id, report=report,
                                 status_kind=Kind.CXONE_STATUS)
    result = str(row["result"])
    if result in ("applied", "final") and receipt.error_code == OPT_OUT_ERROR:
        record_consent(conn, row["to_number"], OPTED_OUT, source="twilio_21610",
                       evidence={"sid": receipt.sid, "via": receipt.source})
    if result == "applied" and row["purpose"] == "reply" and not row["mapped"]:
        result = "superseded"  # an earlier dispatch of a re-dispatched message
    elif result == "applied" and again is not None:
        result = _schedule(conn, settings, receipt, again)
    if result == "pending":
        event(log, "receipt.unknown_sid", sid=receipt.sid, status=receipt.status)
    elif result == "final":
        event(log, "receipt.final", sid=receipt.sid, status=receipt.status,
              error_code=receipt.error_code, message_id=row["cxone_message_id"])
    metrics.RECEIPTS.labels(receipt.status, result).inc()
    return result


def apply_pending_receipts(conn: Connection, settings: Settings, sid: str) -> int:
    """Apply receipts that arrived before ``sid`` was stored, inside one transaction."""
    pending = messages.unapplied_receipts(conn, sid)
    for row in pending:
        receipt = Receipt(sid=sid, status=row["message_status"], error_code=row["error_code"],
                          source=row["source"])
        record_receipt(conn, settings, receipt, receipt_id=int(row["id"]))
    return len(pending)


@dataclass(frozen=True)
class Redispatch:
    """The next dispatch of a message, or (``live``) its send job still runs anyway."""

    job: SendJob
    live: bool = False


def _next_dispatch(conn: Connection, settings: Settings,
                   receipt: Receipt) -> Redispatch | None:
    """The re-dispatch a 30008/30022 failure earns, within the attempt cap; None when the
    failure ends the message (cap reached, not a reply, job gone, an earlier dispatch)."""
    facts = messages.redispatch_facts(conn, receipt.sid)
    if facts is None or facts["purpose"] != "reply" or not facts["mapped"] \
            or facts["final"] or facts["job_payload"] is None:
        return None
    if facts["parts"] > 1:
        return None  # a part of a long reply is not sent again alone: the failure stands
    job = SendJob.from_payload(facts["job_payload"])
    if facts["job_state"] == "queued":
        return Redispatch(job, live=True)
    if int(facts["job_attempts"]) + 1 >= settings.max_attempts:
        event(log, "send.redispatch_exhausted", logging.WARNING, sid=receipt.sid,
              message_id=facts["cxone_message_id"], attempts=int(facts["job_attempts"]) + 1)
        return None
    sender = next_sender(settings.sender_numbers, receipt.from_ or facts["from_number"])
    return Redispatch(job.redispatched(sender=sender, after_sid=receipt.sid))


def _schedule(conn: Connection, settings: Settings, receipt: Receipt,
              again: Redispatch) -> str:
    """Queue the next dispatch after RETRY_30008_DELAY_S (twice that for 30022), jittered."""
    job = again.job
    delay = settings.retry_30008_delay_s * (2 if receipt.error_code == 30022 else 1)
    delay += random.uniform(0, max(1.0, delay / 3))
    if again.live or outbox.reopen(conn, job, delay_s=delay) is None:
        event(log, "send.redispatch_skipped", sid=receipt.sid, message_id=job.message_id,
              reason="send job is still live")
        return "redispatch"
    audit.append(conn, "send.redispatch_scheduled", source=receipt.source,
                 message_id=job.message_id, sid=receipt.sid, from_state=receipt.status,
                 to_state="queued", reason=str(receipt.error_code),
                 details={"delay_s": round(delay, 1), "sender": job.wanted_sender,
                          "dispatch": job.dispatch})
    event(log, "send.redispatch_scheduled", sid=receipt.sid, error_code=receipt.error_code,
          message_id=job.message_id, sender=job.wanted_sender, delay_s=round(delay, 1))
    return "redispatch"


def next_sender(pool: tuple[str, ...], failed: str | None) -> str | None:
    """The pool's next number after ``failed`` (None: let Twilio pick from the service)."""
    if not pool:
        return None
    if failed in pool:
        return pool[(pool.index(failed) + 1) % len(pool)]
    return pool[0]

