"""The CXone poller: a page of replies → send jobs, enqueued with the cursor in one transaction.

Only the leader polls (worker/leader.py). A full page polls again at once; a page
with replies soon after; an empty one waits POLL_INTERVAL_S. Only a CXone
dialect that is polled (Open Messaging) runs it.

While a full page is being written, the next one is already being fetched (its
cursor is in the page just read): a burst of replies costs one round trip to
CXone per page, not one plus the writing. A fetched page is used only if the
cursor it was fetched with is the one the database then holds.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from app.cxone import InvalidReply, OutboundReply, ReplyPage
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
    ahead = Prefetch()

    def step(conn: Connection) -> float:
        items = poll_once(ctx, conn, ahead)
        return next_poll_in(items, settings.poll_page_size, settings.poll_interval_s)

    try:
        run_as_leader(ctx, "poller", step, events="poll")
    finally:
        ahead.drop()


class Prefetch:
    """The next page, being fetched while the current one is written."""

    def __init__(self) -> None:
        self.cursor: str | None = None
        self.fetching: Any = None  # a greenlet whose value is a ReplyPage

    def start(self, ctx: JobContext, cursor: str) -> None:
        self.drop()
        self.cursor = cursor
        self.fetching = gevent.spawn(ctx.services.cxone.fetch_replies, cursor,
                                     ctx.settings.poll_page_size)

    def take(self, cursor: str | None) -> ReplyPage | None:
        """The page fetched with ``cursor`` (its fetch error raised), or None."""
        fetching, self.fetching = self.fetching, None
        if fetching is None or cursor is None or cursor != self.cursor:
            if fetching is not None:
                fetching.kill(block=False)
            return None
        page: ReplyPage = fetching.get()
        return page

    def drop(self) -> None:
        if self.fetching is not None:
            self.fetching.kill(block=False)
            self.fetching = None


def next_poll_in(items: int, page_size: int, interval_s: float) -> float:
    """A full page: poll again at once. Some items: replies are flowing, poll again
    soon (so a burst of replies is not held for a whole interval). None: wait."""
    if items >= page_size:
        return 0.0
    if items:
        return min(interval_s, BUSY_POLL_S)
    return interval_s


def poll_once(ctx: JobContext, conn: Connection, ahead: Prefetch | None = None) -> int:
    """Poll one page and enqueue it; how many items the page had.

    One bad item never holds up its page: it is rejected alone (CXone gets
    FAILED when its id is usable) and the cursor moves on.
    """
    with translated(conn):
        cursor = cxone_state.get_cursor(conn, CURSOR_NAME)
    page = ahead.take(cursor) if ahead is not None else None
    if page is None:
        page = ctx.services.cxone.fetch_replies(cursor, ctx.settings.poll_page_size)
    if ahead is not None and page.cursor and page.size >= ctx.settings.poll_page_size:
        ahead.start(ctx, page.cursor)  # more are waiting, most likely
    with translated(conn), conn.transaction():
        # The page and its cursor commit together or not at all, and nothing outside
        # learns of it before a later commit (a send's turn, synchronous) has flushed
        # the WAL past it: lost in a crash, the page is only polled again. So the page
        # does not wait for its own flush while it holds its senders' rows.
        conn.execute("SET LOCAL synchronous_commit = off")
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
