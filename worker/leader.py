"""One-at-a-time roles (poller, reconciler, housekeeping) via Postgres advisory locks.

The lock is session-level on a dedicated connection: when the holder dies its
connection closes, Postgres frees the lock, and another worker takes over on
its next try (every couple of seconds).
"""

from __future__ import annotations

import hashlib
import logging

from app.logs import event
from db.pool import Connection, Database, close_quietly

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
