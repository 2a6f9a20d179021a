"""Pacing: does every sender use its whole rate, and never break the window rule?

The rule (app/pacing.py): for a sender of rate r, no window of W seconds may hold
more than ⌊1 + r·W⌋ creates *as they arrive at Twilio*, for W = 1, 10 and 60 s.
Prints, per W, the worst window of any sender against its limit, the violations,
and the aggregate rate while the backlog lasts as a share of the limit.

Two ways to run it:

- ``--mode standin`` (default; 1,000 senders at 0.8/s, 20 each): worker processes
  run the real dispatcher and the real send job's turn (worker.send); the create
  is one INSERT stamped with ``clock_timestamp()`` (the arrival), then a sleep of
  Twilio's latency (p50 150 ms, jittered) before the job is recorded, as after a
  real answer. At 800 creates/s an HTTP create would measure the Python simulator
  on these two cores, not the pacing.
- ``--mode http``: real ``python -m worker`` processes and the Twilio simulator
  with its create latency (``TWILIO_SIM_CREATE_LATENCY_MS``); arrivals are the
  simulator's own log. Use fewer senders (e.g. 100 at 0.8/s, or one at 30/s).

    .venv/bin/python tests/bench/bench_pacing.py [--mode standin|http] [--senders 1000]
        [--per-sender 20] [--mps 0.8] [--workers 2] [--latency-ms 150]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
    parser.add_argument("--mode", choices=["standin", "http"], default="standin")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--per-sender", type=int, default=20, help="backlog per sender")
    parser.add_argument("--mps", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=400, help="greenlets per worker")
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--jitter-ms", type=float, default=40.0)
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.role == "worker":
        return run_standin_worker(args)
    results = run(args)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def senders_of(args: argparse.Namespace) -> list[str]:
    return [f"+1800{n:07d}" for n in range(args.senders)]


def settings_of(args: argparse.Namespace, **extra: str):  # type: ignore[no-untyped-def]
    from app.config import Settings
    from sandbox import defaults

    return Settings.from_env({
        "CXONE_CLIENT_ID": "x", "CXONE_CLIENT_SECRET": "x", "PUBLIC_BASE_URL": "http://x",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "SENDER_NUMBERS": ",".join(senders_of(args)), "SENDER_MPS": str(args.mps),
        "CONSENT_MODE": "opt-out", "LOG_LEVEL": "WARNING", **extra})


def run(args: argparse.Namespace) -> dict:
    import psycopg
    from psycopg.conninfo import make_conninfo

    sys.path.insert(0, str(ROOT))
    from db import migrate

    name = f"smsgw_bench_pace_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    try:
        migrate.migrate(url)
        booked_in = _enqueue_backlog(url, args)
        total = args.senders * args.per_sender
        arrivals = (_run_standin if args.mode == "standin" else _run_http)(url, args, total)
        return {"mode": args.mode, "senders": args.senders, "mps": args.mps,
                "per_sender_backlog": args.per_sender, "workers": args.workers,
                "latency_ms": args.latency_ms, "booking_s": round(booked_in, 2),
                **analyse(arrivals, args.mps, total)}
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _enqueue_backlog(url: str, args: argparse.Namespace) -> float:
    """The backlog, enqueued and booked as the poller does it: pages of 100 replies."""
    from app.cxone import OutboundReply
    from app.outbound import enqueue_replies
    from db.pool import Database

    settings = settings_of(args)
    db = Database(url, max_size=2)
    senders = senders_of(args)
    replies = [OutboundReply(message_id=f"pace-{n}-{r}", conversation_id=f"c-{n}-{r}",
                             to=f"+1415{n:07d}", from_=sender, body=f"paced {r}")
               for r in range(args.per_sender) for n, sender in enumerate(senders)]
    started = time.monotonic()
    for start in range(0, len(replies), 100):
        with db.transaction() as conn:
            enqueue_replies(conn, settings, replies[start:start + 100], source="poll")
    db.close()
    return time.monotonic() - started


def _run_standin(url: str, args: argparse.Namespace, total: int) -> dict[str, list[float]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RECEIVER)
    procs = [subprocess.Popen([sys.executable, __file__, "--role", "worker", "--url", url,
                               "--senders", str(args.senders), "--mps", str(args.mps),
                               "--concurrency", str(args.concurrency),
                               "--workers", str(args.workers),
                               "--latency-ms", str(args.latency_ms),
                               "--jitter-ms", str(args.jitter_ms)], cwd=ROOT)
             for _ in range(args.workers)]
    _wait(lambda: _count(url) >= total, total, args)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT sender, extract(epoch FROM at)::float8 FROM bench_sends"
                            ).fetchall()
    arrivals: dict[str, list[float]] = {}
    for sender, at in rows:
        arrivals.setdefault(sender, []).append(at)
    return arrivals


def _run_http(url: str, args: argparse.Namespace, total: int) -> dict[str, list[float]]:
    import requests

    from tests.harness import free_port, start_process, start_worker, wait_for

    port = free_port()
    sim_env = {**os.environ, "TWILIO_SIM_CREATE_LATENCY_MS": str(args.latency_ms),
               "TWILIO_SIM_LATENCY_JITTER_MS": str(args.jitter_ms),
               "TWILIO_SIM_STEP_DELAY_MS": "600000",  # no callbacks during the run
               "SENDER_NUMBERS": ",".join(senders_of(args))}  # the service's pool
    sim = start_process("twilio", [sys.executable, "-m", "sandbox", "twilio", "--port",
                                   str(port)], sim_env)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(base), timeout=30, message="twilio simulator")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "DATABASE_URL": url,
           "CXONE_CLIENT_ID": "x", "CXONE_CLIENT_SECRET": "x",
           "CXONE_API_BASE_URL": "http://127.0.0.1:9", "PUBLIC_BASE_URL": "http://127.0.0.1:9",
           "TWILIO_API_BASE_URL": base, "TWILIO_ACCOUNT_SID": settings_of(args).twilio_account_sid,
           "TWILIO_AUTH_TOKEN": settings_of(args).twilio_auth_token,
           "TWILIO_MESSAGING_SERVICE_SID": settings_of(args).twilio_messaging_service_sid,
           "SENDER_NUMBERS": ",".join(senders_of(args)), "SENDER_MPS": str(args.mps),
           "CONSENT_MODE": "opt-out", "LOG_LEVEL": "WARNING",
           "WORKER_CONCURRENCY": str(args.concurrency), "PYTHONUNBUFFERED": "1"}
    workers = [start_worker(env, "--no-poll", name=f"w{n}") for n in range(args.workers)]

    def creates() -> list[dict]:
        return requests.get(base + "/_sandbox/creates", timeout=30).json()["creates"]

    _wait(lambda: sum(1 for c in creates() if c.get("sid")) >= total, total, args)
    for proc in workers:
        proc.terminate(timeout=30)
    arrivals: dict[str, list[float]] = {}
    for create in creates():
        if create.get("sid"):
            arrivals.setdefault(create["from"], []).append(float(create["at"]))
    sim.terminate(timeout=30)
    return arrivals


def _up(base: str) -> bool:
    import requests

    try:
        return requests.get(base + "/_sandbox/creates", timeout=1).ok
    except requests.RequestException:
        return False


def _wait(done, total: int, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    expected_s = args.per_sender / args.mps
    deadline = time.monotonic() + expected_s * 2 + 60
    while not done() and time.monotonic() < deadline:
        time.sleep(1.0)


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM bench_sends").fetchone()[0])  # type: ignore[index]


def analyse(arrivals: dict[str, list[float]], mps: float, total: int) -> dict:
    """The window rule per W (worst window of any sender vs its limit) and the rate."""
    sys.path.insert(0, str(ROOT))
    from tests.harness import PACING_WINDOWS_S, worst_windows

    worst = {w: 0 for w in PACING_WINDOWS_S}
    violations = {w: 0 for w in PACING_WINDOWS_S}
    limits: dict[float, int] = {}
    rates = []
    for times in arrivals.values():
        times.sort()
        for w, (most, limit) in worst_windows(times, mps).items():
            worst[w] = max(worst[w], most)
            limits[w] = limit
            violations[w] += int(most > limit)
        if len(times) > 1:
            rates.append((len(times) - 1) / (times[-1] - times[0]))
    sent = sum(len(t) for t in arrivals.values())
    all_times = sorted(t for ts in arrivals.values() for t in ts)
    aggregate = sum(rates)
    return {
        "sent": sent, "expected": total,
        "seconds": round(all_times[-1] - all_times[0], 2) if all_times else 0,
        "aggregate_per_s": round(aggregate, 1), "limit_per_s": round(len(arrivals) * mps, 1),
        "share_of_limit": round(aggregate / (len(arrivals) * mps), 4) if arrivals else 0,
        "worst_window": {f"{w:g}s": f"{worst[w]} (limit {limits.get(w)})"
                         for w in PACING_WINDOWS_S},
        "senders_with_a_violation": {f"{w:g}s": violations[w] for w in PACING_WINDOWS_S},
    }


def run_standin_worker(args: argparse.Namespace) -> int:
    """A worker process: the real dispatcher and send job's turn; the create a stand-in."""
    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, str(ROOT))
    import signal

    import gevent

    from app.services import Services
    from db.pool import Database
    from worker import send as send_job
    from worker.dispatcher import Dispatcher
    from worker.jobs import Handled, JobContext

    settings = settings_of(args)
    services = Services(settings=settings,
                        db=Database(args.url, max_size=min(40, 80 // args.workers)))
    ctx = JobContext(services=services, worker_id=f"bench-{os.getpid()}")
    rng = random.Random(os.getpid())

    def standin_send(ctx: JobContext, job):  # type: ignore[no-untyped-def]
        send = send_job.Send(ctx, job)
        [part] = send.parts
        turn = send_job._wait_for_turn(send, part)
        if not hasattr(turn, "isoformat"):
            return turn  # back to the queue until its turn
        # The create arrives at Twilio now; its answer comes after Twilio's latency,
        # and only then is it recorded (the job completes).
        with ctx.db.connection() as conn:
            conn.execute("INSERT INTO bench_sends (sender, job_id, at) "
                         "VALUES (%s, %s, clock_timestamp())", (send.pace.sender, job.id))
        latency = max(0.0, rng.gauss(args.latency_ms, args.jitter_ms)) / 1000
        gevent.sleep(latency)
        with ctx.db.connection() as conn:
            conn.execute("SELECT smsgw_complete_job(%s, %s)", (job.id, job.claims))
        return Handled()

    dispatcher = Dispatcher(ctx, {"send_sms": standin_send}, concurrency=args.concurrency)
    gevent.signal_handler(signal.SIGTERM, ctx.stopping.set)
    dispatcher.run()
    dispatcher.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
