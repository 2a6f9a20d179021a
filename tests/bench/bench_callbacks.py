"""DFO mode: how fast the integration box answers CXone's outbound callbacks.

gunicorn (the Procfile's web process, 2 gevent workers) in CXONE_MODE=dfo on a
fresh database; an open-loop client offers callbacks at ``--rate`` per second for
``--seconds`` (each a distinct agent reply, so every one commits its send job
before the 200), and prints the answer-time percentiles. No worker runs: this
measures the accept path alone.

    .venv/bin/python tests/bench/bench_callbacks.py [--rate 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import psycopg
    import requests
    from psycopg.conninfo import make_conninfo

    from db import migrate
    from sandbox import defaults
    from tests.harness import free_port, start_web

    name = f"smsgw_bench_cb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    migrate.migrate(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    channel, number = next(iter(defaults.DFO_CHANNELS.items()))
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/tmp", "DATABASE_URL": url, "LOG_LEVEL": "WARNING",
        "CXONE_MODE": "dfo", "CXONE_CLIENT_ID": "x", "CXONE_CLIENT_SECRET": "y",
        "CXONE_ACCESS_KEY_ID": "k", "CXONE_ACCESS_KEY_SECRET": "s",
        "CXONE_DFO_BASE_URL": "http://127.0.0.1:9",
        "BYOC_CLIENT_ID": defaults.BYOC_CLIENT_ID,
        "BYOC_CLIENT_SECRET": defaults.BYOC_CLIENT_SECRET,
        "DFO_CHANNELS": f"{channel}={number}",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": base, "CONSENT_MODE": "opt-out",
    }
    web = start_web(env, port)
    try:
        token = requests.post(f"{base}/byoc/1.0/token", data={
            "grant_type": "client_credentials", "client_id": defaults.BYOC_CLIENT_ID,
            "client_secret": defaults.BYOC_CLIENT_SECRET}, timeout=10).json()["access_token"]
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()
        session_local = threading.local()

        def one(n: int) -> None:
            session = getattr(session_local, "s", None) or requests.Session()
            session_local.s = session
            customer = f"+1415{n:07d}"
            body = {"thread": {"idOnExternalPlatform": f"{number[1:]}_{customer[1:]}"},
                    "messageContent": {"type": "TEXT", "payload": {"text": f"reply {n}"}},
                    "endUserRecipients": [{"idOnExternalPlatform": customer, "isPrimary": True}]}
            started = time.perf_counter()
            answer = session.post(f"{base}/byoc/2.0/channel/{channel}/outbound", json=body,
                                  headers={"Authorization": f"Bearer {token}"}, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if answer.status_code != 200:
                    errors.append(answer.status_code)

        for n in range(20):  # warm up both web processes and the pool
            one(10_000_000 + n)
        latencies.clear()
        total = int(args.rate * args.seconds)
        threads = []
        start = time.perf_counter()
        for n in range(total):
            due = start + n / args.rate
            time.sleep(max(0.0, due - time.perf_counter()))
            thread = threading.Thread(target=one, args=(n,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

        print(f"callbacks: {len(latencies)} at {args.rate}/s for {args.seconds:.0f} s, "
              f"errors: {len(errors)}")
        print(f"answer time ms: p50 {pct(0.50):.1f}  p90 {pct(0.90):.1f}  p99 {pct(0.99):.1f}"
              f"  max {latencies[-1] * 1000:.1f}  mean {statistics.mean(latencies) * 1000:.1f}")
        with psycopg.connect(url) as conn:
            jobs = conn.execute("SELECT count(*) FROM outbox WHERE kind = 'send_sms'").fetchone()
        print(f"send jobs committed: {jobs[0]} (want {len(latencies) + 20})")
    finally:
        web.terminate()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
