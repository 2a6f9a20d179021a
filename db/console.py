"""Typed wrappers over the operations console's queries (``db/queries/console.sql``)."""

from __future__ import annotations

from typing import Any

from db.pool import Connection
from db.queries import Q


def overview_status(conn: Connection, worker_fresh_s: float) -> dict[str, Any]:
    """now, this_minute, lag_s, dead_letters, workers (live), last_webhook_s."""
    row = conn.execute(Q["console.overview_status"], {"fresh_s": worker_fresh_s}).fetchone()
    assert row is not None
    return row


def queued_up_to(conn: Connection, cap: int) -> int:
    """The number of queued jobs, or ``cap`` when there are at least that many."""
    row = conn.execute(Q["console.queued_up_to"], {"cap": cap}).fetchone()
    return int(row["n"]) if row else 0


def queue_estimate(conn: Connection, percent: float) -> list[dict[str, Any]]:
    """Jobs by kind and state, queued ones estimated from ``percent`` of the table's pages."""
    return conn.execute(Q["console.queue_estimate"], {"percent": percent}).fetchall()


def outbox_rows(conn: Connection) -> float:
    row = conn.execute(Q["console.outbox_rows"]).fetchone()
    return float(row["n"]) if row else 0.0


def sender_slots(conn: Connection) -> list[dict[str, Any]]:
    """key, next_slot, backlog_s for every pacing key."""
    return conn.execute(Q["console.sender_slots"]).fetchall()


def send_events_by_minute(conn: Connection) -> list[dict[str, Any]]:
    """minute, event, sender, n: send-related audit events of the last 60 minutes."""
    return conn.execute(Q["console.send_events_by_minute"]).fetchall()


def receipts_by_minute(conn: Connection) -> list[dict[str, Any]]:
    """minute, status, n: Twilio receipts of the last 60 minutes."""
    return conn.execute(Q["console.receipts_by_minute"]).fetchall()


def messages_of_number(conn: Connection, number: str, *, limit: int = 50
                       ) -> list[dict[str, Any]]:
    """The latest messages to or from ``number``: ref, inbound, first_at, last_at, sid."""
    return conn.execute(Q["console.messages_of_number"],
                        {"number": number, "limit": limit}).fetchall()


def session_ended(conn: Connection, session_id: str) -> bool:
    row = conn.execute(Q["console.session_ended"], {"session_id": session_id}).fetchone()
    return bool(row and row["ended"])


def end_session(conn: Connection, session_id: str, expires_at: float) -> None:
    """Refuse this session from now on (``expires_at``: epoch seconds it would end)."""
    conn.execute(Q["console.end_session"], {"session_id": session_id,
                                            "expires_at": expires_at})


def dead_kinds(conn: Connection) -> list[str]:
    """Job kinds that have dead letters."""
    return [r["kind"] for r in conn.execute(Q["console.dead_kinds"]).fetchall()]
