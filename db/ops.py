"""Typed wrappers over the operations queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def heartbeat(conn: Connection, worker_id: str, hostname: str, pid: int,
              roles: dict[str, Any] | None = None) -> None:
    """This worker is alive; ``roles`` is what its roles last reported (worker/health.py)."""
    conn.execute(Q["ops.heartbeat"], {"worker_id": worker_id, "hostname": hostname, "pid": pid,
                                      "roles": Jsonb(roles or {})})


def worker_stopped(conn: Connection, worker_id: str) -> None:
    conn.execute(Q["ops.worker_stopped"], {"worker_id": worker_id})


def live_workers(conn: Connection, fresh_s: float) -> list[dict[str, Any]]:
    return conn.execute(Q["ops.live_workers"], {"fresh_s": fresh_s}).fetchall()


def now(conn: Connection) -> datetime:
    """The database's clock (the one every lease, slot and age is measured with)."""
    row = conn.execute(Q["ops.now"]).fetchone()
    assert row is not None
    return row["now"]  # type: ignore[no-any-return]
