"""Pacing at scale: 1,000 senders at 0.8 msg/s each, with a backlog.

The real dispatcher and the real pacing code (worker.send: reserve a slot,
wait in the queue or in a greenlet, take it) run in worker processes; the
"send" is one INSERT into a receiver table stamped with ``clock_timestamp()``,
standing in for Twilio's arrival time (an HTTP create at 800/s would measure
the simulator, not the pacing), made in the same statement that frees the
sender and completes the job, as smsgw_record_sent does after a real create.
Prints the aggregate rate while the backlog lasts, the highest per-sender rate
over any 10 s window, and violations: consecutive sends of one sender closer
than 1/SENDER_MPS.

    .venv-bench/bin/python tests/bench/bench_pacing.py [--senders 1000] [--per-sender 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = """
CREATE TABLE IF NOT EXISTS bench_sends (
    sender TEXT NOT NULL, job_id BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL)"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["run", "worker"], default="run")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--per-sender", type=int, default=12, help="backlog per sender")
    parser.add_argument("--mps", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=300, help="greenlets per worker")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args()
    if args.role == "worker":
        return run_worker(args)
    results = run(args)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run(args: argparse.Namespace) -> dict:
    import psycopg
    import psycopg.rows
    from psycopg.conninfo import make_conninfo

    sys.path.insert(0, str(ROOT))
    from db import migrate

    name = f"smsgw_bench_pace_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    try:
        migrate.migrate(url)
        senders = [f"+1800{n:07d}" for n in range(args.senders)]
        with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            conn.execute(RECEIVER)
            _enqueue_backlog(conn, senders, args.per_sender, args.mps)
        procs = [subprocess.Popen([sys.executable, __file__, "--role", "worker", "--url", url,
                                   "--senders", str(args.senders), "--mps", str(args.mps),
                                   "--concurrency", str(args.concurrency),
                                   "--workers", str(args.workers)], cwd=ROOT)
                 for _ in range(args.workers)]
        total = args.senders * args.per_sender
        started = time.monotonic()
        while _count(url) < total and time.monotonic() - started < 600:
            time.sleep(0.5)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        return _analyse(url, args, total)
    finally:
        if args.keep:
            print(f"kept database: {url}", file=sys.stderr)
        else:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _enqueue_backlog(conn, senders: list[str], per_sender: int, mps: float) -> None:  # type: ignore[no-untyped-def]
    """The backlog, enqueued and placed as the poller does it: pages of 100 replies."""
    from db import throttle

    with conn.cursor().copy("COPY outbox (kind, dedupe_key, payload) FROM STDIN") as copy:
        for round_ in range(per_sender):
            for n, sender in enumerate(senders):
                payload = json.dumps({"purpose": "bench", "to": f"+1415{n:07d}", "from": sender,
                                      "body": f"paced {round_}"})
                copy.write_row(("send_sms", f"pace-{n}-{round_}", payload))
    rows = conn.execute("SELECT id, payload->>'from' AS sender FROM outbox ORDER BY id").fetchall()
    for start in range(0, len(rows), 100):
        throttle.place_sends(conn, [{"id": r["id"], "claims": 0, "key": f"sender:{r['sender']}",
                                     "spacing": 1.0 / mps, "ord": n}
                                    for n, r in enumerate(rows[start:start + 100])],
                             hold_s=0.0, lookahead_s=0.0, take=False)


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM bench_sends").fetchone()[0])  # type: ignore[index]


def _analyse(url: str, args: argparse.Namespace, total: int) -> dict:
    import psycopg

    spacing = 1.0 / args.mps
    with psycopg.connect(url) as conn:
        first, last, sent = conn.execute(
            "SELECT min(at), max(at), count(*) FROM bench_sends").fetchone()  # type: ignore[misc]
        violations, closest = conn.execute("""
            SELECT count(*) FILTER (WHERE gap < %s), min(gap) FROM (
                SELECT EXTRACT(EPOCH FROM at - lag(at) OVER (PARTITION BY sender ORDER BY at))
                       AS gap FROM bench_sends) g WHERE gap IS NOT NULL""",
            (spacing,)).fetchone()  # type: ignore[misc]
        # Each sender's own rate over its span (its first send is free: a bucket of one
        # starts full), summed: the aggregate while the backlog lasts.
        aggregate = float(conn.execute("""
            SELECT sum((n - 1) / EXTRACT(EPOCH FROM last - first)) FROM (
                SELECT count(*) AS n, min(at) AS first, max(at) AS last
                FROM bench_sends GROUP BY sender HAVING count(*) > 1) s""").fetchone()[0] or 0)
        gaps = conn.execute("""
            SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY gap) FROM (
                SELECT EXTRACT(EPOCH FROM at - lag(at) OVER (PARTITION BY sender ORDER BY at))
                       AS gap FROM bench_sends) g WHERE gap IS NOT NULL""").fetchone()[0]  # type: ignore[index]
        busiest = conn.execute("""
            SELECT max(n) FROM (
                SELECT count(*) OVER (PARTITION BY sender ORDER BY at
                                      RANGE BETWEEN CURRENT ROW AND '10 seconds' FOLLOWING) AS n
                FROM bench_sends) w""").fetchone()[0]  # type: ignore[index]
    seconds = (last - first).total_seconds()
    limit = args.senders * args.mps
    return {
        "senders": args.senders, "per_sender_backlog": args.per_sender, "sent": sent,
        "expected": total, "seconds": round(seconds, 2),
        "aggregate_msg_per_s": round(aggregate, 1), "limit_msg_per_s": limit,
        "share_of_limit": round(aggregate / limit, 4),
        "highest_sender_rate_10s_window": round(busiest / 10.0, 2),
        "closest_gap_s": round(float(closest), 4), "spacing_s": spacing,
        "gap_p50_p90_p99_s": [round(float(g), 3) for g in gaps],
        "violations": int(violations),
    }


def run_worker(args: argparse.Namespace) -> int:
    """A worker process: the real dispatcher, a send job whose 'send' is one INSERT."""
    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, str(ROOT))
    from app.config import Settings
    from app.services import Services
    from db.pool import Database
    from sandbox import defaults
    from worker import send as send_job
    from worker.dispatcher import Dispatcher
    from worker.jobs import Handled, JobContext

    settings = Settings.from_env({
        "CXONE_CLIENT_ID": "x", "CXONE_CLIENT_SECRET": "x", "PUBLIC_BASE_URL": "http://x",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "x",
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "SENDER_NUMBERS": ",".join(f"+1800{n:07d}" for n in range(args.senders)),
        "SENDER_MPS": str(args.mps), "LOG_LEVEL": "WARNING"})
    # Stay under Postgres's default max_connections (100) whatever the worker count.
    services = Services(settings=settings,
                        db=Database(args.url, max_size=min(40, 80 // args.workers)))
    ctx = JobContext(services=services, worker_id=f"bench-{os.getpid()}")

    def paced_insert(ctx: JobContext, job):  # type: ignore[no-untyped-def]
        request = send_job.SendRequest(ctx, job)
        outcome = send_job._pace(ctx, job, request)
        if outcome is not None:
            return outcome
        # The "send", then what smsgw_record_sent does after a real one (the sender is
        # free again, the job is complete), in one statement as it is there. A real
        # answer comes after the arrival; here both are the same instant.
        with ctx.db.connection() as conn:
            conn.execute("""
                WITH arrival AS MATERIALIZED (SELECT clock_timestamp() AS at),
                     sent AS (INSERT INTO bench_sends (sender, job_id, at)
                              SELECT %(sender)s, %(job)s, at FROM arrival),
                     freed AS (UPDATE throttle_state
                               SET last_answered_at = (SELECT at FROM arrival),
                                   in_flight_until = NULL WHERE key = %(key)s)
                SELECT smsgw_complete_job(%(job)s, %(claims)s)""",
                         {"sender": request.sender, "job": job.id, "claims": job.claims,
                          "key": request.throttle_key})
        request.sender_released = True
        return Handled()

    import signal

    import gevent

    dispatcher = Dispatcher(ctx, {"send_sms": paced_insert}, concurrency=args.concurrency,
                            preparers={"send_sms": send_job.place_sends})
    gevent.signal_handler(signal.SIGTERM, ctx.stopping.set)
    dispatcher.run()
    dispatcher.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
