"""Typed wrappers over the reconciler's queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def stale_sent(conn: Connection, after_s: float, limit: int) -> list[dict[str, Any]]:
    return conn.execute(Q["reconcile.stale_sent"], {"after_s": after_s, "limit": limit}).fetchall()


def mark_reconciled(conn: Connection, message_id: str) -> None:
    conn.execute(Q["reconcile.mark_reconciled"], {"message_id": message_id})


def expire_no_receipt(conn: Connection, max_age_s: float) -> list[dict[str, Any]]:
    return conn.execute(Q["reconcile.expire_no_receipt"], {"max_age_s": max_age_s}).fetchall()


def stranded_receipts(conn: Connection, limit: int) -> list[str]:
    rows = conn.execute(Q["reconcile.stranded_receipts"], {"limit": limit}).fetchall()
    return [row["message_sid"] for row in rows]


def status_updates_of(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return conn.execute(Q["reconcile.status_updates_of"], {"message_id": message_id}).fetchall()


def record_run(conn: Connection, name: str, started_at: datetime, result: dict[str, Any]) -> None:
    conn.execute(Q["reconcile.record_run"], {"name": name, "started_at": started_at,
                                             "result": Jsonb(result)})


def runs(conn: Connection) -> list[dict[str, Any]]:
    return conn.execute(Q["reconcile.runs"]).fetchall()
