"""Growth: does a big history or a big backlog slow the gateway down?

Compares an empty database with one holding 1,000,000 messages of history
(sms_gateway_state and twilio_messages, with their receipts) and a 100,000-job
backlog (sends booked on their senders' slots hours ahead, as a throttled
campaign leaves them):

- claim latency: one claim statement for a batch of 50 runnable jobs (p50, p99);
- end-to-end rate: replies drained from CXone poll to CXone DELIVERED
  (tests/bench/bench_e2e.py's throughput phase).

    .venv-bench/bin/python tests/bench/bench_growth.py [--history 1000000] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_e2e  # noqa: E402

from db import outbox  # noqa: E402
from db.pool import Database  # noqa: E402

CLAIMS = 200
BATCH = 50


def load_history(url: str, history: int, backlog: int) -> None:
    """Bulk-load the history and the backlog (server-side, generate_series)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, dispatch,
                                         to_number, from_number, status, status_rank, created_at)
            SELECT 'SM' || md5(g::text), 'hist_' || g, 'conv_' || (g %% 50000), 1,
                   '+1415' || lpad((g %% 10000000)::text, 7, '0'), '+18005550100', 'delivered',
                   4, now() - (g || ' seconds')::interval
            FROM generate_series(1, %(n)s) g""", {"n": history})
        conn.execute("""
            INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id,
                twilio_message_sid, twilio_status, direction, to_number, from_number, outcome,
                final_at, created_at)
            SELECT 'conv_' || (g %% 50000), 'hist_' || g, 'SM' || md5(g::text), 'delivered',
                   'OUTBOUND', '+1415' || lpad((g %% 10000000)::text, 7, '0'), '+18005550100',
                   'delivered', now() - (g || ' seconds')::interval,
                   now() - (g || ' seconds')::interval
            FROM generate_series(1, %(n)s) g""", {"n": history})
        conn.execute("""
            INSERT INTO twilio_receipts (message_sid, message_status, received_at, applied_at)
            SELECT 'SM' || md5(g::text), 'delivered', now() - (g || ' seconds')::interval,
                   now() - (g || ' seconds')::interval
            FROM generate_series(1, %(n)s) g""", {"n": history})
        conn.execute("""
            INSERT INTO outbox (kind, dedupe_key, payload, ordering_key, run_at)
            SELECT 'send_sms', 'backlog_' || g,
                   jsonb_build_object('message_id', 'backlog_' || g, 'conversation_id',
                                      'bconv_' || g, 'to', '+1416' || lpad(g::text, 7, '0'),
                                      'from', '+18889990000', 'body', 'queued ' || g),
                   'conv:bconv_' || g, now() + interval '6 hours' + (g || ' ms')::interval
            FROM generate_series(1, %(n)s) g""", {"n": backlog})
        conn.execute("VACUUM ANALYZE")


def claim_latency(url: str) -> dict:
    """p50/p99 of one claim statement for a batch of 50 runnable no-op jobs."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO outbox (kind, dedupe_key, payload)
            SELECT 'bench_noop', 'noop_' || g, '{}'::jsonb
            FROM generate_series(1, %(n)s) g""", {"n": CLAIMS * BATCH})
        conn.execute("VACUUM ANALYZE outbox")
    db = Database(url, max_size=1)
    timings = []
    with db.connection() as conn:
        for _ in range(CLAIMS):
            started = time.perf_counter()
            jobs = outbox.claim(conn, worker="bench", limit=BATCH, lease_s=60)
            timings.append((time.perf_counter() - started) * 1000)
            outbox.complete_many(conn, jobs)
    db.close()
    timings.sort()
    return {"claims": len(timings), "p50_ms": round(statistics.median(timings), 3),
            "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3)}


def run_case(args: argparse.Namespace, *, history: int, backlog: int) -> dict:
    case: dict = {"history_rows": history, "backlog_jobs": backlog}

    def prepare(url: str) -> None:
        started = time.monotonic()
        if history or backlog:
            load_history(url, history, backlog)
        case["load_s"] = round(time.monotonic() - started, 1)
        case["claim"] = claim_latency(url)

    e2e_args = argparse.Namespace(messages=args.messages, rate=50.0, latency_seconds=0.0,
                                  poll_interval=2.0, workers=1, web_workers=2,
                                  concurrency=32, database_url=args.database_url, json=None)
    bench = bench_e2e.Bench(e2e_args, prepare=prepare)
    try:
        case["e2e"] = bench.run(latency=False)["throughput"]
    finally:
        bench.stop()
    return case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2000, help="replies drained end to end")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    empty = run_case(args, history=0, backlog=0)
    grown = run_case(args, history=args.history, backlog=args.backlog)
    results = {
        "empty": empty, "grown": grown,
        "claim_p50_ratio": round(grown["claim"]["p50_ms"] / empty["claim"]["p50_ms"], 2),
        "claim_p99_ratio": round(grown["claim"]["p99_ms"] / empty["claim"]["p99_ms"], 2),
        "e2e_rate_ratio": round(grown["e2e"]["sustained_msg_per_s"]
                                / empty["e2e"]["sustained_msg_per_s"], 2),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
