"""One-at-a-time roles (poller, reconciler, housekeeping) via Postgres advisory locks,
and the loop each of them runs while it holds its role.

The lock is session-level on a dedicated connection: when the holder dies its
connection closes, Postgres frees the lock, and another worker takes over on
its next try (every couple of seconds).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from app.errors import AuthenticationFailed, DatabaseUnavailable, TransientError
from app.logs import event
from app.retry import RetryPolicy
from db.pool import Connection, Database, close_quietly

if TYPE_CHECKING:
    from worker.jobs import JobContext

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.sha256(f"smsgw:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Try to hold the ``name`` role; the connection doubles as the leader's connection."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self.key = lock_key(name)
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        """True while this process holds the role (checks the lock is still ours)."""
        try:
            if self.conn is not None:
                self.conn.execute("SELECT 1")
                return True
            conn = self.db.connect()
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS held", (self.key,)).fetchone()
            if row and row["held"]:
                self.conn = conn
                event(log, "leader.acquired", role=self.name)
                return True
            close_quietly(conn)
            return False
        except Exception as exc:  # any failure here means we do not hold the role
            self.drop(str(exc))
            return False

    def drop(self, reason: str = "") -> None:
        """Forget the role (the connection is closed, so Postgres frees the lock)."""
        if self.conn is not None:
            close_quietly(self.conn)
            self.conn = None
            event(log, "leader.lost", logging.WARNING, role=self.name, reason=reason[:200])

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # closing the connection frees the lock anyway
                pass
            close_quietly(self.conn)
            self.conn = None
            event(log, "leader.released", role=self.name)


# Transient failures of a one-at-a-time role back off exponentially, honouring Retry-After.
BACKOFF = RetryPolicy(base_s=1.0, max_s=60.0, max_attempts=1_000_000)
LEADER_RETRY_S = 2.0
AUTH_RETRY_S = 60.0


def run_as_leader(ctx: JobContext, role: str, step: Callable[[Connection], float], *,
                  first_delay_s: float = 0.0, events: str | None = None) -> None:
    """Run ``step`` over and over while this worker holds ``role``, until the worker stops.

    ``step`` gets the leader's own connection, does one round and returns how long to
    wait before the next. Refused credentials wait a minute; other transient errors back
    off; a lost database gives up the role. Every round is reported to the role board.
    """
    leadership = Leadership(ctx.db, role)
    prefix = events or role  # log events: "<prefix>.backoff", "<prefix>.credentials_rejected"
    failures = 0
    ctx.sleep(first_delay_s)
    try:
        while not ctx.stopping.is_set():
            held = leadership.acquire()
            ctx.roles.leader(role, held)
            if not held:
                ctx.sleep(LEADER_RETRY_S)
                continue
            assert leadership.conn is not None
            try:
                pause = step(leadership.conn)
                failures = 0
                ctx.roles.ok(role)
            except AuthenticationFailed as exc:
                event(log, f"{prefix}.credentials_rejected", logging.ERROR, error=str(exc))
                ctx.roles.failed(role, str(exc))
                pause = AUTH_RETRY_S
            except TransientError as exc:
                failures += 1
                ctx.roles.failed(role, str(exc))
                pause = BACKOFF.backoff(failures)
                if exc.retry_after is not None:
                    pause = max(pause, exc.retry_after)
                event(log, f"{prefix}.backoff", logging.WARNING, error=str(exc),
                      delay_s=round(pause, 2), failures=failures)
                if isinstance(exc, DatabaseUnavailable):
                    leadership.drop(str(exc))
            ctx.sleep(pause)
    finally:
        leadership.release()
        ctx.roles.leader(role, False)


@contextmanager
def holding(db: Database, role: str, *, wait_s: float = 30.0) -> Iterator[bool]:
    """Hold ``role`` for the block (a one-off run, e.g. ``smsgw reconcile``); yields False
    when a worker kept it for ``wait_s``."""
    leadership = Leadership(db, role)
    deadline = time.monotonic() + wait_s
    try:
        while not leadership.acquire():
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(0.5)
        yield True
    finally:
        leadership.release()
