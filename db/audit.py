"""Append to (and read) the audit trail."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def append(conn: Connection, event: str, *, source: str, message_id: str | None = None,
           sid: str | None = None, phone: str | None = None, from_state: str | None = None,
           to_state: str | None = None, reason: str | None = None,
           details: dict[str, Any] | None = None) -> None:
    """Record what happened, when (now), why and from which source."""
    conn.execute(Q["audit.append"], {
        "event": event, "message_id": message_id, "sid": sid, "phone": phone,
        "from_state": from_state, "to_state": to_state, "reason": reason, "source": source,
        "details": Jsonb(details or {})})


def for_message(conn: Connection, message_id: str | None, sids: list[str]) -> list[dict[str, Any]]:
    return conn.execute(Q["audit.for_message"], {"message_id": message_id, "sids": sids}).fetchall()
