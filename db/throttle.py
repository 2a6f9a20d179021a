"""Typed wrappers over the throttle queries (see db/queries/throttle.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.pool import Connection
from db.queries import Q


@dataclass(frozen=True)
class Reservation:
    """A reserved slot; ``started`` when the send may (and did) start right now."""

    slot: datetime
    started: bool
    db_now: datetime


@dataclass(frozen=True)
class Placement:
    """A reserved slot: started now, back in the queue at the slot, or a short wait."""

    slot: datetime
    started: bool
    queued: bool
    db_now: datetime


@dataclass(frozen=True)
class Take:
    """The answer at a slot: ``started``; else free at ``free_at`` or ``busy`` in flight."""

    started: bool
    free_at: datetime | None
    busy: bool
    db_now: datetime


def reserve(conn: Connection, key: str, spacing_s: float, hold_s: float) -> Reservation:
    row = conn.execute(Q["throttle.reserve"], {"key": key, "spacing_s": spacing_s,
                                               "hold_s": hold_s}).fetchone()
    assert row is not None
    return Reservation(slot=row["slot"], started=bool(row["started"]), db_now=row["db_now"])


def reserve_or_queue(conn: Connection, key: str, spacing_s: float, hold_s: float, *,
                     job_id: int, claims: int, hold_max_s: float) -> Placement:
    """Reserve; a slot further than ``hold_max_s`` away puts the job back in the queue."""
    row = conn.execute(Q["throttle.reserve_or_queue"], {
        "key": key, "spacing_s": spacing_s, "hold_s": hold_s, "job_id": job_id,
        "claims": claims, "hold_max_s": hold_max_s}).fetchone()
    assert row is not None
    return Placement(slot=row["slot"], started=bool(row["started"]),
                     queued=bool(row["queued"]), db_now=row["db_now"])


def take(conn: Connection, key: str, spacing_s: float, hold_s: float) -> Take:
    row = conn.execute(Q["throttle.take"], {"key": key, "spacing_s": spacing_s,
                                            "hold_s": hold_s}).fetchone()
    assert row is not None
    return Take(started=bool(row["started"]), free_at=row["free_at"], busy=bool(row["busy"]),
                db_now=row["db_now"])


def answered(conn: Connection, key: str) -> None:
    """The create of ``key`` that was in flight has ended (answered, failed or gave up)."""
    conn.execute(Q["throttle.answered"], {"key": key})


def next_slots(conn: Connection) -> list[dict[str, Any]]:
    """Every key's next free slot (operator status)."""
    return conn.execute(Q["throttle.next_slots"]).fetchall()
