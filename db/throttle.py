"""Typed wrappers over the throttle queries (see db/queries/throttle.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


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


def place_sends(conn: Connection, jobs: list[dict[str, Any]], *, hold_s: float,
                lookahead_s: float, take: bool = True) -> dict[int, Placement]:
    """Slots for many jobs at once (``jobs``: id, claims, key, spacing, ord); by job id.

    ``take``: the caller holds these jobs (claimed) and may take an idle sender;
    without it (enqueue time) every job just goes to run_at = its slot.
    """
    rows = conn.execute(Q["throttle.place_sends"], {
        "jobs": Jsonb(jobs), "hold_s": hold_s, "lookahead_s": lookahead_s,
        "take": take}).fetchall()
    return {int(r["id"]): Placement(slot=r["slot"], started=bool(r["started"]),
                                    queued=bool(r["queued"]), db_now=r["db_now"]) for r in rows}


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
