"""Pacing: every sender's rate, held where Twilio and the carriers measure it.

The limit (docs/PERFORMANCE.md, pacing): for a sender of rate r segments per
second, no window of W seconds may hold more than ⌊1 + r·W⌋ segments arriving at
Twilio, for W = 1, 10 and 60. Within that, the whole rate is used: nothing waits
for Twilio's answer, so a send's latency never delays the next.

How: a send of n segments weighs n spacings. New sends are *booked* on their
sender's next free slots when they are enqueued (run_at := slot); at its slot a
send *takes its turn* against the sender's start clock, which may run early by
a tolerance (:func:`tolerance`) so one late start is absorbed rather than carried
forward. A send that was never booked (a re-dispatch, a replay, a rerun after a
crash) is booked when it is refused a turn. The SQL is db/queries/pacing.sql.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from app.config import Settings
from app.jobs import SendJob
from db.pool import Connection
from db.queries import Q

# The windows Twilio and the carriers are judged on (seconds).
WINDOWS_S = (1.0, 10.0, 60.0)
# Of the slack the window rule leaves after a late start, how much a turn may use; the
# rest covers the jitter between our start and the request's arrival at Twilio.
TOLERANCE_SHARE = 0.5


@dataclass(frozen=True)
class Pace:
    """The sender a send goes out from (None: Twilio picks), its pacing key and rate."""

    sender: str | None
    key: str
    rate: float  # segments per second (or calls per second)
    burst: int = 1  # a limit that allows bursts (CXone's per-contact limit: 250)

    @property
    def spacing_s(self) -> float:
        return 1.0 / self.rate

    def weight_s(self, segments: int = 1) -> float:
        """How much of the sender's time a send of ``segments`` segments takes."""
        return max(1, segments) * self.spacing_s

    @property
    def tolerance_s(self) -> float:
        """How early the start clock may be taken: a burst's worth, or the window rule's."""
        if self.burst > 1:
            return (self.burst - 1) * self.spacing_s
        return tolerance(self.rate)


def pace_for(settings: Settings, job: SendJob) -> Pace:
    """A number of the pool paces under itself (SENDER_MPS); anything else under the
    Messaging Service, whose sender Twilio picks (SERVICE_MPS)."""
    wanted = job.wanted_sender
    if wanted in settings.our_numbers:
        return Pace(wanted, f"sender:{wanted}", settings.sender_mps)
    return Pace(None, f"service:{settings.twilio_messaging_service_sid}",
                settings.effective_service_mps)


def tolerance(rate: float) -> float:
    """How early a start may come, on the start clock, without breaking the window rule.

    After starts one spacing T apart, a window of W seconds holds 1 + ⌊r·W⌋ of them;
    the limit ⌊1 + r·W⌋ leaves T·(1 - frac(r·W)) of slack before one more would fit.
    """
    spacing = 1.0 / rate
    slack = min(spacing * (1.0 - _frac(rate * w)) for w in WINDOWS_S)
    return TOLERANCE_SHARE * slack


def _frac(x: float) -> float:
    """The fractional part, with products that are integers in exact arithmetic as 0."""
    return max(0.0, x - math.floor(x + 1e-9))


def book(conn: Connection, settings: Settings, jobs: list[tuple[int, SendJob]],
         segments: dict[int, int] | None = None) -> dict[int, datetime]:
    """Book just-enqueued sends (job id, job) on their senders' next slots, in order.

    One statement for the batch; each job's run_at becomes its slot. ``segments``
    gives a job's weight (default 1). Returns the slot of every job.
    """
    if not jobs:
        return {}
    spec = []
    for order, (job_id, job) in enumerate(jobs):
        pace = pace_for(settings, job)
        spec.append({"id": job_id, "key": pace.key, "ord": order,
                     "weight_s": pace.weight_s((segments or {}).get(job_id, 1))})
    rows = conn.execute(Q["pacing.book"], {"jobs": Jsonb(spec)}).fetchall()
    return {int(r["id"]): r["slot"] for r in rows}


@dataclass(frozen=True)
class KeyStart:
    """The idempotency key a send marks in flight when it gets its turn (db/send.py)."""

    key: str
    message_id: str | None
    to: str
    from_: str | None
    ttl_s: float


@dataclass(frozen=True)
class Turn:
    """A send's turn: ``started`` (go now), or come back at ``come_back_at``."""

    started: bool
    key_started_at: datetime | None  # None when started but the key was final already
    come_back_at: datetime
    db_now: datetime
    booked_slot: datetime | None  # the slot this call booked (the send was not booked)


def take_turn(conn: Connection, pace: Pace, start: KeyStart, *, job_id: int, claims: int,
              slot: datetime | None, segments: int = 1) -> Turn:
    """Start a send now if its sender's start clock allows (marking its idempotency key in
    flight in the same statement); else when to try again.

    ``slot`` is the job's booked slot (None: never booked, so it is booked now).
    """
    return _take(conn, pace, {
        "weight_s": pace.weight_s(segments), "booked": slot is not None, "slot": slot,
        "job_id": job_id, "claims": claims, "idem_key": start.key,
        "message_id": start.message_id, "to": start.to, "from": start.from_,
        "ttl_s": start.ttl_s})


def take_call_turn(conn: Connection, pace: Pace) -> Turn:
    """A call to an outside API under a client-side limit (DFO's per contact and per
    tenant): now, or when to try again. Nothing is booked."""
    return _take(conn, pace, {
        "weight_s": pace.spacing_s, "booked": True, "slot": None, "job_id": None,
        "claims": None, "idem_key": None, "message_id": None, "to": None, "from": None,
        "ttl_s": 0})


def _take(conn: Connection, pace: Pace, params: dict[str, Any]) -> Turn:
    row = conn.execute(Q["pacing.take"], {"key": pace.key, "tolerance_s": pace.tolerance_s,
                                          **params}).fetchone()
    assert row is not None
    return Turn(started=bool(row["started"]), key_started_at=row["key_started_at"],
                come_back_at=row["come_back_at"], db_now=row["db_now"],
                booked_slot=row["booked_slot"])


def next_slots(conn: Connection) -> list[dict[str, Any]]:
    """Every key's next free slot and backlog (operator status, metrics)."""
    return conn.execute(Q["pacing.next_slots"]).fetchall()
