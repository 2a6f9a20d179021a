"""Finished jobs are marked done in batches: one statement for up to 100, every 5 ms.

A job's own work has committed by the time it is finished; only the "done"
mark waits here. If the process dies before a flush, those jobs run again
after their lease — harmless, because every job kind is idempotent (a status
push finds nothing left to push, an inbound post is deduplicated by CXone).
Sends never come here: their completion commits with their SID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import gevent.event

from app.errors import DatabaseUnavailable
from app.logs import event
from db import outbox
from db.outbox import Job
from db.pool import Database

log = logging.getLogger(__name__)

MAX_BATCH = 100
MAX_DELAY_S = 0.005


class Completions:
    """Collects finished jobs and marks them done together."""

    def __init__(self, db: Database, on_done: Callable[[list[Job]], None]) -> None:
        self.db = db
        self.on_done = on_done
        self.pending: list[Job] = []
        self.ready = gevent.event.Event()
        self.idle = gevent.event.Event()
        self.idle.set()

    def add(self, job: Job) -> None:
        self.pending.append(job)
        self.idle.clear()
        if len(self.pending) >= MAX_BATCH:
            self.ready.set()

    def run(self, stopping: gevent.event.Event) -> None:
        """Flush every MAX_DELAY_S (sooner when a batch is full) until stopped, then once more."""
        while not stopping.is_set():
            self.ready.wait(timeout=MAX_DELAY_S)
            self.ready.clear()
            self.flush()
        self.flush()

    def flush(self) -> None:
        if not self.pending:
            self.idle.set()
            return
        batch, self.pending = self.pending, []
        try:
            with self.db.connection() as conn:
                completed = outbox.complete_many(conn, batch)
        except DatabaseUnavailable as exc:
            # Not marked done: their leases run out and they run again (idempotent).
            event(log, "job.outcome_not_written", logging.WARNING, jobs=len(batch),
                  error=str(exc))
            completed = set()
        for job in batch:
            if job.id not in completed:
                event(log, "job.lease_lost", logging.WARNING, job_id=job.id, kind=job.kind)
        self.on_done(batch)
        if not self.pending:
            self.idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting to be marked done."""
        self.ready.set()
        return bool(self.idle.wait(timeout=timeout))
