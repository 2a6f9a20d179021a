"""What a job handler gets (its context) and what it returns (an outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent.event

from app.config import Settings
from app.services import Services
from db.outbox import Job
from db.pool import Database
from worker.health import RoleBoard


@dataclass
class JobContext:
    """Everything a handler may use: services, who is running it, the stop signal."""

    services: Services
    worker_id: str
    stopping: gevent.event.Event = field(default_factory=gevent.event.Event)
    roles: RoleBoard = field(default_factory=RoleBoard)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def db(self) -> Database:
        return self.services.db

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when woken early because the worker is stopping."""
        if seconds <= 0:
            return not self.stopping.is_set()
        return not self.stopping.wait(timeout=seconds)


@dataclass(frozen=True)
class Done:
    """The job is finished; the runner marks it done."""


@dataclass(frozen=True)
class Handled:
    """The handler already wrote the job's final state in its own transaction."""


@dataclass(frozen=True)
class Reschedule:
    """Not a failure: run again at ``run_at`` (throttled, waiting out an ambiguous send)."""

    run_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Retry:
    """A counted failure: run again after ``delay_s``."""

    delay_s: float
    error: str


@dataclass(frozen=True)
class Bury:
    """Give up now: dead-letter with ``error``."""

    error: str


Outcome = Done | Handled | Reschedule | Retry | Bury

# A call turn at most this far away is waited for in the greenlet; a later one sends
# the job back to the queue until then.
CALL_HOLD_MAX_S = 1.0


def wait_for_call_turn(ctx: JobContext, thread: str | None) -> Reschedule | None:
    """Respect the CXone dialect's client-side limits (DFO: per contact and per tenant)
    before a call about ``thread``; None when the call may go now."""
    from app.pacing import take_call_turn

    for pace in ctx.services.cxone.call_paces(thread):
        while True:
            with ctx.db.connection() as conn:
                turn = take_call_turn(conn, pace)
            if turn.started:
                break
            wait = (turn.come_back_at - turn.db_now).total_seconds()
            if wait > CALL_HOLD_MAX_S or not ctx.sleep(wait):
                return Reschedule(run_at=turn.come_back_at, reason=f"paced ({pace.key})")
    return None


def iso(value: datetime) -> str:
    return value.isoformat()


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["Bury", "Done", "Handled", "Job", "JobContext", "Outcome", "Reschedule", "Retry",
           "iso", "parse_iso"]
