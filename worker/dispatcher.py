"""The dispatcher: claim jobs (one SKIP LOCKED statement with a lease) and run them in greenlets.

It sleeps until the next job is due or a NOTIFY says new work arrived. A job
whose worker dies is claimable again when its lease runs out; every write
after a claim is fenced by the job's claim count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import gevent
import gevent.event
import gevent.pool

from app import metrics
from app.errors import AuthenticationFailed, DatabaseUnavailable, PermanentError, TransientError
from app.jobs import Kind, SendJob
from app.logs import event
from app.retry import RetryPolicy
from app.status_sync import queue_report
from app.statuses import failed_report
from db import audit, outbox
from db.outbox import Job
from db.pool import Connection
from worker.completions import Completions
from worker.health import JOB_ROLES
from worker.jobs import Bury, Done, Handled, JobContext, Outcome, Reschedule, Retry

log = logging.getLogger(__name__)

Handler = Callable[[JobContext, Job], Outcome]

# Claim jobs due this soon and let each wait in its greenlet: sends land on their slot.
LOOKAHEAD_S = 0.25
MAX_IDLE_S = 1.0
MIN_IDLE_S = 0.05
CLAIM_BATCH = 50
AUTH_RETRY_S = 60.0


class Dispatcher:
    """Claims and runs jobs with at most ``concurrency`` greenlets."""

    def __init__(self, ctx: JobContext, handlers: dict[str, Handler], *, concurrency: int,
                 burst: bool = False) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.pool = gevent.pool.Pool(concurrency)
        self.wake = gevent.event.Event()
        self.burst = burst
        self.completions = Completions(ctx.db, self._after_completion)
        self.policy = RetryPolicy(base_s=ctx.settings.retry_base_s,
                                  max_s=ctx.settings.retry_max_s,
                                  max_attempts=ctx.settings.max_attempts)

    def run(self) -> None:
        """Claim and spawn until the worker stops (or, in burst mode, until idle)."""
        flusher = gevent.spawn(self.completions.run, self.ctx.stopping)
        try:
            self._loop()
        finally:
            if self.burst:
                self.ctx.stopping.set()
            flusher.join(timeout=10)

    def _loop(self) -> None:
        while not self.ctx.stopping.is_set():
            self.ctx.roles.tick("dispatcher")
            free = self.pool.free_count()
            if free <= 0:
                self.pool.wait_available(timeout=MAX_IDLE_S)
                continue
            self.wake.clear()  # a NOTIFY from now on wakes the next idle wait
            try:
                jobs = self._claim(min(free, CLAIM_BATCH))
            except DatabaseUnavailable as exc:
                event(log, "dispatch.database_unavailable", logging.WARNING, error=str(exc))
                self.ctx.roles.failed("dispatcher", str(exc))
                self.ctx.sleep(1.0)
                continue
            self.ctx.roles.ok("dispatcher")
            for job in jobs:
                self.pool.spawn(self.run_job, job)
            if len(jobs) >= min(free, CLAIM_BATCH):
                gevent.sleep(0)  # more may be waiting: claim again after a yield
                continue
            if self.burst and not jobs and len(self.pool) == 0 \
                    and self.completions.wait_idle(5) and self._nothing_due():
                return
            self._idle()

    def _claim(self, limit: int) -> list[Job]:
        with self.ctx.db.connection() as conn:
            return outbox.claim(conn, worker=self.ctx.worker_id, limit=limit,
                                lease_s=self.ctx.settings.job_lease_s, lookahead_s=LOOKAHEAD_S)

    def _nothing_due(self) -> bool:
        with self.ctx.db.connection() as conn:
            next_run_at, db_now = outbox.next_due(conn)
        return next_run_at is None or next_run_at > db_now + timedelta(seconds=LOOKAHEAD_S)

    def _idle(self) -> None:
        """Sleep until the next job is due, a NOTIFY arrives, or a greenlet frees up.

        The nap is announced in the statement that reads the next job's time: writers
        NOTIFY only while a dispatcher naps (db/migrations/0060_quiet_wake.sql).
        """
        # Jobs are claimed up to LOOKAHEAD_S early and wait in their greenlet, so waking
        # at most every MIN_IDLE_S batches claims without making any late.
        longest = MIN_IDLE_S if self.burst and len(self.pool) else MAX_IDLE_S
        try:
            with self.ctx.db.connection() as conn:
                next_run_at, db_now = outbox.nap(conn, worker_id=self.ctx.worker_id,
                                                 min_s=MIN_IDLE_S, max_s=longest,
                                                 lookahead_s=LOOKAHEAD_S)
        except DatabaseUnavailable:
            next_run_at, db_now = None, None
        timeout = longest
        if next_run_at is not None and db_now is not None:
            due_in = (next_run_at - db_now).total_seconds() - LOOKAHEAD_S
            timeout = min(longest, max(MIN_IDLE_S, due_in))
        self.wake.wait(timeout=timeout)

    def join(self, timeout: float) -> bool:
        """Wait for running jobs and mark the finished ones done; True when all finished."""
        finished = bool(self.pool.join(timeout=timeout))
        self.completions.flush()
        return finished

    def kill_remaining(self) -> None:
        self.pool.kill(block=True, timeout=2)

    # -- one job ---------------------------------------------------------------------------

    def run_job(self, job: Job) -> None:
        """Run one job and write its outcome (fenced by its claim count)."""
        if self.ctx.stopping.is_set():
            # Claimed but never started: hand it back untouched.
            self._write(job, Reschedule(run_at=job.due_at, reason="shutdown"))
            return
        handler = self.handlers.get(job.kind)
        role = JOB_ROLES.get(job.kind, job.kind)
        crashed = False
        started = time.perf_counter()
        try:
            if handler is None:
                outcome: Outcome = Bury(error=f"no handler for job kind {job.kind!r}")
            else:
                outcome = handler(self.ctx, job)
        except AuthenticationFailed as exc:
            event(log, "job.credentials_rejected", logging.ERROR, job_id=job.id, kind=job.kind,
                  error=str(exc))
            outcome = Reschedule(run_at=job.db_now + timedelta(seconds=AUTH_RETRY_S),
                                 reason="credentials rejected")
            self.ctx.roles.failed(role, str(exc))  # /readyz shows refused credentials
        except PermanentError as exc:
            outcome = Bury(error=str(exc))
        except TransientError as exc:
            outcome = self._retry_or_bury(job, exc)
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            log.exception("job.crashed", extra={"fields": {"job_id": job.id, "kind": job.kind}})
            crashed = True
            outcome = self._retry_or_bury(job, TransientError(f"{type(exc).__name__}: {exc}"))
        if isinstance(outcome, Retry | Bury):
            self.ctx.roles.failed(role, outcome.error, crashed=crashed)
        elif isinstance(outcome, Done | Handled):
            self.ctx.roles.ok(role)
        if isinstance(outcome, Done):
            self.completions.add(job)  # marked done with others, moments from now
        else:
            self._write(job, outcome)
            self._after_completion([job])
        metrics.JOBS.labels(job.kind, type(outcome).__name__.lower()).inc()
        event(log, "job.finished", logging.DEBUG, job_id=job.id, kind=job.kind,
              outcome=type(outcome).__name__, ms=round((time.perf_counter() - started) * 1000, 1))

    def _after_completion(self, jobs: list[Job]) -> None:
        if any(job.ordering_key for job in jobs):
            self.wake.set()  # the next job of a conversation may run now

    def _retry_or_bury(self, job: Job, exc: TransientError) -> Outcome:
        attempts = job.attempts + 1
        delay = self.policy.decide(exc, attempts)
        if delay is None:
            return Bury(error=f"gave up after {attempts} attempts: {exc}")
        event(log, "job.retry", logging.WARNING, job_id=job.id, kind=job.kind,
              attempt=attempts, delay_s=round(delay, 2), error=str(exc))
        return Retry(delay_s=delay, error=str(exc))

    def _write(self, job: Job, outcome: Outcome) -> None:
        failed = isinstance(outcome, Retry | Bury)
        try:
            # A failure and its audit entry commit together; anything else is one statement.
            with (self.ctx.db.transaction() if failed else self.ctx.db.connection()) as conn:
                ok = _write_outcome(conn, job, outcome)
                if ok and isinstance(outcome, Retry | Bury):
                    _audit_failure(conn, job, outcome)
                if ok and isinstance(outcome, Bury):
                    self._report_give_up(conn, job)
        except DatabaseUnavailable as exc:
            # The lease runs out and the job is claimed again: nothing is lost.
            event(log, "job.outcome_not_written", logging.WARNING, job_id=job.id,
                  error=str(exc))
            return
        if not ok:
            event(log, "job.lease_lost", logging.WARNING, job_id=job.id, kind=job.kind)
        if isinstance(outcome, Bury):
            metrics.DEAD_LETTERS.labels(job.kind).inc()
            event(log, "job.dead", logging.ERROR, job_id=job.id, kind=job.kind,
                  error=outcome.error)


    def _report_give_up(self, conn: Connection, job: Job) -> None:
        """A reply that dead-letters ends FAILED (gateway_gave_up) where the CXone dialect
        says so (DFO); elsewhere it waits for an operator's replay or discard."""
        if job.kind != Kind.SEND or not self.ctx.services.cxone.reports_give_up:
            return
        send = SendJob.from_payload(job.payload)
        if send.purpose == "reply" and send.message_id:
            queue_report(conn, send.message_id, failed_report(
                "gateway_gave_up", "the gateway gave up sending this message"))


def _audit_failure(conn: Connection, job: Job, outcome: Retry | Bury) -> None:
    """Every retry and every dead letter goes into the message's trace."""
    details: dict[str, Any] = {"job_id": job.id, "kind": job.kind, "attempt": job.attempts + 1}
    if isinstance(outcome, Retry):
        details["delay_s"] = round(outcome.delay_s, 2)
    retry = isinstance(outcome, Retry)
    audit.append(conn, "job.retry" if retry else "job.dead", source="worker",
                 message_id=job.payload.get("message_id"),
                 sid=job.payload.get("sid"), to_state="queued" if retry else "dead",
                 reason=outcome.error[:500], details=details)


def _write_outcome(conn: Connection, job: Job, outcome: Outcome) -> bool:
    if isinstance(outcome, Handled):
        return True
    if isinstance(outcome, Done):
        return outbox.complete(conn, job)
    if isinstance(outcome, Reschedule):
        return outbox.reschedule(conn, job, run_at=outcome.run_at)
    if isinstance(outcome, Retry):
        return outbox.retry(conn, job, delay_s=outcome.delay_s, error=outcome.error)
    assert isinstance(outcome, Bury)
    return outbox.bury(conn, job, error=outcome.error)
