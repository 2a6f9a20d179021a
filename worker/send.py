"""The send job: consent → pace → idempotency → Twilio create → record, exactly once.

Exactly once rests on three things: the idempotency key is marked *in flight*
(committed) before the create; a create that may have reached Twilio without an
answer is looked up at Twilio before any resend; and the SID, the CXone SENT
update and the job's completion are written in one transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from app import metrics
from app.compliance import OPTED_OUT, may_send
from app.consent import record_consent
from app.errors import AuthenticationFailed, DatabaseUnavailable, PermanentError, TransientError
from app.logs import event
from app.pacing import pace_for
from app.receipts import Receipt, apply_pending_receipts, record_receipt
from app.status_sync import enqueue_cxone_update
from app.statuses import OPT_OUT_ERROR, error_message, failed_update, twilio_rank
from app.twilio_client import TwilioMessage
from db import audit, idempotency, messages, outbox, throttle
from db.outbox import Job
from db.send import before_send
from worker.jobs import Done, Handled, JobContext, Outcome, Reschedule, iso, parse_iso

log = logging.getLogger(__name__)

# A send whose slot is at most this far away waits in its greenlet; a later
# slot goes back to the queue (run_at = slot) so no greenlet is held for long.
HOLD_MAX_S = 0.5
# How far back an ambiguous attempt's message may have been created (clock skew).
LOOKUP_SKEW_S = 120.0
AUTH_RETRY_S = 60.0


def handle_send(ctx: JobContext, job: Job) -> Outcome:
    """Run one send job (kind ``send_sms``)."""
    send = SendRequest(ctx, job)
    paced = _pace(ctx, job, send)
    if paced is not None:
        return paced
    try:
        with ctx.db.connection() as conn:
            facts = before_send(conn, message_id=send.message_id, to=send.to,
                                key=send.idempotency_key,
                                details={"job_id": job.id, "claim": job.claims,
                                         "worker": ctx.worker_id, "dispatch": send.dispatch})
        if send.purpose == "reply":
            allowed, reason = may_send(ctx.settings.consent_mode, facts["consent"])
            if not allowed:
                return _refuse(ctx, job, send, reason or "no consent")
        return _send_once(ctx, job, send, facts)
    finally:
        if not send.sender_released:
            _release_sender(ctx, send)


class SendRequest:
    """The parts of a send job's payload, with the sender and throttle key decided."""

    def __init__(self, ctx: JobContext, job: Job) -> None:
        p = job.payload
        settings = ctx.settings
        self.purpose: str = p.get("purpose", "reply")
        self.message_id: str | None = p.get("message_id")
        self.conversation_id: str | None = p.get("conversation_id")
        self.to: str = p["to"]
        self.body: str = p.get("body") or ""
        self.media_urls: list[str] = list(p.get("media_urls") or [])
        self.dispatch: int = int(p.get("dispatch") or 1)
        self.source: str = p.get("source") or "poll"
        pace = pace_for(settings, p)
        self.sender: str | None = pace.sender
        self.throttle_key = pace.key
        self.spacing_s = pace.spacing_s
        self.hold_s = settings.twilio_timeout_s + 5.0
        self.sender_released = False
        identity = self.message_id or job.dedupe_key
        self.idempotency_key = idempotency.key_for(identity, self.body, self.to, self.dispatch)


# -- consent -------------------------------------------------------------------------------

def _refuse(ctx: JobContext, job: Job, send: SendRequest, reason: str) -> Outcome:
    code = "opted_out" if "opted out" in reason else "no_consent"
    with ctx.db.transaction() as conn:
        if send.message_id:
            enqueue_cxone_update(conn, send.message_id, failed_update(code, reason))
        audit.append(conn, "send.refused", source="consent", message_id=send.message_id,
                     phone=send.to, to_state="FAILED", reason=reason)
        outbox.complete(conn, job)
    metrics.SENDS.labels("refused", code).inc()
    event(log, "send.refused", message_id=send.message_id, to=send.to, reason=reason)
    return Handled()


# -- pacing --------------------------------------------------------------------------------

def place_sends(ctx: JobContext, jobs: list[Job]) -> list[Job]:
    """Pace a claimed batch before any job runs (the dispatcher's preparer for sends).

    Jobs without a slot get one, all in one statement (smsgw_place_sends); those
    whose slot is far away go back to the queue at it and are dropped from the
    batch. The rest run now, carrying their slot (and ``taken`` when this claim
    already holds an idle sender).
    """
    ready: list[Job] = []
    unplaced: list[tuple[Job, SendRequest]] = []
    for job in jobs:
        send = SendRequest(ctx, job)
        if parse_iso(job.payload.get("slot")) and \
                job.payload.get("throttle_key") == send.throttle_key:
            ready.append(job)
        else:
            unplaced.append((job, send))
    if not unplaced:
        return jobs
    spec = [{"id": job.id, "claims": job.claims, "key": send.throttle_key,
             "spacing": send.spacing_s, "ord": n} for n, (job, send) in enumerate(unplaced)]
    with ctx.db.connection() as conn:
        placed = throttle.place_sends(conn, spec, hold_s=unplaced[0][1].hold_s,
                                      lookahead_s=HOLD_MAX_S)
    for job, send in unplaced:
        place = placed[job.id]
        _count_wait(send, (place.slot - place.db_now).total_seconds())
        if place.queued:
            continue  # back in the queue at its slot
        ready.append(replace(job, db_now=place.db_now, payload={
            **job.payload, "slot": iso(place.slot), "throttle_key": send.throttle_key,
            "taken": place.started}))
    return ready


def _pace(ctx: JobContext, job: Job, send: SendRequest) -> Outcome | None:
    """Wait for this sender's slot; None when the send may start now.

    Pacing comes first, before any other read. ``place_sends`` gave the job its
    slot when it was claimed.
    """
    if job.payload.get("taken"):
        return None  # this claim holds the idle sender already
    slot = parse_iso(job.payload.get("slot"))
    if slot is None or job.payload.get("throttle_key") != send.throttle_key:
        placed = place_sends(ctx, [job])  # a job run without the dispatcher's preparer
        if not placed:
            return Handled()
        job = placed[0]
        if job.payload.get("taken"):
            return None
        slot = parse_iso(job.payload["slot"])
        assert slot is not None
    wait = (slot - job.db_now).total_seconds()
    if wait > HOLD_MAX_S:
        return _back_to_queue(job, send, slot, "throttled")
    while True:
        if not ctx.sleep(wait):
            return _back_to_queue(job, send, slot, "shutdown")
        with ctx.db.connection() as conn:
            taken = throttle.take(conn, send.throttle_key, send.spacing_s, send.hold_s)
        if taken.started:
            return None
        if taken.busy:
            # The previous create of this sender still waits for Twilio: whenever it is
            # answered, the sender is free one spacing later, so no sooner than that.
            slot = taken.db_now + timedelta(seconds=send.spacing_s)
        elif taken.free_at is None:
            # No pacing row for this sender (gone, or its placement rolled back): the
            # job goes back to the queue without a slot and is placed afresh.
            return Reschedule(run_at=taken.db_now, patch={"slot": None},
                              reason="sender not placed")
        else:
            # Twilio answered the previous one late: follow one spacing after the answer.
            slot = taken.free_at
        wait = max(0.001, (slot - taken.db_now).total_seconds())
        if wait > HOLD_MAX_S:
            return _back_to_queue(job, send, slot, "throttled")


def _release_sender(ctx: JobContext, send: SendRequest, conn: Any = None) -> None:
    """The create ended (answered, failed or never made): the sender is free again.

    With ``conn`` it is part of the caller's transaction (which then sets
    ``sender_released`` once committed).
    """
    if conn is not None:
        throttle.answered(conn, send.throttle_key)
        return
    send.sender_released = True
    try:
        with ctx.db.connection() as own:
            throttle.answered(own, send.throttle_key)
    except DatabaseUnavailable:
        pass  # its in-flight lease runs out instead


def _back_to_queue(job: Job, send: SendRequest, slot: datetime, reason: str) -> Reschedule:
    return Reschedule(run_at=slot, reason=reason,
                      patch={"slot": iso(slot), "throttle_key": send.throttle_key})


def _count_wait(send: SendRequest, wait_s: float) -> None:
    if wait_s > 0:
        label = send.sender or "service"
        metrics.THROTTLE_WAITS.labels(label).inc()
        metrics.THROTTLE_WAIT_SECONDS.labels(label).inc(wait_s)


# -- idempotency and the create ------------------------------------------------------------

def _send_once(ctx: JobContext, job: Job, send: SendRequest, facts: dict[str, Any]) -> Outcome:
    mapped = facts["mapped_dispatches"]
    if mapped is not None and int(mapped) >= send.dispatch:
        # Seed §1: a mapping exists, so this dispatch happened; never send it again.
        event(log, "send.already_mapped", message_id=send.message_id)
        return Done()
    known = _known_key(facts)
    if known is not None and known["state"] == "sent":
        adopted = _message_from_record(known, send)
        return _record_sent(ctx, job, send, adopted, adopted_from="idempotency")
    if known is not None and known["state"] == "failed":
        return Done()  # reported already; nothing to send
    if known is not None:  # in flight: an earlier attempt may have reached Twilio
        outcome = _resolve_ambiguous(ctx, job, send, known)
        if outcome is not None:
            return outcome
    elif job.payload.get("lookup_first"):
        # A replayed dead letter: Twilio may hold it although we recorded nothing.
        outcome = _look_up(ctx, job, send, job.created_at)
        if outcome is not None:
            return outcome
    with ctx.db.connection() as conn:
        started = idempotency.start(conn, send.idempotency_key, message_id=send.message_id,
                                    to=send.to, from_=send.sender)
    if started is None:  # another worker finished it a moment ago
        return Reschedule(run_at=job.db_now, reason="idempotency key finished elsewhere")
    event(log, "send.starting", logging.DEBUG, message_id=send.message_id, at=time.time())
    try:
        created = ctx.services.twilio.create_message(
            to=send.to, body=send.body, from_=send.sender, media_urls=send.media_urls or None)
    except AuthenticationFailed as exc:
        _forget(ctx, send)
        event(log, "twilio.credentials_rejected", logging.ERROR, error=str(exc))
        return Reschedule(run_at=job.db_now + timedelta(seconds=AUTH_RETRY_S),
                          reason="twilio credentials rejected")
    except PermanentError as exc:
        return _record_failed(ctx, job, send, exc)
    except TransientError as exc:
        metrics.SENDS.labels("retry", exc.code or "").inc()
        if exc.ambiguous and exc.status is not None:
            # Twilio answered (5xx), so nothing is still in flight: look it up now.
            found = _look_up(ctx, job, send, started)
            if found is not None:
                return found
        elif exc.ambiguous:
            raise  # no answer: the next attempt waits out the window, then looks it up
        _forget(ctx, send)  # certainly not created: no lookup needed next time
        raise
    return _record_sent(ctx, job, send, created, adopted_from=None)


def _known_key(facts: dict[str, Any]) -> dict[str, Any] | None:
    """The idempotency key's row, as before_send read it (None: no key yet)."""
    if facts["key_state"] is None:
        return None
    return {"state": facts["key_state"], "twilio_message_sid": facts["key_sid"],
            "started_at": facts["key_started_at"], "result": facts["key_result"]}


def _forget(ctx: JobContext, send: SendRequest) -> None:
    with ctx.db.connection() as conn:
        idempotency.forget(conn, send.idempotency_key)


def _resolve_ambiguous(ctx: JobContext, job: Job, send: SendRequest,
                       known: dict[str, Any]) -> Outcome | None:
    """Look an earlier, unanswered create up at Twilio before sending again.

    Waits until the earlier request can no longer be in flight, so "not found"
    means it was never created.
    """
    started_at: datetime = known["started_at"]
    ready_at = started_at + timedelta(seconds=ctx.settings.twilio_ambiguity_window_s)
    if job.db_now < ready_at:
        return Reschedule(run_at=ready_at, reason="waiting out an unanswered create")
    return _look_up(ctx, job, send, started_at)


def _look_up(ctx: JobContext, job: Job, send: SendRequest,
             started_at: datetime) -> Outcome | None:
    """Adopt the message an earlier attempt created, if Twilio has one; None if not."""
    found = ctx.services.twilio.find_messages(
        to=send.to, from_=send.sender, since=started_at - timedelta(seconds=LOOKUP_SKEW_S))
    candidates = [m for m in found if (m.body or "") == send.body]
    if candidates:
        with ctx.db.connection() as conn:
            taken = messages.sids_taken(conn, [m.sid for m in candidates])
        candidates = [m for m in candidates if m.sid not in taken]
    if not candidates:
        event(log, "send.lookup_not_found", message_id=send.message_id, to=send.to)
        return None
    # Oldest first: the earliest unclaimed match is the one our earlier attempt made.
    candidates.sort(key=lambda m: m.date_created or started_at)
    event(log, "send.lookup_found", message_id=send.message_id, sid=candidates[0].sid)
    return _record_sent(ctx, job, send, candidates[0], adopted_from="lookup")


def _message_from_record(known: dict[str, Any], send: SendRequest) -> TwilioMessage:
    result = known.get("result") or {}
    return TwilioMessage(sid=known["twilio_message_sid"], status=result.get("status", "accepted"),
                         to=send.to, from_=result.get("from"), body=send.body, error_code=None,
                         date_created=None)


def _record_sent(ctx: JobContext, job: Job, send: SendRequest, created: TwilioMessage, *,
                 adopted_from: str | None) -> Outcome:
    """Store the SID, queue CXone SENT, finish the job: one statement (smsgw_record_sent).

    A message adopted from Twilio may already be further along (even delivered):
    it is recorded as just accepted and its current status is then applied as a
    receipt, so the same state machine sends CXone what follows from it.
    """
    sender = created.from_ or send.sender
    initial = created.status if twilio_rank(created.status) <= twilio_rank("queued") \
        else "accepted"
    with ctx.db.connection() as conn:
        recorded = messages.record_sent(
            conn, sid=created.sid, status=initial,
            status_rank=twilio_rank(initial), message_id=send.message_id,
            conversation_id=send.conversation_id, purpose=send.purpose, dispatch=send.dispatch,
            to=send.to, **{"from": sender}, adopted=adopted_from == "lookup",
            idempotency_key=send.idempotency_key, throttle_key=send.throttle_key,
            job_id=job.id, job_claims=job.claims,
            audit_event="send.adopted" if adopted_from else "send.created",
            audit_details={"dispatch": send.dispatch, "sender": sender, "job_id": job.id,
                           "adopted_from": adopted_from})
    send.sender_released = True
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
          message_id=send.message_id, to=send.to, sender=sender, dispatch=send.dispatch)
    return Handled()


def _record_failed(ctx: JobContext, job: Job, send: SendRequest, exc: PermanentError) -> Outcome:
    """A create Twilio refused for good: CXone FAILED with Twilio's code; 21610 opts out."""
    code = _int_or_none(exc.code)
    with ctx.db.transaction() as conn:
        _release_sender(ctx, send, conn)
        idempotency.finish(conn, send.idempotency_key, state="failed", sid=None,
                           result={"code": exc.code, "status": exc.status})
        if send.message_id:
            enqueue_cxone_update(conn, send.message_id,
                                 failed_update(exc.code, error_message(code)))
        if code == OPT_OUT_ERROR:
            record_consent(conn, send.to, OPTED_OUT, source="twilio_21610",
                           evidence={"message_id": send.message_id, "via": "create"})
        audit.append(conn, "send.failed", source="twilio", message_id=send.message_id,
                     phone=send.to, to_state="FAILED", reason=str(exc.code),
                     details={"http_status": exc.status, "error": str(exc)[:300]})
        outbox.complete(conn, job)
    send.sender_released = True
    metrics.SENDS.labels("failed", str(exc.code or "")).inc()
    event(log, "send.failed", message_id=send.message_id, to=send.to, code=exc.code)
    return Handled()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
