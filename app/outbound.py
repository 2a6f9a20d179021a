"""Agent replies from CXone (however they came: poll, push, DFO callback) become send jobs.

The dedupe key of a reply's send job is its message id, so the poller, push mode
and the reconciler can all offer the same reply and it is enqueued once. New
sends are booked on their senders' pacing slots in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from app.config import Settings
from app.content import fits, segmentation, split_reply
from app.cxone import InvalidReply, OutboundReply
from app.jobs import Kind, MediaJob, SendJob
from app.logs import event
from app.pacing import book
from app.status_sync import queue_report
from app.statuses import failed_report
from db import audit, cxone_state, outbox
from db.pool import Connection

log = logging.getLogger(__name__)

# Twilio refuses a body over 1,600 characters (21617).
MAX_SMS_CHARS = 1600


def send_job(reply: OutboundReply, source: str, settings: Settings) -> SendJob:
    """The send job of an agent reply; a reply longer than one SMS may be (1,600
    characters or MAX_SEGMENTS segments) is split at word boundaries into parts sent in
    order, or refused as too_long (LONG_REPLY=reject)."""
    limits: dict[str, Any] = {"max_chars": MAX_SMS_CHARS,
                              "max_segments": settings.max_segments,
                              "smart": settings.smart_encoding}
    parts: tuple[str, ...] = ()
    if not fits(reply.body, **limits):
        if settings.long_reply == "reject":
            raise InvalidReply("body", f"is longer than one SMS may be ({MAX_SMS_CHARS} "
                               f"characters or {settings.max_segments} segments)",
                               reply.message_id, code="too_long")
        parts = tuple(split_reply(reply.body, **limits))
    return SendJob(to=reply.to, body=reply.body, message_id=reply.message_id,
                   conversation_id=reply.conversation_id, from_=reply.from_,
                   media_urls=reply.media_urls, channel_id=reply.channel_id, source=source,
                   parts=parts)


def segments_of(job: SendJob, settings: Settings) -> int:
    """How many segments a send job puts on its sender (what pacing weighs)."""
    return sum(segmentation(body, smart=settings.smart_encoding).segments
               for body in job.bodies)


def enqueue_replies(conn: Connection, settings: Settings, replies: list[OutboundReply], *,
                    source: str) -> int:
    """Enqueue send jobs (once per message id), book their pacing slots; how many were new.

    Three statements for a whole page: the jobs (with their audit entries), the booking,
    the conversations; the senders' rows the booking locks are held only for the last.
    A reply with attachments gets a media job first, which fetches them at once; its
    send job waits behind it.
    """
    items: list[outbox.Audited] = []
    jobs: list[SendJob] = []
    for reply in replies:
        try:
            job = send_job(reply, source, settings)
        except InvalidReply as error:
            reject_reply(conn, error, source=source)
            continue
        if job.media_urls:
            items.append(outbox.Audited(MediaJob(reply.message_id, job.media_urls,
                                                 reply.conversation_id)))
        items.append(outbox.Audited(job, reply.message_id, reply.to,
                                    {"conversation_id": reply.conversation_id,
                                     "parts": len(job.bodies)}))
        jobs.append(job)
    new = outbox.enqueue_many(conn, items, audit_event="message.enqueued", source=source)
    # Sender rows before conversation rows: the lock order every writer keeps.
    fresh = {job.dedupe_key: job for job in jobs if job.dedupe_key in new}  # once each
    book(conn, settings, [(new[key], job) for key, job in fresh.items()],
         {new[key]: segments_of(job, settings) for key, job in fresh.items()})
    # Threading: the customer's answer to this business number belongs here.
    cxone_state.remember_conversations(conn, [(r.to, r.from_, r.conversation_id)
                                              for r in replies if r.from_])
    return len(new)


def reject_reply(conn: Connection, error: InvalidReply, *, source: str) -> None:
    """A malformed reply is not sent: CXone gets FAILED with the reason (when it has an id)."""
    event(log, "message.rejected", logging.WARNING, message_id=error.message_id,
          field=error.field, reason=error.reason, source=source)
    if not error.message_id:
        return
    # Dedupe: the same malformed item polled twice is rejected once. The marker shares
    # the send job's dedupe key, so the message can never be enqueued later either.
    if not outbox.record_done(conn, Kind.REJECTED, error.message_id,
                              {"field": error.field, "reason": error.reason}):
        return
    audit.append(conn, "message.rejected", source=source, message_id=error.message_id,
                 to_state="FAILED", reason=f"{error.field} {error.reason}")
    queue_report(conn, error.message_id,
                 failed_report(error.code, f"{error.field} {error.reason}"))
