"""The CXone poller: a page of replies → send jobs, enqueued with the cursor in one transaction.

Only the leader polls (worker/leader.py). A full page polls again at once; a page
with replies soon after; an empty one waits POLL_INTERVAL_S. Only a CXone
dialect that is polled (Open Messaging) runs it.
"""

from __future__ import annotations

import logging

from app.cxone import InvalidReply, OutboundReply
from app.errors import RejectedByDatabase
from app.logs import event
from app.outbound import enqueue_replies, reject_reply
from db import cxone_state
from db.pool import Connection, savepoint, translated
from worker.jobs import JobContext
from worker.leader import run_as_leader

log = logging.getLogger(__name__)

CURSOR_NAME = "outbound"
BUSY_POLL_S = 0.25


def run_poller(ctx: JobContext) -> None:
    """Poll while this worker is the poll leader, until the worker stops."""
    settings = ctx.settings

    def step(conn: Connection) -> float:
        items = poll_once(ctx, conn)
        return next_poll_in(items, settings.poll_page_size, settings.poll_interval_s)

    run_as_leader(ctx, "poller", step, events="poll")


def next_poll_in(items: int, page_size: int, interval_s: float) -> float:
    """A full page: poll again at once. Some items: replies are flowing, poll again
    soon (so a burst of replies is not held for a whole interval). None: wait."""
    if items >= page_size:
        return 0.0
    if items:
        return min(interval_s, BUSY_POLL_S)
    return interval_s


def poll_once(ctx: JobContext, conn: Connection) -> int:
    """Poll one page and enqueue it; how many items the page had.

    One bad item never holds up its page: it is rejected alone (CXone gets
    FAILED when its id is usable) and the cursor moves on.
    """
    with translated(conn):
        cursor = cxone_state.get_cursor(conn, CURSOR_NAME)
    page = ctx.services.cxone.fetch_replies(cursor, ctx.settings.poll_page_size)
    with translated(conn), conn.transaction():
        for error in page.refused:
            _reject(conn, error)
        try:
            with savepoint(conn):
                new = enqueue_replies(conn, ctx.settings, page.replies, source="poll")
        except RejectedByDatabase:
            new = _enqueue_one_by_one(ctx, conn, page.replies)
        if page.cursor is not None:
            cxone_state.save_cursor(conn, CURSOR_NAME, page.cursor)
    if page.size:
        event(log, "poll.page", items=page.size, new=new, rejected=len(page.refused))
    return page.size


def _reject(conn: Connection, error: InvalidReply) -> None:
    try:
        with savepoint(conn):
            reject_reply(conn, error, source="poll")
    except RejectedByDatabase as exc:  # cannot even record it: the log line must do
        event(log, "message.reject_not_recorded", logging.ERROR, field=error.field,
              error=str(exc))


def _enqueue_one_by_one(ctx: JobContext, conn: Connection,
                        replies: list[OutboundReply]) -> int:
    """The page as a whole was refused by the database: find the item(s) at fault."""
    new = 0
    for reply in replies:
        try:
            with savepoint(conn):
                new += enqueue_replies(conn, ctx.settings, [reply], source="poll")
        except RejectedByDatabase as exc:
            _reject(conn, InvalidReply("message", f"cannot be stored ({exc})",
                                       reply.message_id))
    return new
