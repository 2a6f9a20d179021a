"""Typed wrappers over the outbox queries (one small function per query)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


@dataclass(frozen=True)
class Job:
    """A claimed job. ``claims`` is the fencing token every later write checks."""

    id: int
    kind: str
    dedupe_key: str
    ordering_key: str | None
    payload: dict[str, Any]
    attempts: int
    claims: int
    created_at: datetime
    last_error: str | None
    due_at: datetime
    db_now: datetime
    slot: datetime | None = None  # a send's booked pacing slot (app/pacing.py)


class Enqueueable(Protocol):
    """A typed job (app/jobs.py): its kind, dedupe key, payload and ordering key."""

    @property
    def kind(self) -> str: ...
    @property
    def dedupe_key(self) -> str: ...
    @property
    def ordering_key(self) -> str | None: ...
    def payload(self) -> dict[str, Any]: ...


def enqueue(conn: Connection, job: Enqueueable, *, run_at: datetime | None = None) -> int | None:
    """Insert a job unless one with its dedupe key exists; the new id or None."""
    row = conn.execute(Q["outbox.enqueue"], {
        "kind": str(job.kind), "dedupe_key": job.dedupe_key, "payload": Jsonb(job.payload()),
        "run_at": run_at, "ordering_key": job.ordering_key}).fetchone()
    return None if row is None else int(row["id"])


@dataclass(frozen=True)
class Audited:
    """A job to enqueue, with the audit entry its arrival writes (none without a message)."""

    job: Enqueueable
    message_id: str | None = None
    phone: str | None = None
    details: dict[str, Any] | None = None


def enqueue_many(conn: Connection, items: list[Audited], *, audit_event: str,
                 source: str) -> dict[str, int]:
    """Insert the jobs whose dedupe key is new, each with its audit entry, in one statement;
    dedupe key → id of the new ones."""
    if not items:
        return {}
    spec = [{"ord": n, "kind": str(i.job.kind), "dedupe_key": i.job.dedupe_key,
             "payload": i.job.payload(), "ordering_key": i.job.ordering_key,
             "message_id": i.message_id, "phone": i.phone, "details": i.details or {},
             "audit": i.message_id is not None}
            for n, i in enumerate(items)]
    rows = conn.execute(Q["outbox.enqueue_many"], {"jobs": Jsonb(spec),
                                                   "audit_event": audit_event,
                                                   "source": source}).fetchall()
    return {r["dedupe_key"]: int(r["id"]) for r in rows}


def record_done(conn: Connection, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
    """Mark ``dedupe_key`` as handled without running anything; False if it existed."""
    row = conn.execute(Q["outbox.record_done"], {"kind": kind, "dedupe_key": dedupe_key,
                                                 "payload": Jsonb(payload)}).fetchone()
    return row is not None


def reopen(conn: Connection, job: Enqueueable, *, delay_s: float) -> int | None:
    """Queue a finished job again (as ``job`` now is) after ``delay_s``; its attempts, or
    None when it is still live or gone."""
    row = conn.execute(Q["outbox.reopen"], {
        "dedupe_key": job.dedupe_key, "payload": Jsonb(job.payload()),
        "delay_s": delay_s}).fetchone()
    return None if row is None else int(row["attempts"])


def claim(conn: Connection, *, worker: str, limit: int, lease_s: float,
          lookahead_s: float = 0.0) -> list[Job]:
    """Claim up to ``limit`` jobs due within ``lookahead_s``, leasing each for ``lease_s``."""
    rows = conn.execute(Q["outbox.claim"], {
        "worker": worker, "limit": limit, "lease_s": lease_s,
        "lookahead_s": lookahead_s}).fetchall()
    return [Job(**row) for row in rows]


def complete(conn: Connection, job: Job) -> bool:
    """Mark done (or queued again if new work arrived meanwhile); False if the lease was lost."""
    row = conn.execute(Q["outbox.complete"], {"id": job.id, "claims": job.claims}).fetchone()
    return bool(row and row["completed"])


def retry(conn: Connection, job: Job, *, delay_s: float, error: str) -> bool:
    """Count a failed try and run again after ``delay_s``."""
    return conn.execute(Q["outbox.retry"], {"id": job.id, "claims": job.claims,
                                            "delay_s": delay_s, "error": error[:2000]}
                        ).fetchone() is not None


def reschedule(conn: Connection, job: Job, *, run_at: datetime) -> bool:
    """Run again at ``run_at`` without counting a failure."""
    return conn.execute(Q["outbox.reschedule"], {"id": job.id, "claims": job.claims,
                                                 "run_at": run_at}).fetchone() is not None


def bury(conn: Connection, job: Job, *, error: str) -> bool:
    """Move the job to the dead-letter state."""
    return conn.execute(Q["outbox.bury"], {"id": job.id, "claims": job.claims,
                                           "error": error[:2000]}).fetchone() is not None


def next_due(conn: Connection) -> tuple[datetime | None, datetime]:
    """(when the next job is due or None, the database's now)."""
    row = conn.execute(Q["outbox.next_due"]).fetchone()
    assert row is not None
    return row["next_run_at"], row["db_now"]


def nap(conn: Connection, *, worker_id: str, min_s: float, max_s: float,
        lookahead_s: float) -> tuple[datetime | None, datetime]:
    """Announce a dispatcher's nap (so writers wake it) and read when the next job is due:
    (its run_at or None, the database's now)."""
    row = conn.execute(Q["outbox.nap"], {"worker_id": worker_id, "min_s": min_s,
                                         "max_s": max_s, "lookahead_s": lookahead_s}).fetchone()
    assert row is not None
    return row["next_run_at"], row["db_now"]


def get(conn: Connection, job_id: int) -> dict[str, Any] | None:
    return conn.execute(Q["outbox.get"], {"id": job_id}).fetchone()


def get_by_dedupe_key(conn: Connection, dedupe_key: str) -> dict[str, Any] | None:
    return conn.execute(Q["outbox.get_by_dedupe_key"], {"dedupe_key": dedupe_key}).fetchone()


def complete_many(conn: Connection, jobs: list[Job]) -> set[int]:
    """Complete many jobs in one statement; the ids whose lease was still ours."""
    rows = conn.execute(Q["outbox.complete_many"], {"ids": [j.id for j in jobs],
                                                    "claims": [j.claims for j in jobs]})
    return {int(r["id"]) for r in rows}
