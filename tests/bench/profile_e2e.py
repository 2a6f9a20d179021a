"""Where our CPU goes per message: bench_e2e's backlog drain under py-spy.

Runs the end-to-end benchmark's phase 1 (a backlog drained from CXone poll to
CXone DELIVERED) while py-spy samples every gunicorn worker and every worker
process, then prints, for web and worker separately:

- CPU milliseconds per message (the process tree's user + system time);
- the share of active samples per library bucket (psycopg, requests/urllib3,
  twilio, flask/werkzeug, gevent, logging, json, our own code ...), by the frame
  that was running (self time);
- our own functions by inclusive share (any frame under app/, db/ or worker/).

``--statements`` runs it against a private Postgres with pg_stat_statements and
prints each statement's calls and server time per message instead of sampling:
round trips are what our CPU mostly goes to.

    .venv-bench/bin/python tests/bench/profile_e2e.py [--messages 3000] [--out /tmp/prof]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.bench.bench_e2e import Bench, _descendants  # noqa: E402
from tests.bench.bench_webhooks import start_profilers  # noqa: E402
from tests.pg_instance import PrivatePostgres  # noqa: E402

OWN = re.compile(r"\((?:app|db|worker)/[^:]+:\d+\)$")
BUCKETS = (  # first match wins; matched against the running frame's file
    ("psycopg", re.compile(r"psycopg")),
    ("requests/urllib3/http.client", re.compile(r"requests/|urllib3/|http/client|email/")),
    ("twilio", re.compile(r"twilio/")),
    ("flask/werkzeug/jinja", re.compile(r"flask/|werkzeug/|jinja2/|itsdangerous/")),
    ("gunicorn", re.compile(r"gunicorn/")),
    ("gevent", re.compile(r"gevent/|greenlet")),
    ("socket/ssl/selectors", re.compile(r"socket\.py|ssl\.py|selectors\.py")),
    ("logging", re.compile(r"logging/")),
    ("json", re.compile(r"json/")),
    ("prometheus", re.compile(r"prometheus_client/")),
    ("ours (app/, db/, worker/)", OWN),
)


class ProfiledBench(Bench):
    """bench_e2e's Bench with py-spy attached while the backlog drains."""

    def _throughput(self) -> dict:
        if self.args.statements:
            return self._counted()
        seconds = int(self.args.profile_seconds)
        web_pids = _descendants(self.web.popen.pid)
        worker_pids = [w.popen.pid for w in self.workers]
        out: Path = self.args.out
        self.spies = (start_profilers(web_pids, seconds, out / "web")
                      + start_profilers(worker_pids, seconds, out / "worker"))
        result = super()._throughput()
        for spy in self.spies:
            spy.wait(timeout=seconds + 60)
        return result


    def _counted(self) -> dict:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        result = super()._throughput()
        n = result["messages"]
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute("""
                SELECT s.calls, s.total_exec_time, s.rows, s.query
                FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                WHERE d.datname = current_database() ORDER BY s.calls DESC""").fetchall()
        per_message = [{"calls": round(calls / n, 3), "ms": round(ms / n, 3),
                        "query": " ".join(query.split())[:160]}
                       for calls, ms, _rows, query in rows if calls / n >= 0.01]
        result["statements_per_message"] = round(sum(r[0] for r in rows) / n, 2)
        result["server_ms_per_message"] = round(sum(r[1] for r in rows) / n, 3)
        result["statements"] = per_message
        return result


def summarise(out_dir: Path, top: int) -> dict:
    """Shares of active samples by bucket (self) and by our own function (inclusive)."""
    bucket: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for path in out_dir.glob("worker-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames, n = stack.split(";"), int(count)
            total += n
            leaf[frames[-1]] += n
            bucket[next((name for name, rx in BUCKETS if rx.search(frames[-1])), "other")] += n
            for frame in {f for f in frames if OWN.search(f)}:
                inclusive[re.sub(r":\d+\)$", ")", frame)] += n

    def share(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(n / total, 3)) for name, n in counter.most_common(k)] if total else []
    return {"samples": total, "by_bucket_self": share(bucket, 20),
            "ours_inclusive": share(inclusive, top), "leaf_self": share(leaf, top)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--profile-seconds", type=float, default=40)
    parser.add_argument("--out", type=Path, default=Path("/tmp/smsgw-profile"))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--statements", action="store_true",
                        help="count statements (private Postgres with pg_stat_statements)")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    args.rate, args.latency_seconds, args.json = 0.0, 0.0, None
    private = None
    if args.statements:
        private = PrivatePostgres()
        with psycopg.connect(private.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        private.restart()
        args.database_url = private.url()
    bench = ProfiledBench(args)
    try:
        results = bench.run(latency=False)
    finally:
        bench.stop()
        if private is not None:
            private.stop()
    if not args.statements:
        results["profile"] = {side: summarise(args.out / side, args.top)
                              for side in ("web", "worker")}
    print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
