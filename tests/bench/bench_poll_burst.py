"""Poll-burst benchmark: 10,000 replies appearing at once in CXone, all booked on their slots.

Open Messaging mode: the worker polls the CXone simulator. The CXone and Twilio
simulators run as their own processes, ``python -m worker`` (``--workers`` of
them) against a fresh database with SENDER_NUMBERS of ``--senders`` numbers at
SENDER_MPS ``--mps``, CONSENT_MODE=opt-out, POLL_PAGE_SIZE ``--page-size`` and
POLL_INTERVAL_S ``--poll-interval`` (the production defaults unless given).

The replies (``--replies``, spread evenly over the senders, one customer each)
are loaded through the simulator's control API in chunks, every one with the
same moment of visibility (``visibleAfterMs``), so they all appear in the feed
at once, at T. From T the database is sampled every 100 ms until every reply
has its send job in the outbox with its pacing slot booked (``outbox.slot`` set,
as db/queries/pacing.sql ``book`` sets it when a poll page is enqueued).

    .venv-bench/bin/python tests/bench/bench_poll_burst.py [--replies 10000] [--senders 100]
        [--mps 0.8] [--page-size 50] [--poll-interval 2] [--workers 1] [--profile DIR]
        [--json PATH]

Reports the time from T to all booked (target: under 10 s; it includes waiting
for the first poll after T, at most one poll interval), bookings per second,
pages polled, the CPU of the worker(s), the simulators and the database's
backends, and checks the window rule on the bookings: each sender's slots at
least 1/SENDER_MPS apart, and no window of W seconds (1, 10, 60) holding more
than ⌊1 + r·W⌋ of them (senders' pacing allows no burst). ``--profile DIR``
samples the worker(s) with py-spy from T and prints the hottest frames.
Exit 1 when the target is missed, a reply is not booked or a booking breaks
the rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from tests.bench.bench_e2e import _RemoteSim, _tree_cpu  # noqa: E402
from tests.bench.bench_webhooks import hot_spots, start_profilers  # noqa: E402
from tests.harness import (  # noqa: E402
    Process,
    free_port,
    gateway_env,
    start_process,
    start_worker,
    wait_for,
    worst_windows,
)

TARGET_S = 10.0
SAMPLE_S = 0.1
CHUNK = 1000  # replies per control-API request
# What this database's other backends are doing at each sample (where Postgres time goes).
ACTIVE_BACKENDS = """
    SELECT a.wait_event_type, a.wait_event, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 50)
           || COALESCE(' <- blocked by: ' || (
               SELECT b.state || ' ' || left(regexp_replace(b.query, '\\s+', ' ', 'g'), 50)
               FROM pg_stat_activity b WHERE b.pid = (pg_blocking_pids(a.pid))[1] LIMIT 1), '')
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.state = 'active'"""
# Slots are computed in floating seconds and stored with microseconds.
SPACING_EPSILON_S = 2e-6


def main() -> int:
    args = parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    for problem in results["problems"]:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if results["problems"] else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--mps", type=float, default=0.8, help="SENDER_MPS")
    parser.add_argument("--page-size", type=int, default=50, help="POLL_PAGE_SIZE")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="POLL_INTERVAL_S")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after (s)")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--profile", type=Path,
                        help="py-spy the worker(s) from T for --profile-seconds")
    parser.add_argument("--profile-seconds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


def sender_numbers(count: int) -> list[str]:
    return [f"+1800555{n:04d}" for n in range(count)]


class Bench:
    """The simulators, the worker(s) and a fresh database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dbname = f"smsgw_bench_burst_{uuid.uuid4().hex[:8]}"
        self.url = make_conninfo(args.database_url, dbname=self.dbname)
        self.senders = sender_numbers(args.senders)
        self.processes: list[Process] = []
        self.problems: list[str] = []

    def run(self) -> dict:
        args = self.args
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        migrate.migrate(self.url)
        cx, tw = self.start_simulator("cxone"), self.start_simulator("twilio")
        env = gateway_env(self.url, cx, tw, public_base_url=f"http://127.0.0.1:{free_port()}",
                          SENDER_NUMBERS=",".join(self.senders), SENDER_MPS=str(args.mps),
                          POLL_PAGE_SIZE=str(args.page_size),
                          POLL_INTERVAL_S=str(args.poll_interval), CONSENT_MODE="opt-out")
        self.workers = [start_worker(env, name=f"worker{n}") for n in range(args.workers)]
        self.processes.extend(self.workers)
        wait_for(lambda: cx.get("/_sandbox/stats")["poll"] >= 1, timeout=60,
                 message="the worker's first poll")
        visible_at, load_s = self.load(cx)
        results: dict[str, Any] = {
            "settings": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(), "load_seconds": round(load_s, 2)}
        time.sleep(max(0.0, visible_at - time.time()))
        results.update(self.measure(cx, visible_at))
        results["bookings"] = self.check_bookings()
        results["problems"] = self.problems
        return results

    def start_simulator(self, name: str) -> _RemoteSim:
        port = free_port()
        env = {**os.environ, "TWILIO_SIM_STEP_DELAY_MS": "0",
               "SENDER_NUMBERS": ",".join(self.senders)}
        self.processes.append(start_process(
            f"sim-{name}", [sys.executable, "-m", "sandbox", name, "--port", str(port)], env))
        sim = _RemoteSim(f"http://127.0.0.1:{port}")
        wait_for(sim.up, timeout=30, message=f"{name} simulator")
        return sim

    def load(self, cx: _RemoteSim) -> tuple[float, float]:
        """Every reply, visible from one moment T (epoch seconds); T and the load time.

        T leaves time for the load (the simulator slows as it fills, the machine may
        be busy). A load that would overrun T would spread the burst: the simulator
        is reset (nothing was visible yet) and the load starts again with more time.
        """
        n = self.args.replies
        items = [{"to": f"+1415{i:07d}", "from": self.senders[i % len(self.senders)],
                  "body": f"burst reply {i}"} for i in range(n)]
        margin = 2.0 + n * 1e-3
        for _ in range(4):
            started = time.time()
            visible_at, slowest = started + margin, 0.0
            for first in range(0, n, CHUNK):
                posted = time.time()
                delay_ms = int((visible_at - posted) * 1000)
                if delay_ms < 1000 * (0.1 + 2 * slowest):  # this chunk might cross T
                    break
                cx.post("/_sandbox/replies", {"items": [{**item, "visibleAfterMs": delay_ms}
                                                        for item in items[first:first + CHUNK]]})
                slowest = max(slowest, time.time() - posted)
            else:
                return visible_at, time.time() - started
            print(f"loading took more than {margin:.0f}s; loading again", flush=True)
            cx.post("/_sandbox/reset")
            margin *= 2
        raise SystemExit("bench: could not load the replies in time")

    def measure(self, cx: _RemoteSim, visible_at: float) -> dict:
        """Sample the outbox every 100 ms from T until every reply is booked."""
        n = self.args.replies
        polls_before, cpu_before = cx.get("/_sandbox/stats")["poll"], self.cpu()
        profilers = []
        if self.args.profile:
            profilers = start_profilers([w.popen.pid for w in self.workers],
                                        self.args.profile_seconds, self.args.profile)
        samples: list[tuple[float, int, int]] = []
        waits: Counter[str] = Counter()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT count(*), count(slot) FROM outbox "
                                   "WHERE kind = 'send_sms'").fetchone()
                assert row is not None
                for kind, name, query in conn.execute(ACTIVE_BACKENDS):
                    waits[f"{kind or 'CPU'}:{name or '-'} {query}"] += 1
                samples.append((time.time() - visible_at, int(row[0]), int(row[1])))
                if row[1] >= n or samples[-1][0] > self.args.timeout:
                    break
                time.sleep(SAMPLE_S)
            first, last = conn.execute(
                "SELECT EXTRACT(EPOCH FROM min(created_at))::float, "
                "EXTRACT(EPOCH FROM max(created_at))::float FROM outbox "
                "WHERE kind = 'send_sms'").fetchone() or (None, None)
        elapsed = samples[-1][0]
        cpu = {k: round(v - cpu_before[k], 2) for k, v in self.cpu().items()}
        polls = cx.get("/_sandbox/stats")["poll"] - polls_before
        served = [served_at(item["at"]) - visible_at
                  for item in cx.get("/_sandbox/requests", params={"endpoint": "poll"})["items"]]
        served = sorted(t for t in served if 0 <= t <= elapsed)
        gaps = sorted(b - a for a, b in pairwise(served))
        puts = sum(1 for item in cx.get("/_sandbox/requests", params={"endpoint": "put"})["items"]
                   if 0 <= served_at(item["at"]) - visible_at <= elapsed)
        for profiler in profilers:
            profiler.wait(timeout=self.args.profile_seconds + 30)
        booked = samples[-1][2]
        if booked < n:
            self.problems.append(f"only {booked} of {n} replies booked after {elapsed:.1f}s")
        elif elapsed >= TARGET_S:
            self.problems.append(f"all booked after {elapsed:.1f}s (target < {TARGET_S:g}s)")
        t10 = next((t for t, _, b in samples if b >= n * 0.1), None)
        t90 = next((t for t, _, b in samples if b >= n * 0.9), None)
        out = {"seconds_to_all_booked": round(elapsed, 2), "booked": booked,
               "booked_per_s": round(booked / elapsed, 1) if elapsed else None,
               "booked_per_s_10_90": round(n * 0.8 / (t90 - t10), 1)
               if t10 is not None and t90 is not None and t90 > t10 else None,
               "first_enqueued_after_s": round(first - visible_at, 2) if first else None,
               "seconds_from_first_page": round(visible_at + elapsed - first, 2)
               if first else None,
               "last_page_started_after_s": round(last - visible_at, 2) if last else None,
               "pages_polled": polls, "items_per_page": round(n / polls, 1) if polls else None,
               "seconds_between_polls": {"p50": round(gaps[len(gaps) // 2], 3),
                                         "p90": round(gaps[int(len(gaps) * 0.9)], 3),
                                         "max": round(gaps[-1], 3)} if gaps else None,
               "cxone_status_puts_meanwhile": puts,
               "cpu_s": cpu,
               "worker_cores": round(cpu["worker"] / elapsed, 2) if elapsed else None,
               "backends_active": dict(waits.most_common(12)),
               "timeline": [(round(t, 1), e, b) for t, e, b in samples[::5]]}
        if profilers:
            out["hot_spots"] = hot_spots(self.args.profile)
        return out

    def cpu(self) -> dict[str, float]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            backends = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")]
        sims = [p for p in self.processes if p.name.startswith("sim-")]
        return {"worker": sum(_tree_cpu(w.popen.pid) for w in self.workers),
                "simulators": sum(_tree_cpu(p.popen.pid) for p in sims),
                "postgres": sum(_tree_cpu(pid) for pid in backends)}

    def check_bookings(self) -> dict:
        """The window rule on every sender's booked slots."""
        rate = self.args.mps
        with psycopg.connect(self.url) as conn:
            rows = conn.execute("SELECT payload->>'from', EXTRACT(EPOCH FROM slot)::float "
                                "FROM outbox WHERE kind = 'send_sms' AND slot IS NOT NULL "
                                "ORDER BY 1, 2").fetchall()
        slots: dict[str, list[float]] = defaultdict(list)
        for sender, slot in rows:
            slots[sender].append(slot)
        min_gap, violations = float("inf"), 0
        worst: dict[float, tuple[int, int]] = {}
        for times in slots.values():
            gaps = [b - a for a, b in pairwise(times)]
            min_gap = min([min_gap, *gaps])
            violations += sum(1 for g in gaps if g < 1 / rate - SPACING_EPSILON_S)
            for window, (most, limit) in worst_windows(times, rate).items():
                if most > limit:
                    violations += 1
                if most > worst.get(window, (0, limit))[0]:
                    worst[window] = (most, limit)
        per_sender = sorted(len(t) for t in slots.values())
        if len(rows) != self.args.replies:
            self.problems.append(f"{len(rows)} send jobs booked for {self.args.replies} "
                                 "replies offered")
        if violations:
            self.problems.append(f"{violations} bookings break the window rule")
        if set(slots) - set(self.senders):
            self.problems.append(f"bookings for senders not in the pool: "
                                 f"{sorted(set(slots) - set(self.senders))[:5]}")
        return {"senders": len(slots), "per_sender_min_max": [per_sender[0], per_sender[-1]]
                if per_sender else [], "min_gap_s": round(min_gap, 6),
                "spacing_s": round(1 / rate, 6), "violations": violations,
                "worst_windows": {f"{w:g}s": list(v) for w, v in worst.items()}}

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.alive():
                proc.terminate(timeout=30)
        if not self.problems:
            for proc in self.processes:
                proc.log_path.unlink(missing_ok=True)
        else:
            print("logs kept: " + ", ".join(str(p.log_path) for p in self.processes),
                  file=sys.stderr)
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


def served_at(stamp: str) -> float:
    """Epoch seconds of a simulator request-log stamp (ISO 8601 UTC)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def print_report(results: dict) -> None:
    s = results["settings"]
    print(f"\npoll burst: {s['replies']} replies over {s['senders']} senders at "
          f"{s['mps']}/s, page {s['page_size']}, poll interval {s['poll_interval']}s, "
          f"{s['workers']} worker(s); {results['cpus']} CPUs (shared; load average before "
          f"{results['load_average_before'][0]:.2f}); loaded in {results['load_seconds']}s")
    print(f"all booked {results['seconds_to_all_booked']}s after they appeared "
          f"(target < {TARGET_S:g}s): {results['booked_per_s']}/s overall, "
          f"{results['booked_per_s_10_90']}/s from 10% to 90%")
    print(f"first enqueued after {results['first_enqueued_after_s']}s (waiting for the "
          f"poll), all booked {results['seconds_from_first_page']}s after that; last page's "
          f"transaction started after {results['last_page_started_after_s']}s; "
          f"{results['pages_polled']} pages polled ({results['items_per_page']} items/page), "
          f"seconds between polls {results['seconds_between_polls']}; "
          f"{results['cxone_status_puts_meanwhile']} status PUTs to CXone meanwhile")
    print(f"CPU seconds: {results['cpu_s']}; worker {results['worker_cores']} cores")
    print(f"bookings: {results['bookings']}")
    print("active backends over the samples (wait event, query):")
    for what, count in results["backends_active"].items():
        print(f"  {count:5d}  {what}")
    print(f"timeline (s, enqueued, booked): {results['timeline']}")
    for kind, rows in results.get("hot_spots", {}).items():
        print(f"\nhot spots, {kind} (share of samples, py-spy on the worker):")
        for frame, share in rows:
            print(f"  {share * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    sys.exit(main())
