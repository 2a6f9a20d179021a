"""Typed wrappers over the idempotency-key queries."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


def key_for(message_id: str, body: str, to: str, dispatch: int = 1) -> str:
    """sha256 of ``message_id:body:to`` (seed §4); a re-dispatch adds its number."""
    raw = f"{message_id}:{body}:{to}" + (f":{dispatch}" if dispatch > 1 else "")
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def start(conn: Connection, key: str, *, message_id: str | None, to: str,
          from_: str | None) -> datetime | None:
    """Mark a create as in flight; None when the key already holds a final result."""
    row = conn.execute(Q["idempotency.start"], {"key": key, "message_id": message_id, "to": to,
                                                "from": from_}).fetchone()
    return None if row is None else row["started_at"]


def finish(conn: Connection, key: str, *, state: str, sid: str | None,
           result: dict[str, Any]) -> None:
    conn.execute(Q["idempotency.finish"], {"key": key, "state": state, "sid": sid,
                                           "result": Jsonb(result)})


def forget(conn: Connection, key: str) -> None:
    conn.execute(Q["idempotency.forget"], {"key": key})
