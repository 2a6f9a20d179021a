"""Queue against peers: drain no-op jobs with 1, 2 and 4 worker processes on one Postgres.

Our outbox (claim with a lease, pacing check, complete) against procrastinate and
pgqueuer, each on a fresh database of the same server. For every system and
worker count: apply the system's schema, enqueue N jobs in bulk (not measured),
start W worker processes, and time from releasing them all at once (a barrier,
so imports, connections and worker start-up are not measured) until every
worker found the queue empty. Every job must have run exactly once.

    .venv-bench/bin/python tests/bench/bench_queue.py [--jobs 20000] [--workers 1,2,4]
        [--database-url URL] [--systems outbox,procrastinate,pgqueuer] [--repeat 1]
        [--json results.json]

The server URL comes from --database-url, else BENCH_DATABASE_URL, else
TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres. Only
databases named bench_queue_* that this run creates are touched (and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from multiprocessing.synchronize import Barrier
from queue import Empty
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEMS = ("outbox", "procrastinate", "pgqueuer")
STARTUP_TIMEOUT_S = 120.0

# Our worker: what the dispatcher and the send job do per job, minus HTTP.
JOB_LEASE_S = 60.0  # JOB_LEASE_S default
SENDERS = 1000  # sender keys the jobs are spread over, as the real pacing spreads them
SPACING_S = 1e-6  # a rate no job ever waits for: measures the check, not the pacing
HOLD_S = 20.0  # TWILIO_TIMEOUT_S + 5, what a send holds its sender for at most

PGQUEUER_ENTRYPOINT = "bench_noop"
PROCRASTINATE_TASK = "bench_noop"


@dataclass(frozen=True)
class Options:
    """What the workers need besides the database URL (picklable for spawn)."""

    procrastinate_concurrency: int = 1
    pgqueuer_driver: str = "asyncpg"
    pgqueuer_batch_size: int = 10
    timeout_s: float = 900.0


@dataclass
class WorkerReport:
    """What one worker process tells the parent when it stops."""

    index: int
    finished_at: float = 0.0  # time.monotonic(): system-wide on Linux, so comparable
    ran: int = 0
    throttle_waits: int = 0
    error: str | None = None


@dataclass
class Run:
    """One drain of N jobs by W workers."""

    system: str
    workers: int
    seconds: float
    jobs: int
    startup_s: float = 0.0  # process start until all were ready: not in ``seconds``
    per_worker: list[int] = field(default_factory=list)
    throttle_waits: int = 0

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds


# -- our outbox ------------------------------------------------------------------------------

def outbox_settings() -> dict[str, Any]:
    """What is compared, for the report."""
    from worker.completions import MAX_BATCH
    from worker.dispatcher import CLAIM_BATCH, LOOKAHEAD_S

    return {
        "driver": f"psycopg {metadata.version('psycopg')} (sync), one connection per process",
        "claim": f"outbox.claim: batch {CLAIM_BATCH} (the dispatcher's CLAIM_BATCH), "
                 f"lease {JOB_LEASE_S:g} s, lookahead {LOOKAHEAD_S} s",
        "pacing": f"throttle.place_sends for the claimed batch (the dispatcher's preparer) "
                  f"on {SENDERS} sender keys, spacing {SPACING_S:g} s; a job whose sender "
                  "another job of the batch took first waits with throttle.take",
        "complete": f"outbox.complete_many, as the dispatcher's batcher marks finished jobs "
                    f"done (up to {MAX_BATCH} per statement)",
        "per batch": "claim + place + complete = 3 statements (+1 take per sender collision)",
        "concurrency": "1 batch at a time per process (the real worker overlaps up to "
                       "WORKER_CONCURRENCY jobs in greenlets)",
    }


def outbox_prepare(url: str, jobs: int) -> None:
    """Migrate and COPY ``jobs`` rows: distinct dedupe keys, ordering_key NULL."""
    from db.migrate import migrate

    migrate(url)
    with psycopg.connect(url) as conn, conn.cursor() as cur, \
            cur.copy("COPY outbox (kind, dedupe_key, payload) FROM STDIN") as copy:
        for n in range(jobs):
            payload = {"from": f"+1555{n % SENDERS:07d}", "to": "+15559990000", "n": n}
            copy.write_row(("bench_noop", f"bench-{n}", json.dumps(payload)))


def outbox_worker(url: str, index: int, barrier: Barrier, options: Options) -> WorkerReport:
    """Claim a batch, pace it in one statement, (no send), mark the batch done."""
    from db import outbox, throttle
    from db.pool import Database
    from worker.dispatcher import CLAIM_BATCH, LOOKAHEAD_S

    conn = Database(url, application_name="smsgw-bench").connect()
    worker_id = f"bench-{index}-{os.getpid()}"
    report = WorkerReport(index=index)
    barrier.wait(timeout=STARTUP_TIMEOUT_S)
    while True:
        jobs = outbox.claim(conn, worker=worker_id, limit=CLAIM_BATCH, lease_s=JOB_LEASE_S,
                            lookahead_s=LOOKAHEAD_S)
        if not jobs:  # burst mode: nothing runnable left
            break
        keys = {job.id: f"sender:{job.payload['from']}" for job in jobs}
        placed = throttle.place_sends(
            conn, [{"id": job.id, "claims": job.claims, "key": keys[job.id],
                    "spacing": SPACING_S, "ord": n} for n, job in enumerate(jobs)],
            hold_s=HOLD_S, lookahead_s=LOOKAHEAD_S)
        for job in jobs:
            if not placed[job.id].started:
                report.throttle_waits += 1
                _wait_for_sender(conn, keys[job.id])
            # The Twilio create would be here.
        report.ran += len(outbox.complete_many(conn, jobs))
    report.finished_at = time.monotonic()
    conn.close()
    return report


def _wait_for_sender(conn: Any, key: str) -> None:
    """Another job of the batch took this sender first: wait as worker/send.py's _pace does."""
    from db import throttle

    taken = throttle.take(conn, key, SPACING_S, HOLD_S)
    while not taken.started:
        wait = SPACING_S if taken.busy or taken.free_at is None else \
            (taken.free_at - taken.db_now).total_seconds()
        time.sleep(max(0.0, wait))
        taken = throttle.take(conn, key, SPACING_S, HOLD_S)


def outbox_verify(url: str, jobs: int) -> str | None:
    """Every row done and claimed exactly once; else what is wrong."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'done'), "
            "count(*) FILTER (WHERE claims = 1) FROM outbox").fetchone()
    assert row is not None
    total, done, claimed_once = row
    if (total, done, claimed_once) != (jobs, jobs, jobs):
        return f"outbox: {total} rows, {done} done, {claimed_once} claimed once; want {jobs}"
    return None


# -- procrastinate ---------------------------------------------------------------------------

def procrastinate_settings(options: Options) -> dict[str, Any]:
    """What is compared, for the report."""
    return {
        "driver": f"PsycopgConnector (psycopg {metadata.version('psycopg')} async, "
                  "psycopg_pool defaults)",
        "worker": f"App.run_worker_async(wait=False, concurrency="
                  f"{options.procrastinate_concurrency}); default concurrency is 1; "
                  "listen_notify, polling and delete_jobs='never' at their defaults",
        "task": "async def, does nothing; jobs deferred with Task.batch_defer_async",
        "event loop": "asyncio (what App.run_worker uses)",
        "per job": "procrastinate_fetch_job_v2 + procrastinate_finish_job_v1 = 2 statements",
    }


def procrastinate_app(url: str) -> tuple[Any, list[int]]:
    """An App with one no-op task; the list counts the task's runs in this process."""
    from procrastinate import App, PsycopgConnector

    # It warns about an App made in __main__ (task names would depend on how the
    # module was started); the explicit task name below makes that moot.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = App(connector=PsycopgConnector(conninfo=url))
    ran = [0]

    # An explicit name: the default is module-based, and spawned children see
    # this module as __mp_main__, not __main__.
    @app.task(name=PROCRASTINATE_TASK)
    async def noop(n: int) -> None:
        ran[0] += 1

    return app, ran


def procrastinate_prepare(url: str, jobs: int) -> None:
    """Apply procrastinate's schema and defer ``jobs`` no-op jobs in one batch."""
    async def prepare() -> None:
        app, _ = procrastinate_app(url)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await app.tasks[PROCRASTINATE_TASK].batch_defer_async(
                *({"n": n} for n in range(jobs)))

    asyncio.run(prepare())


def procrastinate_worker(url: str, index: int, barrier: Barrier,
                         options: Options) -> WorkerReport:
    """The app opened first (its pool connected), then a worker that stops when idle."""
    report = WorkerReport(index=index)

    async def work() -> None:
        app, ran = procrastinate_app(url)
        async with app.open_async():
            await asyncio.to_thread(barrier.wait, STARTUP_TIMEOUT_S)
            await app.run_worker_async(wait=False,
                                       concurrency=options.procrastinate_concurrency)
            report.finished_at = time.monotonic()
        report.ran = ran[0]

    asyncio.run(work())
    return report


def procrastinate_verify(url: str, jobs: int) -> str | None:
    """Every job succeeded after exactly one fetch; else what is wrong."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status::text, count(*), min(attempts), max(attempts) "
            "FROM procrastinate_jobs GROUP BY status").fetchall()
    # attempts counts fetches: 1 for a job that ran once.
    by_status = {status: (count, low, high) for status, count, low, high in rows}
    if by_status != {"succeeded": (jobs, 1, 1)}:
        return (f"procrastinate: jobs by status (count, min and max attempts) {by_status}; "
                f"want {{'succeeded': ({jobs}, 1, 1)}}")
    return None


# -- pgqueuer --------------------------------------------------------------------------------

def pgqueuer_settings(options: Options) -> dict[str, Any]:
    """What is compared, for the report."""
    driver = options.pgqueuer_driver
    version = metadata.version("asyncpg" if driver == "asyncpg" else "psycopg")
    return {
        "driver": f"{'AsyncpgDriver' if driver == 'asyncpg' else 'PsycopgDriver'} "
                  f"({driver} {version}), one connection per process (the docs' advice "
                  "for a QueueManager)",
        "worker": f"QueueManager.run(mode=drain, batch_size={options.pgqueuer_batch_size}); "
                  "default batch_size 10, max_concurrent_tasks None (unlimited), "
                  "other knobs at their defaults",
        "schema": "Queries.install() (durability 'durable', the default) + "
                  "optimize_autovacuum() ('pgq autovac', as the tuning guide recommends)",
        "task": "async entrypoint, does nothing; jobs enqueued with one list Queries.enqueue",
        "event loop": "uvloop when installed (what the pgq CLI uses)",
        "per job": f"1 dequeue per {options.pgqueuer_batch_size} jobs + buffered completion "
                   "log (1 statement per batch); heartbeats buffered",
    }


async def _pgqueuer_connect(url: str, driver: str) -> Any:
    """An asyncpg connection, or an autocommit psycopg one (what PsycopgDriver demands)."""
    if driver == "asyncpg":
        import asyncpg

        return await asyncpg.connect(url)
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


def _pgqueuer_queries(connection: Any, driver: str) -> Any:
    from pgqueuer.db import AsyncpgDriver, PsycopgDriver
    from pgqueuer.queries import Queries

    return Queries(AsyncpgDriver(connection) if driver == "asyncpg"
                   else PsycopgDriver(connection))


def _run_event_loop(coroutine: Any) -> None:
    """uvloop when installed, as the pgq CLI runs its workers."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def pgqueuer_prepare_with(options: Options) -> Callable[[str, int], None]:
    """The prepare step for ``options``' driver: install, tune, enqueue in one list call."""
    def prepare(url: str, jobs: int) -> None:
        async def install_and_enqueue() -> None:
            connection = await _pgqueuer_connect(url, options.pgqueuer_driver)
            try:
                queries = _pgqueuer_queries(connection, options.pgqueuer_driver)
                await queries.install()
                await queries.optimize_autovacuum()
                await queries.enqueue([PGQUEUER_ENTRYPOINT] * jobs,
                                      [str(n).encode() for n in range(jobs)], [0] * jobs)
            finally:
                await connection.close()

        _run_event_loop(install_and_enqueue())

    return prepare


def pgqueuer_worker(url: str, index: int, barrier: Barrier, options: Options) -> WorkerReport:
    """A QueueManager with a no-op entrypoint, run in drain mode (stops when empty)."""
    report = WorkerReport(index=index)

    async def work() -> None:
        from pgqueuer.models import Job
        from pgqueuer.qm import QueueManager
        from pgqueuer.types import QueueExecutionMode

        connection = await _pgqueuer_connect(url, options.pgqueuer_driver)
        manager = QueueManager(_pgqueuer_queries(connection, options.pgqueuer_driver))

        @manager.entrypoint(PGQUEUER_ENTRYPOINT)
        async def noop(job: Job) -> None:
            report.ran += 1

        await asyncio.to_thread(barrier.wait, STARTUP_TIMEOUT_S)
        # run() returns after flushing its buffered completions: the jobs are done then.
        await manager.run(mode=QueueExecutionMode.drain, batch_size=options.pgqueuer_batch_size)
        report.finished_at = time.monotonic()
        await connection.close()

    _run_event_loop(work())
    return report


def pgqueuer_verify(url: str, jobs: int) -> str | None:
    """Queue empty and one 'successful' log row per job; else what is wrong."""
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
        logged = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM pgqueuer_log "
            "WHERE status = 'successful'").fetchone()
    assert left is not None and logged is not None
    if left[0] != 0 or tuple(logged) != (jobs, jobs):
        return (f"pgqueuer: {left[0]} jobs left in the queue, {logged[0]} successful log rows "
                f"for {logged[1]} jobs; want 0 and {jobs}")
    return None


# -- the systems -----------------------------------------------------------------------------

@dataclass(frozen=True)
class System:
    """How to set up, drain and check one queue."""

    name: str
    settings: dict[str, Any]
    prepare: Callable[[str, int], None]
    verify: Callable[[str, int], str | None]
    versions: dict[str, str]


WORKERS: dict[str, Callable[[str, int, Barrier, Options], WorkerReport]] = {
    "outbox": outbox_worker,
    "procrastinate": procrastinate_worker,
    "pgqueuer": pgqueuer_worker,
}


def build_system(name: str, options: Options) -> System:
    """The named system, described with the settings it will run with."""
    if name == "outbox":
        return System(name, outbox_settings(), outbox_prepare, outbox_verify,
                      {"smsgw": metadata.version("cxone-twilio-sms-gateway")})
    if name == "procrastinate":
        return System(name, procrastinate_settings(options), procrastinate_prepare,
                      procrastinate_verify, {"procrastinate": metadata.version("procrastinate")})
    if name == "pgqueuer":
        return System(name, pgqueuer_settings(options), pgqueuer_prepare_with(options),
                      pgqueuer_verify, {"pgqueuer": metadata.version("pgqueuer")})
    raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


# -- databases -------------------------------------------------------------------------------

def url_with_database(server_url: str, name: str) -> str:
    """The same server, another database (a URL: asyncpg takes no key=value strings)."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit("--database-url must be a postgresql:// URL")
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(server_url: str, label: str) -> Iterator[str]:
    """A new, empty database for one run; dropped afterwards, whatever happened."""
    name = f"bench_queue_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # our own generated name
    try:
        yield url_with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settle(url: str) -> None:
    """Same starting line for every system: fresh statistics, no checkpoint pending."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # only a superuser (or pg_checkpoint) may; the run is just noisier


def server_facts(server_url: str) -> dict[str, str]:
    """The server's version and the settings that move these numbers most."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        facts = {}
        for setting in ("server_version", "synchronous_commit", "fsync", "shared_buffers",
                        "max_connections"):
            row = conn.execute(f"SHOW {setting}").fetchone()  # fixed names, not input
            facts[setting] = str(row[0]) if row else "?"
    return facts


# -- one drain -------------------------------------------------------------------------------

def worker_process(system: str, url: str, index: int, barrier: Barrier,
                   reports: Any, options: Options) -> None:
    """Entry point of a spawned worker: run, then report (or report the error)."""
    try:
        report = WORKERS[system](url, index, barrier, options)
    except BaseException as exc:
        barrier.abort()  # the parent and the other workers must not wait for us
        reports.put(WorkerReport(index=index, error=f"{type(exc).__name__}: {exc}"))
        raise
    reports.put(report)


def drain(system: System, server_url: str, jobs: int, workers: int, options: Options) -> Run:
    """Fresh database, schema, N jobs, then time W worker processes emptying the queue."""
    with scratch_database(server_url, f"{system.name}_{workers}") as url:
        system.prepare(url, jobs)
        settle(url)
        startup_s, seconds, reports = time_workers(system.name, url, workers, options)
        ran = sum(r.ran for r in reports)
        problem = system.verify(url, jobs) or (
            None if ran == jobs else f"{system.name}: workers ran {ran} jobs, want {jobs}")
    if problem:
        raise RuntimeError(f"not exactly once: {problem}")
    return Run(system=system.name, workers=workers, seconds=seconds, jobs=jobs,
               startup_s=startup_s, per_worker=[r.ran for r in reports],
               throttle_waits=sum(r.throttle_waits for r in reports))


def time_workers(system: str, url: str, workers: int,
                 options: Options) -> tuple[float, float, list[WorkerReport]]:
    """(start-up seconds, drain seconds, reports): spawn, wait for all ready, release, time."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    queue = context.Queue()
    processes = [context.Process(target=worker_process, name=f"bench-{system}-{index}",
                                 args=(system, url, index, barrier, queue, options))
                 for index in range(workers)]
    spawned_at = time.monotonic()
    for process in processes:
        process.start()
    try:
        started_at = _release(barrier, queue)
        try:
            reports = [queue.get(timeout=options.timeout_s) for _ in processes]
        except Empty:
            raise RuntimeError(f"{system}: no end in {options.timeout_s:g} s") from None
    finally:
        _stop(processes)
    errors = [r.error for r in reports if r.error]
    if errors:
        raise RuntimeError(f"{system} worker failed: {errors[0]}")
    reports.sort(key=lambda r: r.index)
    finished_at = max(r.finished_at for r in reports)
    return started_at - spawned_at, finished_at - started_at, reports


def _release(barrier: Barrier, reports: Any) -> float:
    """Wait until every worker is ready, let them all go; the moment they went."""
    try:
        barrier.wait(timeout=STARTUP_TIMEOUT_S)
    except threading.BrokenBarrierError:
        try:
            error = reports.get(timeout=5).error
        except Exception:
            error = "no report (crashed or timed out at start)"
        raise RuntimeError(f"a worker failed to start: {error}") from None
    return time.monotonic()


def _stop(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Join our workers; one still alive after its report (or a failure) is terminated."""
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)


# -- report ----------------------------------------------------------------------------------

def summarize(runs: list[Run], systems: list[str], worker_counts: list[int],
              jobs: int) -> dict[str, Any]:
    """Median seconds per (system, workers) and the ratios of ours to each peer."""
    rows = []
    rate: dict[tuple[str, int], float] = {}
    for workers in worker_counts:
        for system in systems:
            times = [r.seconds for r in runs if r.system == system and r.workers == workers]
            if not times:
                continue
            seconds = statistics.median(times)
            rate[system, workers] = jobs / seconds
            rows.append({"system": system, "workers": workers, "seconds": round(seconds, 3),
                         "jobs_per_s": round(jobs / seconds, 1),
                         "all_seconds": [round(t, 3) for t in times]})
    ratios = []
    for workers in worker_counts:
        entry: dict[str, Any] = {"workers": workers}
        for peer in ("pgqueuer", "procrastinate"):
            if ("outbox", workers) in rate and (peer, workers) in rate:
                entry[f"outbox/{peer}"] = round(rate["outbox", workers] / rate[peer, workers], 2)
        ratios.append(entry)
    return {"results": rows, "ratios": ratios}


def print_report(summary: dict[str, Any], runs: list[Run]) -> None:
    """The table, the ratios and whether the issue's target is met at 4 workers."""
    print()
    print(f"{'system':<14}{'workers':>8}{'seconds':>10}{'jobs/s':>10}   runs (s)")
    for row in summary["results"]:
        runs_s = ", ".join(f"{t:.2f}" for t in row["all_seconds"])
        print(f"{row['system']:<14}{row['workers']:>8}{row['seconds']:>10.2f}"
              f"{row['jobs_per_s']:>10.0f}   {runs_s}")
    print()
    print(f"{'workers':>7}{'ours/pgqueuer':>16}{'ours/procrastinate':>21}")
    for entry in summary["ratios"]:
        pgq = entry.get("outbox/pgqueuer")
        pro = entry.get("outbox/procrastinate")
        print(f"{entry['workers']:>7}{_ratio(pgq):>16}{_ratio(pro):>21}")
    four = next((e for e in summary["ratios"] if e["workers"] == 4), None)
    if four and "outbox/pgqueuer" in four and "outbox/procrastinate" in four:
        met_pgq = "met" if four["outbox/pgqueuer"] >= 1 else "NOT met"
        met_pro = "met" if four["outbox/procrastinate"] >= 5 else "NOT met"
        print(f"\ntarget at 4 workers: ours >= pgqueuer: {met_pgq}; "
              f"ours >= 5x procrastinate: {met_pro}")
    waits = sum(r.throttle_waits for r in runs if r.system == "outbox")
    if waits:
        print(f"outbox: {waits} jobs found their sender busy in another process and polled")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# -- command line ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER_URL,
                        help="a server URL; runs create and drop their own databases")
    parser.add_argument("--repeat", type=int, default=1,
                        help="drains per (system, workers); the median is reported")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--procrastinate-concurrency", type=int, default=1,
                        help="jobs at once per procrastinate worker (its default: 1)")
    parser.add_argument("--pgqueuer-driver", choices=("asyncpg", "psycopg"), default="asyncpg",
                        help="asyncpg is pgqueuer's recommended driver; its psycopg driver "
                             "shares the connection with a LISTEN watcher and is far slower")
    parser.add_argument("--pgqueuer-batch-size", type=int, default=10,
                        help="pgqueuer dequeue batch size (its default: 10)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one drain may take before it is abandoned")
    return parser.parse_args(argv)


def _require_asyncpg() -> None:
    """Refuse to fall back silently to pgqueuer's slow driver: it would flatter ours."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise SystemExit("pgqueuer runs on asyncpg, its recommended driver: install "
                         "'pgqueuer[asyncpg]' into this environment (or pass "
                         "--pgqueuer-driver psycopg knowingly)") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(procrastinate_concurrency=args.procrastinate_concurrency,
                      pgqueuer_driver=args.pgqueuer_driver,
                      pgqueuer_batch_size=args.pgqueuer_batch_size, timeout_s=args.timeout)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if "pgqueuer" in names and options.pgqueuer_driver == "asyncpg":
        _require_asyncpg()
    systems = [build_system(name, options) for name in names]
    server = server_facts(args.database_url)
    versions = {"python": sys.version.split()[0], "postgres": server["server_version"]}
    for system in systems:
        versions |= system.versions

    print(f"queue benchmark: {args.jobs} no-op jobs, workers {worker_counts}, "
          f"{args.repeat} drain(s) each; {os.cpu_count()} CPUs")
    print("postgres: " + ", ".join(f"{k} {v}" for k, v in server.items()))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for system in systems:
        print(f"{system.name}:")
        for key, value in system.settings.items():
            print(f"  {key}: {value}")
    print("timed: from releasing all workers at once (after start-up) until the last "
          "worker found the queue empty; enqueue not timed; every run checked exactly-once",
          flush=True)

    runs: list[Run] = []
    # Interleaved, so each ratio compares runs made close together in time.
    for _ in range(args.repeat):
        for workers in worker_counts:
            for system in systems:
                run = drain(system, args.database_url, args.jobs, workers, options)
                runs.append(run)
                print(f"  {system.name:<14} workers={workers}: {run.seconds:7.2f} s "
                      f"{run.jobs_per_s:9.0f} jobs/s  (start-up {run.startup_s:.2f} s, not timed; "
                      f"jobs per worker {run.per_worker})", flush=True)

    summary = summarize(runs, names, worker_counts, args.jobs)
    print_report(summary, runs)
    if args.json:
        document = {"jobs": args.jobs, "workers": worker_counts, "repeat": args.repeat,
                    "postgres": server, "versions": versions,
                    "settings": {s.name: s.settings for s in systems},
                    "runs": [asdict(r) for r in runs], **summary}
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
