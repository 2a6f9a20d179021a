"""End-to-end benchmark: CXone poll → Twilio create → receipts → CXone DELIVERED.

Runs the sandbox with zero-delay simulators (each its own gevent process), the
web process (gunicorn, gevent workers) and worker processes against a fresh
database, then measures:

1. sustained throughput: a backlog of replies drained to DELIVERED (msg/s);
2. latency from a reply appearing in CXone to its Twilio create, at a fixed
   offered load (p50, p99), with POLL_INTERVAL_S as configured;
3. CPU milliseconds per message spent in our own web and worker processes.

    .venv-bench/bin/python tests/bench/bench_e2e.py [--messages 3000] [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from tests.harness import (  # noqa: E402
    Process,
    Simulator,
    free_port,
    gateway_env,
    start_process,
    start_web,
    start_worker,
    wait_for,
)

SENDERS = [f"+1800555{n:04d}" for n in range(20)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000, help="backlog drained (phase 1)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered load, msg/s (phase 2)")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="WORKER_CONCURRENCY")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


class Bench:
    """One sandbox, one gateway, one fresh database."""

    def __init__(self, args: argparse.Namespace, *, prepare: Any = None) -> None:
        """``prepare(url)`` runs on the migrated database before anything starts."""
        self.args = args
        self.prepare = prepare
        self.dbname = f"smsgw_bench_{uuid.uuid4().hex[:8]}"
        self.processes: list[Process] = []
        self.sims: list[Process] = []

    def run(self, *, latency: bool = True) -> dict:
        url = self.url = self._create_database()
        if self.prepare is not None:
            self.prepare(url)
        cx, tw = self._start_simulators()
        port = free_port()
        env = gateway_env(url, cx, tw, public_base_url=f"http://127.0.0.1:{port}",
                          SENDER_NUMBERS=",".join(SENDERS), SENDER_MPS="1000",
                          POLL_INTERVAL_S=str(self.args.poll_interval), POLL_PAGE_SIZE="100",
                          WORKER_CONCURRENCY=str(self.args.concurrency), LOG_LEVEL="WARNING",
                          CONSENT_MODE="opt-out")
        self.web = start_web(env, port, workers=self.args.web_workers)
        self.processes.append(self.web)
        self.workers = [start_worker(env, name=f"worker{n}") for n in range(self.args.workers)]
        self.processes.extend(self.workers)
        self.cx, self.tw = cx, tw
        time.sleep(2)  # let every process settle (imports, first connections)
        results = {"config": vars(self.args) | {"json": None}}
        results["throughput"] = self._throughput()
        if latency:
            results["latency"] = self._latency()
        return results

    # -- setup -----------------------------------------------------------------------------

    def _create_database(self) -> str:
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        url = psycopg.conninfo.make_conninfo(self.args.database_url, dbname=self.dbname)
        migrate.migrate(url)
        return url

    def _start_simulators(self) -> tuple[Simulator, Simulator]:
        sims = []
        for name in ("cxone", "twilio"):
            port = free_port()
            env = {**os.environ, "TWILIO_SIM_STEP_DELAY_MS": "0",
                   "SENDER_NUMBERS": ",".join(SENDERS)}
            proc = start_process(name, [sys.executable, "-m", "sandbox", name, "--port",
                                        str(port)], env)
            self.processes.append(proc)
            self.sims.append(proc)
            sim = _RemoteSim(f"http://127.0.0.1:{port}")
            wait_for(lambda s=sim: s.up(), timeout=20, message=f"{name} simulator")
            sims.append(sim)
        return sims[0], sims[1]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.alive():
                proc.terminate(timeout=30)
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    # -- phase 1 ---------------------------------------------------------------------------

    def _throughput(self) -> dict:
        n = self.args.messages
        items = [{"to": f"+1415{n_:07d}", "from": SENDERS[n_ % len(SENDERS)],
                  "body": f"backlog {n_}"} for n_ in range(n)]
        for start in range(0, n, 500):
            self.cx.post("/_sandbox/replies", {"items": items[start:start + 500]})
        cpu_before = self._cpu()
        started = time.monotonic()
        samples = []
        while True:
            delivered = self._delivered()
            samples.append((time.monotonic() - started, delivered))
            if delivered >= n:
                break
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {delivered}/{n} delivered after 600 s")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        cpu = self._cpu_delta(cpu_before)
        # Sustained: the rate between 10% and 90% delivered (no start-up or tail).
        t10 = next(t for t, d in samples if d >= n * 0.1)
        t90 = next(t for t, d in samples if d >= n * 0.9)
        return {
            "messages": n, "seconds": round(elapsed, 2),
            "overall_msg_per_s": round(n / elapsed, 1),
            "sustained_msg_per_s": round(n * 0.8 / max(t90 - t10, 1e-9), 1),
            "cpu_ms_per_message": {k: round(v * 1000 / n, 3) for k, v in cpu.items()},
        }

    def _delivered(self) -> int:
        """Messages CXone accepted DELIVERED for (our record of CXone's answers)."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT count(*) FROM cxone_message_status "
                               "WHERE status = 'DELIVERED'").fetchone()
        return int(row[0]) if row else 0

    # -- phase 2 ---------------------------------------------------------------------------

    def _latency(self) -> dict:
        rate, seconds = self.args.rate, self.args.latency_seconds
        count = int(rate * seconds)
        posted: dict[str, float] = {}
        before = len(self.tw.get("/_sandbox/creates")["creates"])

        def feed() -> None:
            start = time.time()
            for i in range(count):
                due = start + i / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                body = f"latency {i} {uuid.uuid4().hex[:6]}"
                posted[body] = time.time()
                self.cx.post("/_sandbox/replies", {"to": f"+1415{i:07d}",
                                                   "from": SENDERS[i % len(SENDERS)],
                                                   "body": body})

        feeder = threading.Thread(target=feed)
        feeder.start()
        feeder.join()
        wait_for(lambda: len(self.tw.get("/_sandbox/creates")["creates"]) >= before + count,
                 timeout=60, message="every latency message created")
        creates = self.tw.get("/_sandbox/creates")["creates"]
        latencies = sorted((c["at"] - posted[c["body"]]) * 1000 for c in creates
                           if c["body"] in posted)
        to_enqueue, to_create = self._breakdown(posted, creates)
        return {
            "posted_to_enqueued_p50_p99_ms": to_enqueue,
            "enqueued_to_created_p50_p99_ms": to_create,
            "offered_msg_per_s": rate, "messages": len(latencies),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "max_ms": round(latencies[-1], 1),
            "target_p99_ms": self.args.poll_interval * 1000 + 200,
        }

    def _breakdown(self, posted: dict[str, float], creates: list[dict]) -> tuple[list, list]:
        """Where the latency goes: waiting for the poll, then our queue and the create."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute("""
                SELECT o.payload->>'body', EXTRACT(EPOCH FROM a.at)
                FROM outbox o JOIN audit_log a ON a.cxone_message_id = o.dedupe_key
                WHERE a.event = 'message.enqueued'""").fetchall()
        enqueued = {body: float(at) for body, at in rows if body in posted}
        created = {c["body"]: c["at"] for c in creates if c["body"] in enqueued}
        first = sorted((enqueued[b] - posted[b]) * 1000 for b in enqueued)
        second = sorted((created[b] - enqueued[b]) * 1000 for b in created)

        def p50_p99(values: list[float]) -> list[float]:
            return [round(statistics.median(values), 1),
                    round(values[int(len(values) * 0.99) - 1], 1)] if values else []

        return p50_p99(first), p50_p99(second)

    # -- CPU -------------------------------------------------------------------------------

    def _cpu(self) -> dict[str, float]:
        return {"web": _tree_cpu(self.web.popen.pid),
                "worker": sum(_tree_cpu(w.popen.pid) for w in self.workers),
                "simulators": sum(_tree_cpu(p.popen.pid) for p in self.sims),
                "postgres": self._postgres_cpu()}

    def _postgres_cpu(self) -> float:
        """CPU of the server backends serving this benchmark's database (if local)."""
        with psycopg.connect(self.url) as conn:
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
        return sum(_tree_cpu(pid) for pid in pids)

    def _cpu_delta(self, before: dict[str, float]) -> dict[str, float]:
        after = self._cpu()
        delta = {k: after[k] - before[k] for k in after}
        delta["ours"] = delta["web"] + delta["worker"]
        return delta


class _RemoteSim(Simulator):
    """A simulator running as its own process."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def up(self) -> bool:
        try:
            return requests.get(self._url + "/_sandbox/creates", timeout=1).status_code < 500
        except requests.RequestException:
            return False


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for child in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(entry.name))
            children.extend(_descendants(int(entry.name)))
    return children


if __name__ == "__main__":
    sys.exit(main())
