"""The CXone poller: cursor poll → send jobs, enqueued with the cursor in one transaction.

Only the leader polls (advisory lock). A full page polls again at once; an
empty one waits POLL_INTERVAL_S. 429 and other transient errors back off
exponentially with jitter, honouring Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any

from app.errors import AuthenticationFailed, DatabaseUnavailable, RejectedByDatabase, TransientError
from app.logs import event
from app.outbound import (
    InvalidMessage,
    OutboundReply,
    enqueue_replies,
    parse_reply,
    reject_reply,
)
from app.retry import RetryPolicy
from db import cxone_state
from db.pool import Connection, savepoint, translated
from worker.jobs import JobContext
from worker.leader import Leadership

log = logging.getLogger(__name__)

CURSOR_NAME = "outbound"
LEADER_RETRY_S = 2.0
AUTH_RETRY_S = 60.0
BACKOFF = RetryPolicy(base_s=1.0, max_s=60.0, max_attempts=1_000_000)
POLLABLE_STATUSES = (None, "", "PENDING")
BUSY_POLL_S = 0.25


def run_poller(ctx: JobContext) -> None:
    """Poll while this worker is the poll leader, until the worker stops."""
    leadership = Leadership(ctx.db, "poller")
    failures = 0
    try:
        while not ctx.stopping.is_set():
            held = leadership.acquire()
            ctx.roles.leader("poller", held)
            if not held:
                ctx.sleep(LEADER_RETRY_S)
                continue
            assert leadership.conn is not None
            try:
                items = poll_once(ctx, leadership.conn)
                failures = 0
                ctx.roles.ok("poller")
                ctx.sleep(next_poll_in(items, ctx.settings.poll_page_size,
                                       ctx.settings.poll_interval_s))
            except AuthenticationFailed as exc:
                event(log, "poll.credentials_rejected", logging.ERROR, error=str(exc))
                ctx.roles.failed("poller", str(exc))
                ctx.sleep(AUTH_RETRY_S)
            except TransientError as exc:
                ctx.roles.failed("poller", str(exc))
                failures += 1
                delay = BACKOFF.backoff(failures)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                event(log, "poll.backoff", logging.WARNING, error=str(exc),
                      delay_s=round(delay, 2), failures=failures)
                if isinstance(exc, DatabaseUnavailable):
                    leadership.drop(str(exc))
                ctx.sleep(delay)
    finally:
        leadership.release()
        ctx.roles.leader("poller", False)


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
    page_size = ctx.settings.poll_page_size
    with translated(conn):
        cursor = cxone_state.get_cursor(conn, CURSOR_NAME)
    page = ctx.services.cxone.poll_messages(cursor=cursor, page_size=page_size)
    with translated(conn), conn.transaction():
        replies, refused = _parse_page(page.items)
        for error in refused:
            _reject(conn, error)
        try:
            with savepoint(conn):
                new = enqueue_replies(conn, ctx.settings, replies, source="poll")
        except RejectedByDatabase:
            new = _enqueue_one_by_one(ctx, conn, replies)
        if page.cursor is not None:
            cxone_state.save_cursor(conn, CURSOR_NAME, page.cursor)
    if page.items:
        event(log, "poll.page", items=len(page.items), new=new, rejected=len(refused))
    return len(page.items)


def _parse_page(items: list[Any]) -> tuple[list[OutboundReply], list[InvalidMessage]]:
    """The page's new replies, and the items refused with why."""
    replies: list[OutboundReply] = []
    refused: list[InvalidMessage] = []
    for item in items:
        if isinstance(item, dict) and item.get("status") not in POLLABLE_STATUSES:
            continue  # already handled (e.g. pushed and sent): never send twice
        try:
            replies.append(parse_reply(item))
        except InvalidMessage as exc:
            refused.append(exc)
    return replies, refused


def _reject(conn: Connection, error: InvalidMessage) -> None:
    try:
        with savepoint(conn):
            reject_reply(conn, error, source="poll")
    except RejectedByDatabase as exc:  # cannot even record it: the log line must do
        event(log, "message.reject_not_recorded", logging.ERROR, message_id=None,
              field=error.field, error=str(exc))


def _enqueue_one_by_one(ctx: JobContext, conn: Connection,
                        replies: list[OutboundReply]) -> int:
    """The page as a whole was refused by the database: find the item(s) at fault."""
    new = 0
    for reply in replies:
        try:
            with savepoint(conn):
                new += enqueue_replies(conn, ctx.settings, [reply], source="poll")
        except RejectedByDatabase as exc:
            _reject(conn, InvalidMessage("message", f"cannot be stored ({exc})",
                                         reply.message_id))
    return new
