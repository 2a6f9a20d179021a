"""The send job's bookkeeping (worker/send.py): recording a created (or adopted) message,
a refused create, and looking an earlier, unanswered create up at Twilio."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app import metrics
from app.compliance import OPTED_OUT
from app.consent import record_consent
from app.errors import PermanentError
from app.jobs import Kind, SendJob
from app.logs import event
from app.receipts import Receipt, apply_pending_receipts, record_receipt
from app.status_sync import queue_report
from app.statuses import OPT_OUT_ERROR, SENT, error_message, failed_report, twilio_rank
from app.twilio_client import TwilioMessage
from db import audit, messages, outbox
from db import send as store
from worker.jobs import Handled, Outcome

if TYPE_CHECKING:
    from worker.send import Part, Send

log = logging.getLogger(__name__)

# How far back an ambiguous attempt's message may have been created (clock skew).
LOOKUP_SKEW_S = 120.0


def adopt_from_key(known: store.KeyState, msg: SendJob, body: str) -> TwilioMessage:
    """The message a key recorded as sent (adopted again without asking Twilio)."""
    result = known.result or {}
    assert known.sid is not None
    return TwilioMessage(sid=known.sid, status=result.get("status", "accepted"), to=msg.to,
                         from_=result.get("from"), body=body, error_code=None,
                         date_created=None)


def look_up(send: Send, part: Part, started_at: datetime) -> TwilioMessage | None:
    """The message an earlier attempt created, if Twilio has one (to adopt); None if not."""
    ctx, msg = send.ctx, send.msg
    found = ctx.services.twilio.find_messages(
        to=msg.to, from_=send.pace.sender, since=started_at - timedelta(seconds=LOOKUP_SKEW_S))
    candidates = [m for m in found if (m.body or "") == part.body]
    if candidates:
        with ctx.db.connection() as conn:
            taken = store.sids_taken(conn, [m.sid for m in candidates])
        candidates = [m for m in candidates if m.sid not in taken]
    if not candidates:
        event(log, "send.lookup_not_found", message_id=msg.message_id, to=msg.to)
        return None
    # Oldest first: the earliest unclaimed match is the one our earlier attempt made.
    candidates.sort(key=lambda m: m.date_created or started_at)
    event(log, "send.lookup_found", message_id=msg.message_id, sid=candidates[0].sid)
    return candidates[0]


def record_sent(send: Send, part: Part, created: TwilioMessage,
                adopted_from: str | None) -> Outcome | None:
    """Store the SID and what follows, in one statement (smsgw_record_sent): the first part
    maps the message and queues CXone's SENT, the last finishes the job. None while more
    parts are to go.

    A message adopted from Twilio may already be further along (even delivered):
    it is recorded as just accepted and its current status is then applied as a
    receipt, so the same state machine reports what follows from it.
    """
    ctx, job, msg = send.ctx, send.job, send.msg
    sender = created.from_ or send.pace.sender
    initial = created.status if twilio_rank(created.status) <= twilio_rank("queued") \
        else "accepted"
    report_to = msg.message_id if msg.purpose == "reply" else None  # HELP reports to no one
    with ctx.db.connection() as conn:
        recorded = store.record_sent(
            conn, sid=created.sid, status=initial, status_rank=twilio_rank(initial),
            message_id=msg.message_id, conversation_id=msg.conversation_id,
            purpose=msg.purpose, dispatch=msg.dispatch, to=msg.to, **{"from": sender},
            adopted=adopted_from == "lookup", idempotency_key=part.key, report_to=report_to,
            report_status=SENT, status_kind=Kind.CXONE_STATUS, job_id=job.id,
            job_claims=job.claims, audit_event="send.adopted" if adopted_from else "send.created",
            audit_details={"dispatch": msg.dispatch, "sender": sender, "job_id": job.id,
                           "adopted_from": adopted_from, "part": part.index,
                           "parts": part.count, "segments": part.counted.segments},
            part=part.index, parts=part.count, segments=part.counted.segments,
            encoding=part.counted.encoding, complete=part.last)
    if not recorded["completed"]:
        event(log, "job.lease_lost", logging.WARNING, job_id=job.id, kind=job.kind)
    if recorded["receipts_waiting"]:  # callbacks that beat this commit
        with ctx.db.transaction() as conn:
            messages.lock_sid(conn, created.sid)
            apply_pending_receipts(conn, ctx.settings, created.sid)
    if initial != created.status:
        with ctx.db.transaction() as conn:
            record_receipt(conn, ctx.settings, Receipt(
                sid=created.sid, status=created.status, error_code=created.error_code,
                from_=created.from_, source="reconcile"))
    metrics.SENDS.labels("adopted" if adopted_from else "sent", "").inc()
    event(log, "send.created" if not adopted_from else "send.adopted", sid=created.sid,
          message_id=msg.message_id, to=msg.to, sender=sender, dispatch=msg.dispatch,
          part=part.index, parts=part.count, segments=part.counted.segments)
    return Handled() if part.last else None


def record_failed(send: Send, part: Part, exc: PermanentError) -> Outcome:
    """A create Twilio refused for good: CXone FAILED with Twilio's code; 21610 opts out.
    The parts of a long reply after it are not sent."""
    msg = send.msg
    code = int(exc.code) if exc.code and exc.code.isdigit() else None
    with send.ctx.db.transaction() as conn:
        store.finish_key(conn, part.key, state="failed", sid=None,
                         result={"code": exc.code, "status": exc.status})
        if msg.message_id and msg.purpose == "reply":
            queue_report(conn, msg.message_id, failed_report(exc.code, error_message(code)))
        if code == OPT_OUT_ERROR:
            record_consent(conn, msg.to, OPTED_OUT, source="twilio_21610",
                           evidence={"message_id": msg.message_id, "via": "create"})
        audit.append(conn, "send.failed", source="twilio", message_id=msg.message_id,
                     phone=msg.to, to_state="FAILED", reason=str(exc.code),
                     details={"http_status": exc.status, "error": str(exc)[:300],
                              "part": part.index})
        outbox.complete(conn, send.job)
    metrics.SENDS.labels("failed", str(exc.code or "")).inc()
    event(log, "send.failed", message_id=msg.message_id, to=msg.to, code=exc.code)
    return Handled()
