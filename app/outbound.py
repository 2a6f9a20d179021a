"""Agent replies from CXone (however they came: poll, push, DFO callback) become send jobs.

The dedupe key of a reply's send job is its message id, so the poller, push mode
and the reconciler can all offer the same reply and it is enqueued once. New
sends are booked on their senders' pacing slots in the same transaction.
"""

from __future__ import annotations

import logging

from app.config import Settings
from app.cxone import InvalidReply, OutboundReply
from app.jobs import Kind, SendJob
from app.logs import event
from app.pacing import book
from app.status_sync import queue_report
from app.statuses import failed_report
from db import audit, cxone_state, outbox
from db.pool import Connection

log = logging.getLogger(__name__)


def send_job(reply: OutboundReply, source: str) -> SendJob:
    """The send job of an agent reply."""
    return SendJob(to=reply.to, body=reply.body, message_id=reply.message_id,
                   conversation_id=reply.conversation_id, from_=reply.from_,
                   media_urls=reply.media_urls, channel_id=reply.channel_id, source=source)


def enqueue_replies(conn: Connection, settings: Settings, replies: list[OutboundReply], *,
                    source: str) -> int:
    """Enqueue send jobs (once per message id), book their pacing slots; how many were new.

    Two statements for a whole page: the jobs (with their audit entries), the booking.
    """
    jobs = [send_job(reply, source) for reply in replies]
    new = outbox.enqueue_many(conn, [
        outbox.Audited(job, reply.message_id, reply.to, {"conversation_id": reply.conversation_id})
        for job, reply in zip(jobs, replies, strict=True)],
        audit_event="message.enqueued", source=source)
    # Sender rows before conversation rows: the lock order every writer keeps.
    fresh = {job.dedupe_key: job for job in jobs if job.dedupe_key in new}  # once each
    book(conn, settings, [(new[key], job) for key, job in fresh.items()])
    for reply in replies:
        if reply.from_:
            # Threading: the customer's answer to this business number belongs here.
            cxone_state.remember_conversation(conn, customer=reply.to, business=reply.from_,
                                              conversation_id=reply.conversation_id)
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
                 failed_report("invalid_message", f"{error.field} {error.reason}"))
