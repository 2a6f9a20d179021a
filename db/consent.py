"""Typed wrappers over the consent queries."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q

ALL_SENDERS = "*"


def get(conn: Connection, number: str, scope: str = ALL_SENDERS) -> dict[str, Any] | None:
    return conn.execute(Q["consent.get"], {"number": number, "scope": scope}).fetchone()


def set_status(conn: Connection, number: str, status: str, *, source: str,
               evidence: dict[str, Any], scope: str = ALL_SENDERS) -> str | None:
    """Record ``status`` (and its history row); returns the previous status."""
    row = conn.execute(Q["consent.set"], {"number": number, "scope": scope, "status": status,
                                          "source": source, "evidence": Jsonb(evidence)}
                       ).fetchone()
    return None if row is None else row["previous_status"]


def history(conn: Connection, number: str) -> list[dict[str, Any]]:
    return conn.execute(Q["consent.history"], {"number": number}).fetchall()


def export(conn: Connection) -> list[dict[str, Any]]:
    return conn.execute(Q["consent.export"]).fetchall()
