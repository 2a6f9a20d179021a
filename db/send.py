"""Typed wrapper over the send job's combined read."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def before_send(conn: Connection, *, message_id: str | None, to: str, key: str,
                details: dict[str, Any]) -> dict[str, Any]:
    """Audit the claim; consent, mapped dispatches and the idempotency key (one row)."""
    row = conn.execute(Q["send.before_send"], {"message_id": message_id, "to": to, "key": key,
                                               "details": Jsonb(details)}).fetchone()
    assert row is not None
    return row
