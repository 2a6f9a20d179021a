"""The send job: consent → idempotency → the sender's turn → Twilio create → record.

Exactly once rests on three things: the idempotency key is marked *in flight*
(committed, with the sender's turn) before the create; a create that may have
reached Twilio without an answer is looked up at Twilio before any resend; and
the SID, CXone's SENT and the job's completion are written in one statement
(smsgw_record_sent). A long reply goes out as its parts, in order, each with its
own key and turn; a job that stops half way resumes at the first part not sent.
Recording and lookups are in worker/send_record.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import metrics
from app.compliance import may_send
from app.content import Segmentation, segmentation
from app.errors import AuthenticationFailed, PermanentError, TransientError
from app.jobs import SendJob
from app.logs import event
from app.pacing import KeyStart, Pace, pace_for, take_turn
from app.status_sync import queue_report
from app.statuses import failed_report
from db import audit, outbox
from db import send as store
from db.outbox import Job
from worker.jobs import Done, Handled, JobContext, Outcome, Reschedule
from worker.send_record import adopt_from_key, look_up, record_failed, record_sent

log = logging.getLogger(__name__)

# A turn at most this far away is waited for in the greenlet; a later one goes back
# to the queue (run_at = when to come back), so no greenlet is held for long.
HOLD_MAX_S = 0.5
AUTH_RETRY_S = 60.0


@dataclass(frozen=True)
class Part:
    """One SMS of a send: the body, or one part of a long reply."""

    index: int  # 1-based
    count: int
    body: str
    key: str  # its idempotency key
    counted: Segmentation

    @property
    def last(self) -> bool:
        return self.index == self.count


class Send:
    """One send job being run: the job, what it sends, its pacing and idempotency keys."""

    def __init__(self, ctx: JobContext, job: Job) -> None:
        self.ctx = ctx
        self.job = job
        self.msg = SendJob.from_payload(job.payload)
        self.pace: Pace = pace_for(ctx.settings, self.msg)
        self.media_urls: list[str] = []  # the kept attachments' public URLs
        identity = self.msg.message_id or job.dedupe_key
        bodies = self.msg.bodies
        smart = ctx.settings.smart_encoding
        # Part 1's key is the seed's sha256(id:body:to): a message sent whole keeps it.
        self.parts = [Part(n, len(bodies), body,
                           store.key_for(identity if n == 1 else f"{identity}#{n}", body,
                                         self.msg.to, self.msg.dispatch),
                           segmentation(body, smart=smart))
                      for n, body in enumerate(bodies, start=1)]


def handle_send(ctx: JobContext, job: Job) -> Outcome:
    """Run one send job (kind ``send_sms``)."""
    send = Send(ctx, job)
    msg = send.msg
    with ctx.db.connection() as conn:
        facts = store.before_send(conn, message_id=msg.message_id, to=msg.to,
                                  dispatch=msg.dispatch, keys=[p.key for p in send.parts],
                                  details={"job_id": job.id, "claim": job.claims,
                                           "worker": ctx.worker_id, "dispatch": msg.dispatch})
    if msg.purpose == "reply":
        allowed, reason = may_send(ctx.settings.consent_mode, facts.consent)
        if not allowed:
            code = "opted_out" if "opted out" in (reason or "") else "no_consent"
            return _refuse(send, reason or "no consent", code)
    if msg.media_urls:
        media = facts.media or {}
        if media.get("rejected"):
            return _refuse(send, str(media["rejected"]), "media_rejected")
        send.media_urls = [m["url"] for m in media.get("media") or []]
        if len(send.media_urls) != len(msg.media_urls):  # kept by the media job first
            return Reschedule(run_at=job.db_now + timedelta(seconds=1),
                              reason="waiting for the attachments")
    if (facts.mapped_dispatches or 0) >= msg.dispatch and facts.created_parts >= len(send.parts):
        # Seed §1: a mapping exists, so this dispatch happened; never send it again.
        event(log, "send.already_mapped", message_id=msg.message_id)
        return Done()
    for part in send.parts[facts.created_parts:]:
        stopped = _send_part(send, part, facts.keys.get(part.key))
        if stopped is not None:
            return stopped
    return Handled()


def _send_part(send: Send, part: Part, known: store.KeyState | None) -> Outcome | None:
    """Send one part (or adopt it); None to go on with the next, else how the job ends."""
    if known is not None and known.state == "sent":
        return record_sent(send, part, adopt_from_key(known, send.msg, part.body),
                           "idempotency")
    if known is not None and known.state == "failed":
        return Done()  # reported already; nothing more to send
    if known is not None and known.state == "in_flight":  # may have reached Twilio
        assert known.started_at is not None
        ready_at = known.started_at + timedelta(
            seconds=send.ctx.settings.twilio_ambiguity_window_s)
        if send.job.db_now < ready_at:  # the earlier request may still be in flight
            return Reschedule(run_at=ready_at, reason="waiting out an unanswered create")
        found = look_up(send, part, known.started_at)
        if found is not None:
            return record_sent(send, part, found, "lookup")
    elif send.msg.lookup_first:  # a replayed dead letter: Twilio may hold it already
        found = look_up(send, part, send.job.created_at)
        if found is not None:
            return record_sent(send, part, found, "lookup")
    turn = _wait_for_turn(send, part)
    if not isinstance(turn, datetime):
        return turn
    return _create(send, part, turn)


def _refuse(send: Send, reason: str, code: str) -> Outcome:
    """Not sent, for good (no consent, attachments refused): CXone hears FAILED."""
    msg = send.msg
    with send.ctx.db.transaction() as conn:
        if msg.message_id:
            queue_report(conn, msg.message_id, failed_report(code, reason))
        audit.append(conn, "send.refused", source="consent" if code != "media_rejected"
                     else "media", message_id=msg.message_id, phone=msg.to,
                     to_state="FAILED", reason=reason)
        outbox.complete(conn, send.job)
    metrics.SENDS.labels("refused", code).inc()
    event(log, "send.refused", message_id=msg.message_id, to=msg.to, reason=reason, code=code)
    return Handled()


# -- the sender's turn (app/pacing.py) -----------------------------------------------------

def _wait_for_turn(send: Send, part: Part) -> Outcome | datetime:
    """Wait for the slot, then the sender's turn; when it is taken, the part's key is in
    flight and its start time is returned: the create goes now."""
    ctx, job, msg = send.ctx, send.job, send.msg
    early = (job.due_at - job.db_now).total_seconds()  # claimed a moment before its slot
    if part.index == 1 and early > 0 and not ctx.sleep(early):
        return Reschedule(run_at=job.due_at, reason="shutdown")
    start = KeyStart(key=part.key, message_id=msg.message_id, to=msg.to,
                     from_=send.pace.sender, ttl_s=store.KEY_TTL_S)
    slot = job.slot
    while True:
        with ctx.db.connection() as conn:
            turn = take_turn(conn, send.pace, start, job_id=job.id, claims=job.claims,
                             slot=slot, segments=part.counted.segments)
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


# -- the create ----------------------------------------------------------------------------

def _create(send: Send, part: Part, started: datetime) -> Outcome | None:
    ctx, msg = send.ctx, send.msg
    event(log, "send.starting", logging.DEBUG, message_id=msg.message_id, part=part.index,
          at=time.time())
    try:
        created = ctx.services.twilio.create_message(
            to=msg.to, body=part.body, from_=send.pace.sender,
            media_urls=send.media_urls if part.index == 1 and send.media_urls else None,
            smart_encoded=ctx.settings.smart_encoding)
    except AuthenticationFailed as exc:
        _forget(send, part)
        event(log, "twilio.credentials_rejected", logging.ERROR, error=str(exc))
        return Reschedule(run_at=send.job.db_now + timedelta(seconds=AUTH_RETRY_S),
                          reason="twilio credentials rejected")
    except PermanentError as exc:
        return record_failed(send, part, exc)
    except TransientError as exc:
        metrics.SENDS.labels("retry", exc.code or "").inc()
        if exc.ambiguous and exc.status is not None:
            # Twilio answered (5xx), so nothing is still in flight: look it up now.
            found = look_up(send, part, started)
            if found is not None:
                return record_sent(send, part, found, "lookup")
        elif exc.ambiguous:
            raise  # no answer: the next attempt waits out the window, then looks it up
        _forget(send, part)  # certainly not created: no lookup needed next time
        raise
    metrics.SEGMENTS.labels(part.counted.encoding).inc(part.counted.segments)
    return record_sent(send, part, created, None)


def _forget(send: Send, part: Part) -> None:
    with send.ctx.db.connection() as conn:
        store.forget_key(conn, part.key)
