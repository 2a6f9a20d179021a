"""Typed wrappers over the operator queries."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def queue_depth(conn: Connection) -> list[dict[str, Any]]:
    return conn.execute(Q["admin.queue_depth"]).fetchall()


def oldest_runnable_s(conn: Connection) -> float | None:
    row = conn.execute(Q["admin.oldest_runnable"]).fetchone()
    return None if row is None or row["age_s"] is None else float(row["age_s"])


def dead_count(conn: Connection) -> int:
    row = conn.execute(Q["admin.dead_count"]).fetchone()
    return int(row["dead"]) if row else 0


def last_webhook_s(conn: Connection) -> float | None:
    row = conn.execute(Q["admin.last_webhook"]).fetchone()
    return None if row is None or row["age_s"] is None else float(row["age_s"])


def dead_letters(conn: Connection, *, kind: str | None = None, error: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(Q["admin.dead_letters"], {"kind": kind, "error": error,
                                                  "limit": limit}).fetchall()


def replay(conn: Connection, ids: list[int],
           patches: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue dead letters again; ``patches`` (kind → payload patch) is merged per kind."""
    return conn.execute(Q["admin.replay"], {"ids": ids, "patches": Jsonb(patches)}).fetchall()


def discard(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    return conn.execute(Q["admin.discard"], {"ids": ids}).fetchall()


def jobs_for_message(conn: Connection, dedupe_keys: list[str]) -> list[dict[str, Any]]:
    """The jobs of one message, by the dedupe keys its jobs have (app/jobs.py)."""
    return conn.execute(Q["admin.jobs_for_message"], {"dedupe_keys": dedupe_keys}).fetchall()


def message_for_sid(conn: Connection, sid: str) -> str | None:
    rows = conn.execute(Q["admin.message_for_sid"], {"sid": sid}).fetchall()
    ids = [r["cxone_message_id"] for r in rows if r["cxone_message_id"]]
    return ids[0] if ids else None
