"""The CXone poller: cursor poll → send jobs, enqueued with the cursor in one transaction.

Only the leader polls (advisory lock). A full page polls again at once; an
empty one waits POLL_INTERVAL_S. 429 and other transient errors back off
exponentially with jitter, honouring Retry-After.
"""

from __future__ import annotations

import logging

from app.errors import AuthenticationFailed, DatabaseUnavailable, TransientError
from app.logs import event
from app.outbound import InvalidMessage, enqueue_replies, parse_reply, reject_reply
from app.retry import RetryPolicy
from db import cxone_state
from db.pool import Connection
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
            if not leadership.acquire():
                ctx.sleep(LEADER_RETRY_S)
                continue
            assert leadership.conn is not None
            try:
                items = poll_once(ctx, leadership.conn)
                failures = 0
                ctx.sleep(next_poll_in(items, ctx.settings.poll_page_size,
                                       ctx.settings.poll_interval_s))
            except AuthenticationFailed as exc:
                event(log, "poll.credentials_rejected", logging.ERROR, error=str(exc))
                ctx.sleep(AUTH_RETRY_S)
            except TransientError as exc:
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


def next_poll_in(items: int, page_size: int, interval_s: float) -> float:
    """A full page: poll again at once. Some items: replies are flowing, poll again
    soon (so a burst of replies is not held for a whole interval). None: wait."""
    if items >= page_size:
        return 0.0
    if items:
        return min(interval_s, BUSY_POLL_S)
    return interval_s


def poll_once(ctx: JobContext, conn: Connection) -> int:
    """Poll one page and enqueue it; how many items the page had."""
    page_size = ctx.settings.poll_page_size
    cursor = cxone_state.get_cursor(conn, CURSOR_NAME)
    page = ctx.services.cxone.poll_messages(cursor=cursor, page_size=page_size)
    rejected = 0
    with conn.transaction():
        replies = []
        for item in page.items:
            if isinstance(item, dict) and item.get("status") not in POLLABLE_STATUSES:
                continue  # already handled (e.g. pushed and sent): never send twice
            try:
                replies.append(parse_reply(item))
            except InvalidMessage as exc:
                rejected += 1
                reject_reply(conn, exc, source="poll")
        new = enqueue_replies(conn, ctx.settings, replies, source="poll")
        if page.cursor is not None:
            cxone_state.save_cursor(conn, CURSOR_NAME, page.cursor)
    if page.items:
        event(log, "poll.page", items=len(page.items), new=new, rejected=rejected)
    return len(page.items)
