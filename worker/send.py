"""The send job: consent → idempotency → the sender's turn → Twilio create → record.

Exactly once rests on three things: the idempotency key is marked *in flight*
(committed) before the create; a create that may have reached Twilio without an
answer is looked up at Twilio before any resend; and the SID, CXone's SENT and
the job's completion are written in one statement (smsgw_record_sent).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from app import metrics
from app.compliance import OPTED_OUT, may_send
from app.consent import record_consent
from app.errors import AuthenticationFailed, PermanentError, TransientError
from app.jobs import Kind, SendJob
from app.logs import event
from app.pacing import KeyStart, Pace, pace_for, take_turn
from app.receipts import Receipt, apply_pending_receipts, record_receipt
from app.status_sync import queue_report
from app.statuses import OPT_OUT_ERROR, SENT, error_message, failed_report, twilio_rank
from app.twilio_client import TwilioMessage
from db import audit, messages, outbox
from db import send as store
from db.outbox import Job
from worker.jobs import Done, Handled, JobContext, Outcome, Reschedule

log = logging.getLogger(__name__)

# A turn at most this far away is waited for in the greenlet; a later one goes back
# to the queue (run_at = when to come back), so no greenlet is held for long.
HOLD_MAX_S = 0.5
# How far back an ambiguous attempt's message may have been created (clock skew).
LOOKUP_SKEW_S = 120.0
AUTH_RETRY_S = 60.0


class Send:
    """One send job being run: the job, what it sends, its pacing and idempotency key."""

    def __init__(self, ctx: JobContext, job: Job) -> None:
        self.ctx = ctx
        self.job = job
        self.msg = SendJob.from_payload(job.payload)
        self.pace: Pace = pace_for(ctx.settings, self.msg)
        self.key = store.key_for(self.msg.message_id or job.dedupe_key, self.msg.body,
                                 self.msg.to, self.msg.dispatch)


def handle_send(ctx: JobContext, job: Job) -> Outcome:
    """Run one send job (kind ``send_sms``)."""
    send = Send(ctx, job)
    msg = send.msg
    with ctx.db.connection() as conn:
        facts = store.before_send(conn, message_id=msg.message_id, to=msg.to, key=send.key,
                                  details={"job_id": job.id, "claim": job.claims,
                                           "worker": ctx.worker_id, "dispatch": msg.dispatch})
    if msg.purpose == "reply":
        allowed, reason = may_send(ctx.settings.consent_mode, facts.consent)
        if not allowed:
            return _refuse(send, reason or "no consent")
    if facts.mapped_dispatches is not None and facts.mapped_dispatches >= msg.dispatch:
        # Seed §1: a mapping exists, so this dispatch happened; never send it again.
        event(log, "send.already_mapped", message_id=msg.message_id)
        return Done()
    if facts.key_state == "sent":
        return _record(send, _from_key(facts.key_sid, facts.key_result, msg), "idempotency")
    if facts.key_state == "failed":
        return Done()  # reported already; nothing to send
    if facts.key_state == "in_flight":  # an earlier attempt may have reached Twilio
        assert facts.key_started_at is not None
        found = _resolve_ambiguous(send, facts.key_started_at)
        if found is not None:
            return found
    elif msg.lookup_first:  # a replayed dead letter: Twilio may hold it already
        found = _look_up(send, job.created_at)
        if found is not None:
            return found
    turn = _wait_for_turn(send)
    if not isinstance(turn, datetime):
        return turn
    return _create(send, turn)


# -- consent -------------------------------------------------------------------------------

def _refuse(send: Send, reason: str) -> Outcome:
    msg = send.msg
    code = "opted_out" if "opted out" in reason else "no_consent"
    with send.ctx.db.transaction() as conn:
        if msg.message_id:
            queue_report(conn, msg.message_id, failed_report(code, reason))
        audit.append(conn, "send.refused", source="consent", message_id=msg.message_id,
                     phone=msg.to, to_state="FAILED", reason=reason)
        outbox.complete(conn, send.job)
    metrics.SENDS.labels("refused", code).inc()
    event(log, "send.refused", message_id=msg.message_id, to=msg.to, reason=reason)
    return Handled()


# -- the sender's turn (app/pacing.py) -----------------------------------------------------

def _wait_for_turn(send: Send) -> Outcome | datetime:
    """Wait for the slot, then the sender's turn; when it is taken, the idempotency key is
    in flight and its start time is returned: the create goes now."""
    ctx, job, msg = send.ctx, send.job, send.msg
    early = (job.due_at - job.db_now).total_seconds()  # claimed a moment before its slot
    if early > 0 and not ctx.sleep(early):
        return Reschedule(run_at=job.due_at, reason="shutdown")
    start = KeyStart(key=send.key, message_id=msg.message_id, to=msg.to,
                     from_=send.pace.sender, ttl_s=store.KEY_TTL_S)
    slot = job.slot
    while True:
        with ctx.db.connection() as conn:
            turn = take_turn(conn, send.pace, start, job_id=job.id, claims=job.claims,
                             slot=slot)
        if turn.started and turn.key_started_at is None:  # another worker finished it
            return Reschedule(run_at=turn.db_now, reason="idempotency key finished elsewhere")
        if turn.started:
            assert turn.key_started_at is not None
            return turn.key_started_at
        slot = slot or turn.booked_slot
        wait = (turn.come_back_at - turn.db_now).total_seconds()
        _count_wait(send, wait)
        if wait > HOLD_MAX_S or not ctx.sleep(wait):
            return Reschedule(run_at=turn.come_back_at, reason="throttled")


def _count_wait(send: Send, wait_s: float) -> None:
    label = send.pace.sender or "service"
    metrics.THROTTLE_WAITS.labels(label).inc()
    metrics.THROTTLE_WAIT_SECONDS.labels(label).inc(max(0.0, wait_s))


# -- idempotency and the create ------------------------------------------------------------

def _create(send: Send, started: datetime) -> Outcome:
    ctx, msg = send.ctx, send.msg
    event(log, "send.starting", logging.DEBUG, message_id=msg.message_id, at=time.time())
    try:
        created = ctx.services.twilio.create_message(
            to=msg.to, body=msg.body, from_=send.pace.sender,
            media_urls=list(msg.media_urls) or None)
    except AuthenticationFailed as exc:
        _forget(send)
        event(log, "twilio.credentials_rejected", logging.ERROR, error=str(exc))
        return Reschedule(run_at=send.job.db_now + timedelta(seconds=AUTH_RETRY_S),
                          reason="twilio credentials rejected")
    except PermanentError as exc:
        return _record_failed(send, exc)
    except TransientError as exc:
        metrics.SENDS.labels("retry", exc.code or "").inc()
        if exc.ambiguous and exc.status is not None:
            # Twilio answered (5xx), so nothing is still in flight: look it up now.
            found = _look_up(send, started)
            if found is not None:
                return found
        elif exc.ambiguous:
            raise  # no answer: the next attempt waits out the window, then looks it up
        _forget(send)  # certainly not created: no lookup needed next time
        raise
    return _record(send, created, None)


def _forget(send: Send) -> None:
    with send.ctx.db.connection() as conn:
        store.forget_key(conn, send.key)


def _from_key(sid: str | None, result: dict | None, msg: SendJob) -> TwilioMessage:
    """The message a key recorded as sent (adopted again without asking Twilio)."""
    result = result or {}
    assert sid is not None
    return TwilioMessage(sid=sid, status=result.get("status", "accepted"), to=msg.to,
                         from_=result.get("from"), body=msg.body, error_code=None,
                         date_created=None)


def _resolve_ambiguous(send: Send, started_at: datetime) -> Outcome | None:
    """Look an earlier, unanswered create up at Twilio before sending again.

    Waits until the earlier request can no longer be in flight, so "not found"
    means it was never created.
    """
    ready_at = started_at + timedelta(seconds=send.ctx.settings.twilio_ambiguity_window_s)
    if send.job.db_now < ready_at:
        return Reschedule(run_at=ready_at, reason="waiting out an unanswered create")
    return _look_up(send, started_at)


def _look_up(send: Send, started_at: datetime) -> Outcome | None:
    """Adopt the message an earlier attempt created, if Twilio has one; None if not."""
    ctx, msg = send.ctx, send.msg
    found = ctx.services.twilio.find_messages(
        to=msg.to, from_=send.pace.sender, since=started_at - timedelta(seconds=LOOKUP_SKEW_S))
    candidates = [m for m in found if (m.body or "") == msg.body]
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
    return _record(send, candidates[0], "lookup")


def _record(send: Send, created: TwilioMessage, adopted_from: str | None) -> Outcome:
    """Store the SID, queue CXone SENT, finish the job: one statement (smsgw_record_sent).

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
            adopted=adopted_from == "lookup", idempotency_key=send.key, report_to=report_to,
            report_status=SENT, status_kind=Kind.CXONE_STATUS, job_id=job.id,
            job_claims=job.claims, audit_event="send.adopted" if adopted_from else "send.created",
            audit_details={"dispatch": msg.dispatch, "sender": sender, "job_id": job.id,
                           "adopted_from": adopted_from})
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
          message_id=msg.message_id, to=msg.to, sender=sender, dispatch=msg.dispatch)
    return Handled()


def _record_failed(send: Send, exc: PermanentError) -> Outcome:
    """A create Twilio refused for good: CXone FAILED with Twilio's code; 21610 opts out."""
    msg = send.msg
    code = int(exc.code) if exc.code and exc.code.isdigit() else None
    with send.ctx.db.transaction() as conn:
        store.finish_key(conn, send.key, state="failed", sid=None,
                         result={"code": exc.code, "status": exc.status})
        if msg.message_id and msg.purpose == "reply":
            queue_report(conn, msg.message_id, failed_report(exc.code, error_message(code)))
        if code == OPT_OUT_ERROR:
            record_consent(conn, msg.to, OPTED_OUT, source="twilio_21610",
                           evidence={"message_id": msg.message_id, "via": "create"})
        audit.append(conn, "send.failed", source="twilio", message_id=msg.message_id,
                     phone=msg.to, to_state="FAILED", reason=str(exc.code),
                     details={"http_status": exc.status, "error": str(exc)[:300]})
        outbox.complete(conn, send.job)
    metrics.SENDS.labels("failed", str(exc.code or "")).inc()
    event(log, "send.failed", message_id=msg.message_id, to=msg.to, code=exc.code)
    return Handled()

