"""The outbox on a real Postgres: dedupe, claim with lease, expiry, fencing, ordering, rerun."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.cxone import StatusReport
from app.status_sync import queue_report
from db import outbox
from db.pool import Database


@dataclass(frozen=True)
class PlainJob:
    """The smallest job the outbox takes (app/jobs.py has the real kinds)."""

    dedupe_key: str
    kind: str = "test"
    ordering_key: str | None = None

    def payload(self) -> dict[str, Any]:
        return {"key": self.dedupe_key}


def _enqueue(db: Database, key: str, *, ordering_key: str | None = None,
             **kwargs: Any) -> int | None:
    with db.connection() as conn:
        return outbox.enqueue(conn, PlainJob(key, ordering_key=ordering_key), **kwargs)


def _claim(db: Database, worker: str = "w1", limit: int = 10, lease_s: float = 30) -> list:
    with db.connection() as conn:
        return outbox.claim(conn, worker=worker, limit=limit, lease_s=lease_s)


def test_dedupe_key_enqueues_once(db: Database) -> None:
    assert _enqueue(db, "m1") is not None
    assert _enqueue(db, "m1") is None
    assert len(_claim(db)) == 1


def test_claimed_job_is_invisible_until_its_lease_expires(db: Database) -> None:
    _enqueue(db, "m1")
    [job] = _claim(db, lease_s=0.5)
    assert _claim(db, worker="w2") == []
    time.sleep(0.7)
    [again] = _claim(db, worker="w2")
    assert again.id == job.id and again.claims == job.claims + 1


def test_a_lost_lease_cannot_complete_the_job(db: Database) -> None:
    _enqueue(db, "m1")
    [first] = _claim(db, lease_s=0.2)
    time.sleep(0.3)
    [second] = _claim(db, worker="w2")
    with db.connection() as conn:
        assert outbox.complete(conn, first) is False
        assert outbox.complete(conn, second) is True
        assert outbox.get(conn, first.id)["state"] == "done"


def test_concurrent_claimers_never_share_a_job(db: Database) -> None:
    for i in range(200):
        _enqueue(db, f"m{i}")
    seen: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            jobs = _claim(db, worker=name, limit=7)
            if not jobs:
                return
            with lock:
                seen.extend(j.id for j in jobs)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200 and len(set(seen)) == 200


def test_jobs_sharing_an_ordering_key_run_one_at_a_time_in_order(db: Database) -> None:
    for i in range(3):
        _enqueue(db, f"a{i}", ordering_key="conv:a")
    _enqueue(db, "b0", ordering_key="conv:b")
    first = _claim(db)
    assert sorted(j.dedupe_key for j in first) == ["a0", "b0"]
    assert _claim(db) == []
    a0 = next(j for j in first if j.dedupe_key == "a0")
    with db.connection() as conn:
        outbox.complete(conn, a0)
    assert [j.dedupe_key for j in _claim(db)] == ["a1"]


def test_retry_counts_attempts_and_delays(db: Database) -> None:
    _enqueue(db, "m1")
    [job] = _claim(db)
    with db.connection() as conn:
        assert outbox.retry(conn, job, delay_s=0.3, error="boom")
    assert _claim(db) == []
    time.sleep(0.4)
    [again] = _claim(db)
    assert again.attempts == 1 and again.last_error == "boom"


def test_reschedule_runs_again_later_without_counting_a_failure(db: Database) -> None:
    _enqueue(db, "m1")
    [job] = _claim(db)
    with db.connection() as conn:
        assert outbox.reschedule(conn, job, run_at=job.db_now + timedelta(seconds=0.2))
    assert _claim(db) == []
    time.sleep(0.3)
    [again] = _claim(db)
    assert again.attempts == 0 and again.payload == {"key": "m1"}


def test_bury_moves_to_dead_letters(db: Database) -> None:
    _enqueue(db, "m1")
    [job] = _claim(db)
    with db.connection() as conn:
        assert outbox.bury(conn, job, error="gave up")
        row = outbox.get(conn, job.id)
    assert row["state"] == "dead" and row["last_error"] == "gave up"
    assert _claim(db) == []


def test_work_arriving_while_a_job_runs_makes_it_run_again(db: Database) -> None:
    with db.connection() as conn:
        queue_report(conn, "1", StatusReport("SENT"))
    [job] = _claim(db)
    with db.connection() as conn:
        queue_report(conn, "1", StatusReport("SENT"))
        assert outbox.complete(conn, job)
        assert outbox.get(conn, job.id)["state"] == "queued"
    [again] = _claim(db)
    with db.connection() as conn:
        assert outbox.complete(conn, again)
        assert outbox.get(conn, job.id)["state"] == "done"
        queue_report(conn, "1", StatusReport("SENT"))
        assert outbox.get(conn, job.id)["state"] == "queued"


def test_lookahead_claims_jobs_due_shortly(db: Database) -> None:
    with db.connection() as conn:
        now = conn.execute("SELECT now() AS n").fetchone()["n"]
        outbox.enqueue(conn, PlainJob("soon"), run_at=now + timedelta(seconds=0.2))
        assert outbox.claim(conn, worker="w", limit=5, lease_s=10) == []
        [job] = outbox.claim(conn, worker="w", limit=5, lease_s=10, lookahead_s=0.5)
    assert job.due_at > job.db_now
