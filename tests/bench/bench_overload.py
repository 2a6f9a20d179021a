"""Overload benchmark: signed receipts offered at twice what the web tier can serve.

The gateway's web process runs as production runs it (``gunicorn -k gevent
'app:create_app()'``, this repository's ``gunicorn.conf.py``, WEB_CONCURRENCY
workers, DATABASE_POOL_SIZE and any other ``DATABASE_*`` setting taken from this
environment) against a fresh database seeded with sent messages, as
``bench_webhooks.py`` seeds them. Each message gets its receipts ``queued``,
``sent``, ``delivered``, correctly signed.

1. **Capacity**: a closed loop (``--connections`` requests in flight, the same
   asyncio client processes as step 2, after a 3 s warm-up) gives C receipts/s.
2. **Overload**: an open loop offers ``--factor`` x C receipts/s (or ``--rate``)
   for ``--duration`` seconds. Each request has Twilio's 15 s timeout: no answer
   by then counts as timed out (split into "still connecting" and "waiting for
   the answer"). Latency counts from each request's scheduled send time.
3. **Nothing lost**: every request that got a 503, a timeout or a connection
   error is sent again (as a retrying Twilio would) until it is answered 200;
   then the database must hold every offered receipt once in the dedupe table,
   every message delivered and final, and one DELIVERED report for CXone each.

    .venv-bench/bin/python tests/bench/bench_overload.py [--factor 2] [--duration 60]
        [--rate R] [--workers 2] [--clients 2] [--database-url URL] [--json PATH]

Pass criteria (exit 1 when one fails): no 5xx other than 503 and no other 4xx;
every request answered within 15 s (no timeouts, no connection errors); 503s
refused fast (p99 ≤ FAST_503_S); nothing lost (as in 3). The client's own CPU
and send lag are reported: an open-loop client that falls behind offers less
than it claims.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from tests.bench.bench_webhooks import (  # noqa: E402
    IDLE_REUSE_S,
    PATH,
    Plan,
    Server,
    lifecycle_order,
    message_sid,
    percentile,
    seed_messages,
    server_env,
    signed_receipts,
)
from tests.harness import free_port  # noqa: E402

TWILIO_TIMEOUT_S = 15.0
FAST_503_S = 1.0  # "refused fast": our reading of the issue, not a number Twilio sets
WARMUP_S = 3.0
RETRY_CONCURRENCY = 32
# Outcomes other than an HTTP status.
TIMEOUT_CONNECT, TIMEOUT_ANSWER, CONN_ERROR, CLIENT_PORTS = -1, -2, -3, -4
OUTCOME_NAMES = {TIMEOUT_CONNECT: "timeout_connecting", TIMEOUT_ANSWER: "timeout_answer",
                 CONN_ERROR: "connection_error", CLIENT_PORTS: "client_out_of_ports"}
REFUSED = {503, TIMEOUT_CONNECT, TIMEOUT_ANSWER, CONN_ERROR, CLIENT_PORTS}


def main() -> int:
    args = parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        logged = bench.close()
    results["server_log"] = logged
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = [c for c in results["criteria"] if not c["ok"]]
    for check in failed:
        print(f"FAILED: {check['what']}: {check['value']}", file=sys.stderr)
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a Postgres server (a fresh database is created and dropped)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY")
    parser.add_argument("--factor", type=float, default=2.0, help="offered rate = factor x C")
    parser.add_argument("--duration", type=float, default=60.0, help="overload seconds")
    parser.add_argument("--rate", type=float, help="offered receipts/s (instead of factor x C)")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64,
                        help="requests in flight while measuring capacity")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--max-capacity", type=float, default=2500.0,
                        help="sizes the seeded messages (C above it stops the run)")
    parser.add_argument("--retry-deadline", type=float, default=300.0,
                        help="seconds to get every refused receipt accepted")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


# -- the client ----------------------------------------------------------------------------

def raw_request(port: int, signature: str, body: str) -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
            f"{body}").encode()


class Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, its answer's status.

    A bare protocol rather than asyncio streams: at thousands of requests a second on
    two shared cores, the client's own CPU is what limits how much load it can offer.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bool]] | None = None
        self.buffer = b""
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bool]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.transport.write(raw)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, found, body = self.buffer.partition(b"\r\n\r\n")
        if not found or self.answer is None or self.answer.done():
            return
        lines = head.split(b"\r\n")
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if len(body) >= length:
            self.answer.set_result((int(lines[0].split()[1]), keep))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionResetError("connection closed"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one server: the most recent idle one, or a new one.

    Idle ones older than IDLE_REUSE_S are closed, not reused: gunicorn closes them
    after keepalive = 5 s, and a request written onto a closing one would fail.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Exchange] = []
        self.opened = 0

    async def take(self) -> tuple[Exchange, bool]:
        """A connection, and whether it was reused."""
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is not None and now - conn.idle_since < IDLE_REUSE_S:
                return conn, True
            conn.close()
        self.opened += 1
        _, conn = await asyncio.get_running_loop().create_connection(
            Exchange, "127.0.0.1", self.port)
        return conn, False

    def give_back(self, conn: Exchange) -> None:
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


async def send(pool: Pool, raw: bytes) -> int:
    """One request under Twilio's timeout: its status, or an outcome code.

    A kept-alive connection the server has closed meanwhile is retried once on a
    new one, as HTTP clients do; a connection is closed whenever its exchange fails.
    """
    phase, conn = TIMEOUT_CONNECT, None
    try:
        async with asyncio.timeout(TWILIO_TIMEOUT_S):
            for _ in range(2):
                phase = TIMEOUT_CONNECT
                conn, reused = await pool.take()
                phase = TIMEOUT_ANSWER
                try:
                    status, keep = await conn.request(raw)
                except ConnectionError:
                    conn.close()
                    if reused:
                        continue
                    raise
                if keep:
                    pool.give_back(conn)
                else:
                    conn.close()
                return status
            raise ConnectionResetError("stale connection")
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, TimeoutError):
            return phase
        if isinstance(exc, OSError):
            return CLIENT_PORTS if exc.errno == errno.EADDRNOTAVAIL else CONN_ERROR
        if isinstance(exc, (ValueError, IndexError)):
            return CONN_ERROR
        raise


@dataclass
class Part:
    """What one client process saw: per request, its index, outcome and timings."""

    index: array = field(default_factory=lambda: array("q"))
    outcome: array = field(default_factory=lambda: array("h"))
    latency: array = field(default_factory=lambda: array("d"))  # from scheduled send time
    lag: array = field(default_factory=lambda: array("d"))  # scheduled → actually sent
    cpu_s: float = 0.0
    sys_cpu_s: float = 0.0  # of which in the kernel (loopback TCP is partly charged here)
    connections_opened: int = 0


async def open_loop_part(port: int, raws: Sequence[bytes], indices: range, rate: float,
                         start: float) -> Part:
    """Send request i at ``start + i / rate`` whatever the answers (``start``: monotonic)."""
    loop, pool, part = asyncio.get_running_loop(), Pool(port), Part()
    pending: set[asyncio.Task] = set()

    async def one(i: int, due: float) -> None:
        lag = loop.time() - due
        outcome = await send(pool, raws[i])
        part.index.append(i)
        part.outcome.append(outcome)
        part.latency.append(loop.time() - due)
        part.lag.append(lag)

    for i in indices:
        due = start + i / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(one(i, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    while pending:
        await asyncio.wait(set(pending))
    pool.close()
    part.connections_opened = pool.opened
    return part


async def closed_loop_part(port: int, raws: Sequence[bytes], indices: Sequence[int],
                           concurrency: int, until: float) -> Part:
    """``concurrency`` requests in flight, each sent as the previous one is answered."""
    loop, pool, part = asyncio.get_running_loop(), Pool(port), Part()
    queue = iter(indices)

    async def user() -> None:
        for i in queue:
            if loop.time() >= until:
                return
            sent = loop.time()
            outcome = await send(pool, raws[i])
            part.index.append(i)
            part.outcome.append(outcome)
            part.latency.append(loop.time() - sent)

    await asyncio.gather(*(user() for _ in range(concurrency)))
    pool.close()
    part.connections_opened = pool.opened
    return part


# Set in the parent just before the client processes fork: they inherit it, unpickled.
_RAWS: list[bytes] = []


def _client_process(spec: dict, pipe: multiprocessing.connection.Connection) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = resource.getrusage(resource.RUSAGE_SELF)
    if spec["mode"] == "open":
        part = asyncio.run(open_loop_part(spec["port"], _RAWS, spec["indices"], spec["rate"],
                                          spec["start"]))
    else:
        part = asyncio.run(closed_loop_part(spec["port"], _RAWS, spec["indices"],
                                            spec["concurrency"], spec["until"]))
    after = resource.getrusage(resource.RUSAGE_SELF)
    part.sys_cpu_s = after.ru_stime - before.ru_stime
    part.cpu_s = after.ru_utime - before.ru_utime + part.sys_cpu_s
    pipe.send(part)
    pipe.close()


def run_clients(raws: list[bytes], processes: int, **spec: object) -> list[Part]:
    """Run one load across ``processes`` forked clients; request i goes to process i % n."""
    global _RAWS
    _RAWS = raws
    # The children inherit the parent's heap (every signed receipt): frozen, their
    # garbage collections neither walk it nor copy its pages.
    gc.freeze()
    ctx = multiprocessing.get_context("fork")
    running = []
    for k in range(processes):
        mine: Sequence[int] = range(k, len(raws), processes)
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_process,
                           args=({**spec, "indices": mine}, sender), daemon=True)
        proc.start()
        sender.close()
        running.append((proc, receiver))
    parts = []
    for proc, receiver in running:
        parts.append(receiver.recv())
        proc.join()
    gc.unfreeze()
    _RAWS = []
    return parts


# -- figures -------------------------------------------------------------------------------

def spread(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}_ms": round(percentile(ordered, q) * 1e3, 1) for q in (50, 90, 99)} | {
        "max_ms": round(ordered[-1] * 1e3, 1)}


def outcome_counts(outcomes: Sequence[int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for code in outcomes:
        if code in OUTCOME_NAMES:
            counts[OUTCOME_NAMES[code]] += 1
        elif code in (200, 503):
            counts[str(code)] += 1
        else:
            counts["other_5xx" if code >= 500 else "other_status"] += 1
            counts[f"status_{code}"] += 1
    return dict(sorted(counts.items()))


def by_outcome(parts: list[Part], code: int) -> list[float]:
    return [lat for p in parts for o, lat in zip(p.outcome, p.latency, strict=True) if o == code]


# -- the benchmark -------------------------------------------------------------------------

class Bench:
    """A fresh database, the gateway's web process, and the three steps."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.salt = uuid.uuid4().hex[:10]
        self.dbname = f"smsgw_bench_overload_{self.salt}"
        self.work_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-overload-"))
        self.server: Server | None = None
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"

    def url(self) -> str:
        return make_conninfo(self.args.database_url, dbname=self.dbname)

    def run(self) -> dict:
        args = self.args
        cap_msgs = math.ceil(args.max_capacity * (WARMUP_S + args.capacity_seconds) / 3)
        over_msgs = math.ceil((args.rate or args.factor * args.max_capacity) * args.duration / 3)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        migrate.migrate(self.url())
        started = time.monotonic()
        seed_messages(self.url(), Plan(self.salt, [], [], [], messages=cap_msgs + over_msgs))
        with psycopg.connect(self.url(), autocommit=True) as conn:
            # As the send job records a reply: its final receipt reports to CXone.
            conn.execute("UPDATE twilio_messages SET report_to = cxone_message_id")
            conn.execute("VACUUM ANALYZE twilio_messages")
        print(f"seeded {cap_msgs + over_msgs} sent messages in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        env = server_env(self.url(), self.port, args.workers, self.work_dir)
        env.update({k: v for k, v in os.environ.items()
                    if k.startswith(("DATABASE_", "WEB_"))
                    and k not in ("DATABASE_URL", "WEB_CONCURRENCY")})
        env["LOG_LEVEL"] = "WARNING"  # a log line per refused request would load the machine
        self.server = Server("ours", env, self.port, args.database_url, self.dbname)
        results: dict = {"settings": {k: str(v) for k, v in vars(args).items()},
                         "server_env": {k: v for k, v in env.items()
                                        if k.startswith(("DATABASE_", "WEB_"))
                                        and k != "DATABASE_URL"},
                         "cpus": os.cpu_count(),
                         "load_average_before": os.getloadavg()}
        results["capacity"] = self.capacity(0, cap_msgs)
        rate = args.rate or args.factor * results["capacity"]["rate"]
        messages = math.ceil(rate * args.duration / 3)
        if messages > over_msgs:
            raise SystemExit(f"bench: {rate:.0f}/s needs {messages} messages, {over_msgs} "
                             "seeded; raise --max-capacity")
        first = cap_msgs
        raws = self.sign(first, messages)
        results["overload"], refused = self.overload(raws, rate)
        results["retry"] = self.retry(raws, refused)
        results["database"] = self.verify(first, messages)
        results["criteria"] = criteria(results)
        return results

    def sign(self, first: int, messages: int) -> list[bytes]:
        started = time.monotonic()
        receipts = signed_receipts(self.salt, lifecycle_order(first, messages), self.public_url)
        print(f"signed {len(receipts)} receipts in {time.monotonic() - started:.1f}s",
              flush=True)
        return [raw_request(self.port, sig, body) for sig, body in receipts]

    def capacity(self, first: int, messages: int) -> dict:
        raws = self.sign(first, messages)
        args, server = self.args, self.server
        assert server is not None
        print(f"capacity: closed loop, {args.connections} in flight, "
              f"{WARMUP_S:g}s warm-up + {args.capacity_seconds:g}s", flush=True)
        warm = math.ceil(args.max_capacity * WARMUP_S)
        run_clients(raws[:warm], args.clients, mode="closed", port=self.port,
                    concurrency=max(1, args.connections // args.clients),
                    until=time.monotonic() + WARMUP_S)
        before, started = server.snapshot(), time.monotonic()
        parts = run_clients(raws[warm:], args.clients, mode="closed", port=self.port,
                            concurrency=max(1, args.connections // args.clients),
                            until=started + args.capacity_seconds)
        seconds = time.monotonic() - started
        usage = server.usage_since(before)
        outcomes = [o for p in parts for o in p.outcome]
        ok = outcomes.count(200)
        if ok < len(outcomes) * 0.99 or ok == 0:
            raise SystemExit(f"bench: capacity run not clean: {outcome_counts(outcomes)}")
        if len(outcomes) >= len(raws) - warm:
            raise SystemExit("bench: the capacity run used every receipt; raise --max-capacity")
        rate = ok / seconds
        print(f"capacity C = {rate:.0f} receipts/s", flush=True)
        return {"rate": round(rate, 1), "requests": len(outcomes), "seconds": round(seconds, 2),
                "outcomes": outcome_counts(outcomes),
                "latency_200": spread(by_outcome(parts, 200)),
                "client_cpu_s": round(sum(p.cpu_s for p in parts), 2),
                "server": usage_figures(asdict(usage), seconds)}

    def overload(self, raws: list[bytes], rate: float) -> tuple[dict, list[int]]:
        server = self.server
        assert server is not None
        print(f"overload: open loop at {rate:.0f}/s for {len(raws) / rate:.0f}s, "
              f"{self.args.clients} client processes", flush=True)
        before = server.snapshot()
        start = time.monotonic() + 0.5
        parts = run_clients(raws, self.args.clients, mode="open", port=self.port, rate=rate,
                            start=start)
        seconds = time.monotonic() - start
        usage = server.usage_since(before)
        outcomes = [o for p in parts for o in p.outcome]
        lags = [x for p in parts for x in p.lag]
        client_cpu = sum(p.cpu_s for p in parts)
        refused = [i for p in parts for i, o in zip(p.index, p.outcome, strict=True)
                   if o in REFUSED]
        offered_for = len(raws) / rate
        served = outcomes.count(200) / offered_for
        return {"offered_rate": round(rate, 1), "requests": len(raws),
                "load_average_after": os.getloadavg(),
                # The machine is shared: what the server managed while overloaded may differ
                # from C, and this is the overload it really saw.
                "offered_over_served": round(rate / served, 2) if served else None,
                "offered_seconds": round(offered_for, 1), "seconds": round(seconds, 1),
                "outcomes": outcome_counts(outcomes),
                "answered_200_per_s": round(served, 1),
                "latency_200": spread(by_outcome(parts, 200)),
                "latency_503": spread(by_outcome(parts, 503)),
                "latency_timeouts": spread(by_outcome(parts, TIMEOUT_CONNECT)
                                           + by_outcome(parts, TIMEOUT_ANSWER)),
                "client": {"processes": len(parts), "cpu_s": round(client_cpu, 2),
                           "kernel_cpu_s": round(sum(p.sys_cpu_s for p in parts), 2),
                           "cores": round(client_cpu / seconds, 2),
                           "cpu_ms_per_request": round(client_cpu * 1e3 / len(raws), 3),
                           "send_lag": spread(lags),
                           "connections_opened": sum(p.connections_opened for p in parts)},
                "server": usage_figures(asdict(usage), seconds)}, refused

    def retry(self, raws: list[bytes], refused: list[int]) -> dict:
        """Send refused receipts again, pass after pass, until each is answered 200."""
        started, passes = time.monotonic(), []
        left = sorted(refused)
        while left and time.monotonic() - started < self.args.retry_deadline:
            resend = [raws[i] for i in left]
            parts = run_clients(resend, 1, mode="closed", port=self.port,
                                concurrency=RETRY_CONCURRENCY,
                                until=started + self.args.retry_deadline)
            answered = {left[i]: o for p in parts for i, o in zip(p.index, p.outcome,
                                                                  strict=True)}
            passes.append(outcome_counts(list(answered.values())))
            left = [i for i in left if answered.get(i) != 200]
            if left:
                time.sleep(1)
        print(f"retry: {len(refused)} refused receipts sent again in {len(passes)} passes, "
              f"{len(left)} still not accepted", flush=True)
        return {"resent": len(refused), "passes": passes, "not_accepted": len(left),
                "seconds": round(time.monotonic() - started, 1)}

    def verify(self, first: int, messages: int) -> dict[str, int]:
        """Every offered receipt's effect, for the overload run's messages only."""
        sids = [message_sid(self.salt, n) for n in range(first, first + messages)]
        queries = {
            "receipts_stored": "SELECT count(*) FROM twilio_receipts "
                               "WHERE message_sid = ANY(%(sids)s)",
            "receipts_unapplied": "SELECT count(*) FROM twilio_receipts "
                                  "WHERE message_sid = ANY(%(sids)s) AND applied_at IS NULL",
            "delivered_final": "SELECT count(*) FROM twilio_messages WHERE sid = ANY(%(sids)s) "
                               "AND status = 'delivered' AND final",
            "outcome_delivered": "SELECT count(*) FROM sms_gateway_state "
                                 "WHERE twilio_message_sid = ANY(%(sids)s) "
                                 "AND outcome = 'delivered'",
            "cxone_delivered_reports": "SELECT count(*) FROM cxone_status_updates u "
                                       "JOIN twilio_messages t ON t.cxone_message_id = "
                                       "u.cxone_message_id WHERE t.sid = ANY(%(sids)s) "
                                       "AND u.status = 'DELIVERED'",
        }
        with psycopg.connect(self.url()) as conn:
            counts = {key: int(conn.execute(sql, {"sids": sids}).fetchone()[0])  # type: ignore[index]
                      for key, sql in queries.items()}
        return {"messages": messages, "receipts_offered": 3 * messages, **counts}

    def close(self) -> dict[str, int]:
        """Stop the server, drop the database; what the server logged, by event."""
        logged: dict[str, int] = {}
        if self.server is not None:
            self.server.stop()
            logged = log_summary(self.server.process.log_path)
            self.server.process.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        return logged


def log_summary(path: Path) -> dict[str, int]:
    """Lines of the server's log by JSON event name (gunicorn's own lines by their text)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            counts[str(json.loads(line).get("event"))] += 1
        except (ValueError, AttributeError):
            counts[re.sub(r"\d+", "N", re.sub(r"^\[[^]]*\] ", "", line))[:80]] += 1
    return dict(counts.most_common(12))


def usage_figures(usage: dict, seconds: float) -> dict:
    return {"web_cpu_s": round(usage["web_cpu_s"], 2),
            "web_cores": round(usage["web_cpu_s"] / seconds, 2),
            "web_worker_cpu_s": [round(s, 2) for s in usage["worker_cpu_s"]],
            "db_cpu_s": round(usage["db_cpu_s"], 2),
            "db_cores": round(usage["db_cpu_s"] / seconds, 2)}


def criteria(results: dict) -> list[dict]:
    out, db = results["overload"]["outcomes"], results["database"]
    timeouts = out.get("timeout_connecting", 0) + out.get("timeout_answer", 0)
    errors = out.get("connection_error", 0) + out.get("client_out_of_ports", 0)
    latency_503 = results["overload"]["latency_503"]
    lost = (results["retry"]["not_accepted"] + db["receipts_unapplied"]
            + abs(db["receipts_offered"] - db["receipts_stored"])
            + sum(db["messages"] - db[k] for k in ("delivered_final", "outcome_delivered",
                                                   "cxone_delivered_reports")))
    checks = [
        ("no 5xx other than 503", out.get("other_5xx", 0) == 0, out.get("other_5xx", 0)),
        ("no other 4xx/5xx status", out.get("other_status", 0) == 0,
         out.get("other_status", 0)),
        (f"every request answered within {TWILIO_TIMEOUT_S:g} s", timeouts + errors == 0,
         f"{timeouts} timed out, {errors} connection errors"),
        (f"503s refused fast (p99 ≤ {FAST_503_S * 1e3:.0f} ms)",
         latency_503.get("p99_ms", 0.0) <= FAST_503_S * 1e3,
         f"p99 {latency_503['p99_ms']:.0f} ms" if latency_503 else "no 503s"),
        ("nothing lost (every receipt stored once and applied, every message delivered, "
         "one DELIVERED report each)", lost == 0, f"{lost} missing or extra"),
    ]
    return [{"what": what, "ok": bool(ok), "value": str(value)} for what, ok, value in checks]


def print_report(results: dict) -> None:
    cap, over, retry = results["capacity"], results["overload"], results["retry"]
    print(f"\noverload: {results['cpus']} CPUs (shared; load average before "
          f"{results['load_average_before'][0]:.2f}); server settings {results['server_env']}")
    print(f"capacity C: {cap['rate']:.0f} receipts/s (closed loop; latency 200 "
          f"{cap['latency_200']}); server {cap['server']}; client CPU {cap['client_cpu_s']} s")
    print(f"offered {over['offered_rate']:.0f}/s for {over['offered_seconds']} s "
          f"({over['requests']} receipts); answered 200: {over['answered_200_per_s']}/s, so "
          f"offered {over['offered_over_served']}x what was served (load average after "
          f"{over['load_average_after'][0]:.2f})")
    print(f"  outcomes: {over['outcomes']}")
    print(f"  latency of 200s (from scheduled send): {over['latency_200']}")
    print(f"  latency of 503s: {over['latency_503'] or '(none)'}")
    print(f"  latency of timeouts: {over['latency_timeouts'] or '(none)'}")
    print(f"  server CPU: {over['server']}")
    client = over["client"]
    print(f"  client: {client['processes']} processes, {client['cores']} cores "
          f"({client['cpu_ms_per_request']} ms/request, {client['kernel_cpu_s']} of "
          f"{client['cpu_s']} s in the kernel), send lag {client['send_lag']}, "
          f"{client['connections_opened']} connections opened")
    if client["send_lag"].get("p99_ms", 0) > 100:
        print("  WARNING: the client fell behind its schedule (send lag p99 > 100 ms): "
              "the offered rate was lower than stated")
    print(f"retry: {retry['resent']} sent again, {len(retry['passes'])} passes "
          f"{retry['passes']}, {retry['not_accepted']} never accepted, {retry['seconds']} s")
    print(f"database: {results['database']}")
    print(f"server log lines by event: {results['server_log']}")
    for check in results["criteria"]:
        print(f"  {'met   ' if check['ok'] else 'FAILED'} {check['what']}: {check['value']}")


if __name__ == "__main__":
    sys.exit(main())
