"""The console's overview with a big history: does it still answer in under 100 ms (p99)?

Loads the growth benchmark's history (tests/bench/bench_growth.py: 1,000,000
messages in sms_gateway_state and twilio_messages with their receipts, and a
100,000-job backlog) plus the audit trail such a history leaves (4 entries per
message: enqueued, claimed, created, status), then times the overview through
gunicorn (gevent workers, as the Procfile runs it) with a signed-in session:

- ``/console/``: the whole page;
- ``/console/overview/live``: the fragment the page fetches every 5 s;
- the figures alone (app.console.overview.gather, no HTTP, no template);

first with the backlog, then with the history only (the backlog deleted).

    .venv/bin/python tests/bench/bench_console.py [--history 1000000] [--backlog 100000]
        [--keep | --reuse NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_growth import load_history  # noqa: E402

from app.config import Settings  # noqa: E402
from app.console.overview import gather  # noqa: E402
from db import migrate  # noqa: E402
from db.pool import Database  # noqa: E402
from tests.harness import free_port, gateway_env, start_web  # noqa: E402

ADMIN_TOKEN = "bench-console-admin-token"
AUDIT_PER_MESSAGE = ("message.enqueued", "send.claimed", "send.created", "message.status")


def load_audit(url: str, history: int) -> None:
    """The audit trail of the history: 4 entries per message, one message a second."""
    with psycopg.connect(url, autocommit=True) as conn:
        for offset, event in enumerate(AUDIT_PER_MESSAGE):
            conn.execute("""
                INSERT INTO audit_log (at, event, cxone_message_id, twilio_message_sid,
                                       phone_number, to_state, source, details)
                SELECT now() - (g || ' seconds')::interval + (%(offset)s || ' ms')::interval,
                       %(event)s, 'hist_' || g, 'SM' || md5(g::text),
                       '+1415' || lpad((g %% 10000000)::text, 7, '0'), 'delivered', 'worker',
                       CASE WHEN %(event)s = 'send.created'
                            THEN jsonb_build_object('sender', '+1800555010' || (g %% 2))
                            ELSE '{}'::jsonb END
                FROM generate_series(1, %(n)s) g""",
                         {"n": history, "event": event, "offset": offset * 50})
        # Senders booked hours ahead (the backlog), and a few dead letters.
        conn.execute("""
            INSERT INTO throttle_state (key, tat) VALUES
                ('sender:+18005550100', now() + interval '3 hours'),
                ('sender:+18005550101', now() + interval '3 hours')""")
        conn.execute("""
            INSERT INTO outbox (kind, dedupe_key, state, last_error, attempts, payload)
            SELECT 'send_sms', 'dead_' || g, 'dead', 'HTTP 500', 5,
                   jsonb_build_object('message_id', 'dead_' || g, 'to', '+14155550100')
            FROM generate_series(1, 50) g""")
        conn.execute("VACUUM ANALYZE")


def signed_in_session(base: str) -> requests.Session:
    http = requests.Session()
    form = http.get(f"{base}/console/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf
    http.post(f"{base}/console/login", data={"csrf_token": csrf.group(1),
                                             "token": ADMIN_TOKEN}, timeout=10)
    assert http.get(f"{base}/console/", timeout=10, allow_redirects=False).status_code == 200
    return http


def percentiles(timings_ms: list[float]) -> dict[str, float]:
    ordered = sorted(timings_ms)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)], 2),
            "max_ms": round(ordered[-1], 2)}


def time_http(http: requests.Session, url: str, requests_n: int) -> dict[str, float]:
    for _ in range(20):
        http.get(url, timeout=10)
    timings = []
    for _ in range(requests_n):
        started = time.perf_counter()
        response = http.get(url, timeout=10)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return percentiles(timings)


def time_figures(url: str, settings: Settings, n: int) -> dict[str, float]:
    db = Database(url, max_size=1)
    timings = []
    with db.connection() as conn:
        for _ in range(n):
            started = time.perf_counter()
            gather(conn, settings)
            timings.append((time.perf_counter() - started) * 1000)
    db.close()
    return percentiles(timings)


def measure(url: str, port: int, settings: Settings, n: int) -> dict[str, Any]:
    """The page, its refresh fragment and the figures alone, with the load average."""
    with psycopg.connect(url) as conn:
        queued = conn.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()
    base = f"http://127.0.0.1:{port}"
    http = signed_in_session(base)
    return {"queued_jobs": queued[0] if queued else 0,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "page": time_http(http, f"{base}/console/", n),
            "live_fragment": time_http(http, f"{base}/console/overview/live", n),
            "figures_only": time_figures(url, settings, n)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    name = args.reuse or f"smsgw_bench_console_{uuid.uuid4().hex[:8]}"
    url = psycopg.conninfo.make_conninfo(args.database_url, dbname=name)
    results: dict[str, Any] = {"history_rows": args.history, "backlog_jobs": args.backlog}
    web = None
    try:
        if not args.reuse:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            migrate.migrate(url)
            started = time.monotonic()
            load_history(url, args.history, args.backlog)
            load_audit(url, args.history)
            results["load_s"] = round(time.monotonic() - started, 1)
        port = free_port()
        nowhere: Any = SimpleNamespace(url="http://127.0.0.1:9")  # the console calls neither
        env = gateway_env(url, nowhere, nowhere, public_base_url=f"http://127.0.0.1:{port}",
                          ADMIN_TOKEN=ADMIN_TOKEN, SENDER_MPS="0.8")
        web = start_web(env, port, workers=2)
        settings = Settings.from_env({**env, "DATABASE_URL": url})
        results["with_backlog"] = measure(url, port, settings, args.requests)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM outbox WHERE dedupe_key LIKE 'backlog_%'")
            conn.execute("VACUUM ANALYZE outbox")
        results["history_only"] = measure(url, port, settings, args.requests)
    finally:
        if web is not None:
            web.terminate()
        if args.keep:
            print(f"kept database {name} (--reuse {name} to time it again)", file=sys.stderr)
        else:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--reuse", metavar="NAME", help="time a database kept with --keep")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
