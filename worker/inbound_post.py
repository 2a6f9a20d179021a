"""The CXone inbound job: post a customer's text into the right CXone conversation.

The CXone port files it (Open Messaging threads it into the customer's open
conversation with our number, keeping that threading here in Postgres; DFO
names the thread itself). CXone dedupes on the MessageSid, so a retry after a
lost answer cannot create a second copy.
"""

from __future__ import annotations

import logging

from app.callbacks import channel_for_number
from app.cxone import InboundPost, Posted
from app.jobs import InboundJob
from app.logs import event
from app.media_service import inbound_media
from db import audit, cxone_state, messages
from db.outbox import Job
from db.pool import Database
from worker.jobs import Done, JobContext, Outcome, wait_for_call_turn

log = logging.getLogger(__name__)


def handle_cxone_inbound(ctx: JobContext, job: Job) -> Outcome:
    """Post one inbound SMS to CXone (kind ``cxone_inbound``)."""
    text = InboundJob.from_payload(job.payload)
    media = tuple(inbound_media(ctx.services, text.media)) if text.media else ()
    post = InboundPost(sid=text.sid, from_=text.from_, to=text.to, body=text.body, media=media)
    cxone = ctx.services.cxone
    wait = wait_for_call_turn(ctx, cxone.thread_of(post))
    if wait is not None:
        return wait
    with ctx.db.connection() as conn:
        channel_id = channel_for_number(conn, ctx.settings, post.to)
    posted = cxone.post_inbound(post, DbThreads(ctx.db), channel_id=channel_id)
    _record_posted(ctx, post, posted)
    return Done()


class DbThreads:
    """Conversation threading kept in Postgres (the port's ``Threads``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_conversation(self, customer: str, business: str) -> str | None:
        with self.db.connection() as conn:
            known = cxone_state.find_conversation(conn, customer, business)
        return known["conversation_id"] if known and known["status"] == "OPEN" else None

    def remember(self, customer: str, business: str, conversation_id: str) -> None:
        # Stored at once (its own commit): a crash before the post must not orphan it.
        with self.db.connection() as conn:
            cxone_state.remember_conversation(conn, customer=customer, business=business,
                                              conversation_id=conversation_id)

    def closed(self, conversation_id: str) -> None:
        with self.db.connection() as conn:
            cxone_state.close_conversation(conn, conversation_id)


def _record_posted(ctx: JobContext, post: InboundPost, posted: Posted) -> None:
    with ctx.db.transaction() as conn:
        if posted.message_id:
            messages.record_inbound(conn, conversation_id=posted.conversation_id,
                                    message_id=posted.message_id, sid=post.sid, to=post.to,
                                    from_=post.from_)
        audit.append(conn, "inbound.posted", source="worker", message_id=posted.message_id,
                     sid=post.sid, phone=post.from_, to_state="posted",
                     details={"conversation_id": posted.conversation_id})
    event(log, "inbound.posted", sid=post.sid, conversation_id=posted.conversation_id,
          message_id=posted.message_id)
