"""Webhook benchmark: signed delivery receipts per second and latency, against a one-INSERT floor.

Two systems run in turn under the same gunicorn (``-k gevent``, this repository's
``gunicorn.conf.py``, the same environment, WEB_CONCURRENCY and
worker_connections) against the same Postgres server, each in a fresh database:

- **ours**: the gateway's web process (``'app:create_app()'``). Every request is a
  correctly signed ``POST /twilio/receipts`` for one of tens of thousands of sent
  messages seeded beforehand (twilio_messages, sms_gateway_state, a done send job),
  and each message gets its lifecycle ``queued``, ``sent``, ``delivered``: signature
  check, dedupe insert, SID lock, forward-only update, audit row, and for
  ``delivered`` the CXone update enqueue.
- **floor**: ``tests/bench/floor_app.py``, a bare Flask endpoint doing one INSERT
  per request; it receives the very same bodies.

For each: a 3 s warm-up, then (1) latency at a fixed offered rate (open loop,
an asyncio client that measures from each request's scheduled send time, so a
slow server cannot hide queueing), then (2) maximum throughput (closed loop, wrk
with a Lua script cycling through the pre-signed bodies, one wrk thread). Every
answer must be 200: any other status or transport error fails the run (exit 1).

    .venv-bench/bin/python tests/bench/bench_webhooks.py [--duration 20] [--rate 300]
        [--database-url URL] [--workers 2] [--connections 64] [--profile DIR]

The report gives, per system: receipts/s at saturation, p50/p99 at the fixed
rate, CPU milliseconds per receipt of the gunicorn processes and of the
database's backends (psutil), WAL bytes per receipt, and what the database
holds afterwards (receipts stored, status moves, CXone updates queued).
``--profile DIR`` also samples ours' workers with py-spy during its throughput
run and prints the hottest frames, by self time and by the deepest frame in
``app/`` or ``db/``.

Targets (issue): ≥ 1,000 receipts/s, p99 ≤ 50 ms at 300/s, ≥ 0.5x the floor.
Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psutil
import psycopg
import requests
from psycopg.conninfo import make_conninfo
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from sandbox import defaults  # noqa: E402
from tests.bench import floor_app  # noqa: E402
from tests.harness import Process, free_port, start_process, wait_for  # noqa: E402

PATH = "/twilio/receipts"
LIFECYCLE = ("queued", "sent", "delivered")
# A message's next status is sent this many requests after the previous one: far more
# than can be in flight at once, so each message's receipts arrive in order, and the
# mix of the three statuses is steady.
STRIDE = 500
WARMUP_S = 3
SENDERS = defaults.SENDER_NUMBERS
APPS = {"ours": "app:create_app()", "floor": "tests.bench.floor_app:create_app()"}
LABELS = {"ours": "ours (gateway)", "floor": "floor (1 INSERT)"}
TARGET_RATE, TARGET_P99_MS, TARGET_RATIO = 1000.0, 50.0, 0.5


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2
    bench = Bench(args)
    results: dict = {}
    try:
        results = bench.run()
    finally:
        bench.close(keep_logs=not results or bool(results["problems"]))
    print_report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    problems = results["problems"]
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--rate", type=float, default=300.0, help="fixed offered rate, receipts/s")
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a Postgres server (fresh databases are created and dropped)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY for both")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--max-rate", type=float, default=5000.0,
                        help="sizes the unique receipts for the throughput run")
    parser.add_argument("--systems", default="ours,floor", help="which to run, in this order")
    parser.add_argument("--profile", type=Path,
                        help="py-spy every worker of ours during its throughput run "
                             "(slows it down) and print the hot spots")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


# -- traffic -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Which seeded messages each run uses, and their signed receipts in sending order."""

    salt: str
    warmup: list[tuple[str, str]]
    fixed_rate: list[tuple[str, str]]
    saturation: list[tuple[str, str]]
    messages: int


def message_sid(salt: str, n: int) -> str:
    """The SID of seeded message ``n`` (the seeding SQL computes the same md5)."""
    return "SM" + hashlib.md5(f"{salt}-{n}".encode()).hexdigest()


def customer_number(n: int) -> str:
    return f"+1415{n % 10_000_000:07d}"


def lifecycle_order(first: int, count: int) -> list[tuple[int, str]]:
    """(message, status) for ``count`` messages from ``first``, STRIDE apart per message."""
    order = []
    for t in range(count + 2 * STRIDE):
        for lag, status in enumerate(LIFECYCLE):
            m = t - lag * STRIDE
            if 0 <= m < count:
                order.append((first + m, status))
    return order


def signed_receipts(salt: str, order: list[tuple[int, str]],
                    public_url: str) -> list[tuple[str, str]]:
    """(X-Twilio-Signature, form body) per receipt, as Twilio's status callback sends them."""
    validator = RequestValidator(defaults.TWILIO_AUTH_TOKEN)
    out = []
    for n, status in order:
        sid = message_sid(salt, n)
        params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": defaults.TWILIO_ACCOUNT_SID, "From": SENDERS[n % len(SENDERS)],
                  "To": customer_number(n), "ApiVersion": "2010-04-01",
                  "MessagingServiceSid": defaults.TWILIO_MESSAGING_SERVICE_SID}
        out.append((validator.compute_signature(public_url + PATH, params), urlencode(params)))
    return out


def make_plan(args: argparse.Namespace, salt: str, public_url: str) -> Plan:
    sizes = [math.ceil(rate * seconds / len(LIFECYCLE)) for rate, seconds in
             ((args.rate, WARMUP_S), (args.rate, args.duration),
              (args.max_rate, args.duration))]
    runs, first = [], 0
    for size in sizes:
        runs.append(signed_receipts(salt, lifecycle_order(first, size), public_url))
        first += size
    return Plan(salt, *runs, messages=first)


SEED = [
    """INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, to_number,
                                    from_number, status)
       SELECT 'SM' || md5(%(salt)s::text || '-' || n), 'msg_bench_' || n, 'conv_bench_' || n,
              '+1415' || lpad((n %% 10000000)::text, 7, '0'),
              (%(senders)s::text[])[n %% %(pool)s + 1], 'accepted'
       FROM generate_series(0, %(count)s - 1) AS n""",
    """INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id, twilio_message_sid,
                                      twilio_status, direction, to_number, from_number)
       SELECT cxone_conversation_id, cxone_message_id, sid, status, 'OUTBOUND', to_number,
              from_number
       FROM twilio_messages""",
    """INSERT INTO outbox (kind, dedupe_key, payload, state, finished_at)
       SELECT 'send_sms', cxone_message_id,
              jsonb_build_object('to', to_number, 'body', 'bench reply', 'dispatch', 1),
              'done', now()
       FROM twilio_messages""",
]


def seed_messages(url: str, plan: Plan) -> None:
    """Bulk-insert every planned message as sent and accepted by Twilio, like the send job."""
    params = {"salt": plan.salt, "senders": list(SENDERS), "pool": len(SENDERS),
              "count": plan.messages}
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            for sql in SEED:
                conn.execute(sql, params)
        conn.execute("VACUUM ANALYZE twilio_messages, sms_gateway_state, outbox")


# -- servers -------------------------------------------------------------------------------

def server_env(database_url: str, port: int, workers: int, work_dir: Path) -> dict[str, str]:
    """The gateway's environment; the floor gets the same (gunicorn.conf.py validates it)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID,
        "CXONE_CLIENT_SECRET": defaults.CXONE_CLIENT_SECRET,
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SENDER_NUMBERS": ",".join(SENDERS),
        "LOG_LEVEL": "INFO",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(Path(tempfile.mkdtemp(dir=work_dir, prefix="prom-"))),
    }


@dataclass
class Snapshot:
    """CPU seconds per process (gunicorn; the database's backends) and the WAL position."""

    web_cpu: dict[int, float]
    db_cpu: dict[int, float]
    wal_lsn: str


@dataclass
class Usage:
    """What the server side spent during one run."""

    web_cpu_s: float
    worker_cpu_s: list[float]
    db_cpu_s: float
    wal_bytes: int


class Server:
    """One system under gunicorn, and the CPU its processes and its Postgres backends use."""

    def __init__(self, name: str, env: dict[str, str], port: int, server_url: str,
                 dbname: str) -> None:
        self.name, self.port, self.server_url, self.dbname = name, port, server_url, dbname
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.process: Process = start_process(f"bench-{name}",
                                              [gunicorn, "-k", "gevent", APPS[name]], env)
        wait_for(self._healthy, timeout=60, message=f"{name} /healthz")

    def _healthy(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"{self.name} exited early:\n{self.process.output()[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.popen.pid).children()]

    def snapshot(self) -> Snapshot:
        web = [self.process.popen.pid, *self.worker_pids()]
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            backends = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend'", (self.dbname,))]
            lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        return Snapshot(cpu_seconds(web), cpu_seconds(backends), lsn)

    def usage_since(self, before: Snapshot) -> Usage:
        after = self.snapshot()
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            wal = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)::bigint",
                               (after.wal_lsn, before.wal_lsn)).fetchone()[0]  # type: ignore[index]
        workers = [after.web_cpu[pid] - before.web_cpu.get(pid, 0.0)
                   for pid in self.worker_pids() if pid in after.web_cpu]
        return Usage(web_cpu_s=delta(before.web_cpu, after.web_cpu), worker_cpu_s=workers,
                     db_cpu_s=delta(before.db_cpu, after.db_cpu), wal_bytes=int(wal))

    def stop(self) -> None:
        self.process.terminate(timeout=30)


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = times.user + times.system
    return out


def delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots (a process born in between counts from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# -- load ----------------------------------------------------------------------------------

@dataclass
class Load:
    """One run of the load generator (``requests``: answered 200)."""

    generator: str
    requests: int
    seconds: float
    non_200: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = r"""
-- Sends each pre-signed receipt once, in file order; counts answers other than 200.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  reqs, next_index, wrapped, bad = {}, 0, 0, 0
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    headers["X-Twilio-Signature"] = signature
    reqs[#reqs + 1] = wrk.format("POST", args[2], headers, body)
  end
  unique = #reqs
end

function request()
  next_index = next_index + 1
  if next_index > unique then
    wrapped = wrapped + 1
    return reqs[(next_index - 1) % unique + 1]
  end
  return reqs[next_index]
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total, wrapped_total, unique_total = 0, 0, 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    wrapped_total = wrapped_total + thread:get("wrapped")
    unique_total = unique_total + thread:get("unique")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non_200": %d, "errors": %d, ' ..
    '"wrapped": %d, "unique": %d, "p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f}\n',
    summary.requests, summary.duration, bad_total, e.connect + e.read + e.write + e.timeout,
    wrapped_total, unique_total, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def run_wrk(port: int, receipts: list[tuple[str, str]], args: argparse.Namespace,
            work_dir: Path) -> Load:
    """Closed loop: ``--connections`` keep-alive connections, each sending as fast as answered."""
    script, bodies = work_dir / "receipts.lua", work_dir / "receipts.tsv"
    script.write_text(WRK_SCRIPT)
    bodies.write_text("".join(f"{sig}\t{body}\n" for sig, body in receipts))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}", "--", str(bodies), PATH],
        capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    out = json.loads(lines[-1].removeprefix("BENCH "))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Load("wrk", requests=out["requests"] - out["non_200"],
                seconds=out["duration_us"] / 1e6,
                non_200=out["non_200"], errors=out["errors"], p50_ms=out["p50_us"] / 1e3,
                p99_ms=out["p99_us"] / 1e3, max_ms=out["max_us"] / 1e3, client_cpu_s=cpu,
                notes={"wrapped": out["wrapped"], "unique": out["unique"]})


# Idle keep-alive connections older than this are not reused: gunicorn.conf.py closes them
# after keepalive = 5 s, and a request written onto a closing connection would fail.
IDLE_REUSE_S = 2.0


class Connections:
    """Keep-alive HTTP/1.1 connections to one server: the most recent idle one, or a new one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < IDLE_REUSE_S:
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((reader, writer, time.monotonic()))

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def exchange(conns: Connections, raw: bytes) -> int:
    """Send one request and read its answer; the status code."""
    reader, writer = await conns.take()
    writer.write(raw)
    status = int((await reader.readline()).split()[1])
    length, keep = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length:
        await reader.readexactly(length)
    if keep:
        conns.give_back(reader, writer)
    else:
        writer.close()
    return status


async def open_loop(port: int, receipts: list[tuple[str, str]], rate: float,
                    seconds: float) -> Load:
    """Send at ``rate`` whatever the answers; latency counts from each scheduled send time."""
    count = min(len(receipts), int(rate * seconds))
    raws = [(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n"
             f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
            for sig, body in receipts[:count]]
    loop = asyncio.get_running_loop()
    conns = Connections(port)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()

    async def one(raw: bytes, due: float) -> None:
        lags.append(loop.time() - due)
        try:
            status = await asyncio.wait_for(exchange(conns, raw), timeout=10)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            status = 0
        statuses[status] += 1
        latencies.append(loop.time() - due)

    cpu_before = time.process_time()
    start = loop.time() + 0.05
    tasks = []
    for i, raw in enumerate(raws):
        due = start + i / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(raw, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    cpu = time.process_time() - cpu_before
    conns.close()
    latencies.sort()
    lags.sort()
    return Load("asyncio open loop", requests=statuses[200], seconds=elapsed,
                non_200=sum(n for s, n in statuses.items() if s not in (0, 200)),
                errors=statuses[0], p50_ms=percentile(latencies, 50) * 1e3,
                p99_ms=percentile(latencies, 99) * 1e3, max_ms=latencies[-1] * 1e3,
                client_cpu_s=cpu,
                notes={"send_lag_p99_ms": percentile(lags, 99) * 1e3,
                       "send_lag_max_ms": lags[-1] * 1e3, "connections_opened": conns.opened})


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- profiling -----------------------------------------------------------------------------

def start_profilers(pids: list[int], seconds: int, out_dir: Path) -> list[subprocess.Popen]:
    """py-spy (raw collapsed stacks) on each worker; non-blocking, so it barely slows them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [subprocess.Popen([py_spy, "record", "--nonblocking", "-r", "200", "-d", str(seconds),
                              "-f", "raw", "-o", str(out_dir / f"worker-{pid}.txt"),
                              "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


# py-spy names a frame "function (path:line)", the path relative to its sys.path entry.
OWN_FRAME = re.compile(r"\((?:app|db)/[^:]+:\d+\)$")


def hot_spots(out_dir: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Share of samples per leaf frame (self time) and per deepest frame in our own code."""
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for path in out_dir.glob("worker-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames, n = stack.split(";"), int(count)
            total += n
            leaf[frames[-1]] += n
            mine = [frame for frame in frames if OWN_FRAME.search(frame)]
            ours[mine[-1] if mine else "(no frame in app/ or db/)"] += n

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, n / total) for frame, n in counter.most_common(top)] if total else []
    return {"self": share(leaf), "deepest_own_frame": share(ours)}


# -- the benchmark -------------------------------------------------------------------------

class Bench:
    """Fresh databases, the traffic plan, and each system's runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = uuid.uuid4().hex[:10]
        self.work_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-webhooks-"))
        self.databases: list[str] = []
        self.servers: list[Server] = []
        self.logs: list[Path] = []
        self.problems: list[str] = []

    def create_database(self, suffix: str) -> str:
        name = f"smsgw_bench_wh_{suffix}_{self.tag}"
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def url(self, dbname: str) -> str:
        return make_conninfo(self.args.database_url, dbname=dbname)

    def run(self) -> dict:
        port = free_port()
        started = time.monotonic()
        plan = make_plan(self.args, self.tag, f"http://127.0.0.1:{port}")
        print(f"signed {sum(map(len, (plan.warmup, plan.fixed_rate, plan.saturation)))} "
              f"receipts for {plan.messages} messages in {time.monotonic() - started:.1f}s",
              flush=True)
        results: dict = {"settings": {k: str(v) for k, v in vars(self.args).items()},
                         "cpus": os.cpu_count(), "systems": {}}
        for name in self.args.systems.split(","):
            dbname = self.create_database(name)
            if name == "ours":
                migrate.migrate(self.url(dbname))
                seed_messages(self.url(dbname), plan)
            else:
                floor_app.create_schema(self.url(dbname))
            results["systems"][name] = self.run_system(name, dbname, port, plan)
        results["problems"] = self.problems
        return results

    def run_system(self, name: str, dbname: str, port: int, plan: Plan) -> dict:
        env = server_env(self.url(dbname), port, self.args.workers, self.work_dir)
        server = Server(name, env, port, self.args.database_url, dbname)
        self.servers.append(server)
        self.logs.append(server.process.log_path)
        print(f"{name}: warm-up {WARMUP_S}s at {self.args.rate:g}/s", flush=True)
        warmup = asyncio.run(open_loop(port, plan.warmup, self.args.rate, WARMUP_S))
        self.check(name, "warm-up", warmup)
        print(f"{name}: open loop {self.args.duration}s at {self.args.rate:g}/s", flush=True)
        fixed, fixed_usage = self.measure(server, lambda: asyncio.run(
            open_loop(port, plan.fixed_rate, self.args.rate, self.args.duration)))
        self.check(name, "fixed rate", fixed)
        print(f"{name}: closed loop {self.args.duration}s, wrk -c{self.args.connections}",
              flush=True)
        profilers = []
        if self.args.profile and name == "ours":
            profilers = start_profilers(server.worker_pids(), self.args.duration, self.args.profile)
        saturation, sat_usage = self.measure(server, lambda: run_wrk(
            port, plan.saturation, self.args, self.work_dir))
        for profiler in profilers:
            profiler.wait(timeout=60)
        self.check(name, "throughput", saturation)
        if name == "ours" and saturation.notes["wrapped"]:
            self.problems.append(f"ours: wrk ran out of unique receipts "
                                 f"({saturation.notes['unique']:.0f}); raise --max-rate")
        server.stop()
        self.servers.remove(server)
        sent = warmup.requests + fixed.requests + saturation.requests
        out = {"warmup": asdict(warmup),
               "fixed_rate": {**asdict(fixed), "usage": asdict(fixed_usage)},
               "saturation": {**asdict(saturation), "usage": asdict(sat_usage)},
               "database": self.verify(name, dbname, sent)}
        if profilers:
            out["hot_spots"] = hot_spots(self.args.profile)
        return out

    @staticmethod
    def measure(server: Server, run: Callable[[], Load]) -> tuple[Load, Usage]:
        before = server.snapshot()
        load = run()
        return load, server.usage_since(before)

    def check(self, name: str, run: str, load: Load) -> None:
        if load.non_200 or load.errors:
            self.problems.append(f"{name} {run}: {load.non_200} answers other than 200, "
                                 f"{load.errors} transport errors or timeouts")

    def verify(self, name: str, dbname: str, sent: int) -> dict[str, int]:
        """What the database holds after the runs: proof the requests did the real work."""
        queries = {
            "ours": {
                "receipts_stored": "SELECT count(*) FROM twilio_receipts",
                "receipts_unapplied": "SELECT count(*) FROM twilio_receipts "
                                      "WHERE applied_at IS NULL",
                "status_moves": "SELECT count(*) FROM audit_log WHERE event = 'message.status'",
                "cxone_updates": "SELECT count(*) FROM cxone_status_updates",
                "delivered": "SELECT count(*) FROM sms_gateway_state "
                             "WHERE outcome = 'delivered'",
            },
            "floor": {"receipts_stored": "SELECT count(*) FROM floor_receipts"},
        }[name]
        with psycopg.connect(self.url(dbname)) as conn:
            counts = {key: int(conn.execute(sql).fetchone()[0])  # type: ignore[index]
                      for key, sql in queries.items()}
        counts["answered_200"] = sent
        # wrk does not count requests still in flight when it stops, the server may have.
        if not 0 <= counts["receipts_stored"] - sent <= self.args.connections:
            self.problems.append(f"{name}: {counts['receipts_stored']} receipts stored "
                                 f"for {sent} answered")
        if counts.get("receipts_unapplied"):
            self.problems.append(f"{name}: {counts['receipts_unapplied']} receipts not applied")
        # Each message's receipts are sent in lifecycle order, so (nearly) every one moves
        # its message forward; many stale ones would mean the cheap path was measured.
        if name == "ours" and counts["receipts_stored"] - counts["status_moves"] > sent / 100:
            self.problems.append(f"ours: only {counts['status_moves']} of "
                                 f"{counts['receipts_stored']} receipts moved a status forward")
        return counts

    def close(self, *, keep_logs: bool) -> None:
        """Stop what still runs, drop the databases; keep the logs only after a failure."""
        for server in self.servers:
            server.stop()
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if keep_logs:
            print(f"server logs kept: {', '.join(map(str, self.logs))}", file=sys.stderr)
            return
        for log in self.logs:
            log.unlink(missing_ok=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)


# -- report --------------------------------------------------------------------------------

def print_report(results: dict, args: argparse.Namespace) -> None:
    systems = results["systems"]
    print(f"\nwebhooks: {args.workers} gevent workers, {results['cpus']} CPUs, "
          f"{args.duration}s per run; fixed rate {args.rate:g}/s (asyncio open loop), "
          f"throughput wrk -t1 -c{args.connections}")
    header = (f"{'system':<18}{'max rcpt/s':>11}{'p50@rate':>10}{'p99@rate':>10}"
              f"{'p99@max':>10}{'web ms/rcpt':>12}{'db ms/rcpt':>11}{'WAL B/rcpt':>11}")
    print(header)
    print("-" * len(header))
    for name, run in systems.items():
        fixed, sat = run["fixed_rate"], run["saturation"]
        usage, n = sat["usage"], max(1, sat["requests"])
        print(f"{LABELS.get(name, name):<18}{sat['requests'] / sat['seconds']:>11.0f}"
              f"{fixed['p50_ms']:>8.1f}ms{fixed['p99_ms']:>8.1f}ms{sat['p99_ms']:>8.1f}ms"
              f"{usage['web_cpu_s'] * 1e3 / n:>12.2f}{usage['db_cpu_s'] * 1e3 / n:>11.2f}"
              f"{usage['wal_bytes'] / n:>11.0f}")
    for name, run in systems.items():
        fixed, sat = run["fixed_rate"], run["saturation"]
        split = "/".join(f"{s:.1f}" for s in sat["usage"]["worker_cpu_s"])
        achieved = fixed["requests"] / fixed["seconds"]
        print(f"  {name}: at {args.rate:g}/s achieved {achieved:.0f}/s, "
              f"max {fixed['max_ms']:.1f} ms, send lag p99 "
              f"{fixed['notes']['send_lag_p99_ms']:.1f} ms, client CPU "
              f"{fixed['client_cpu_s'] * 1e3 / max(1, fixed['requests']):.2f} ms/req; "
              f"wrk CPU {sat['client_cpu_s'] * 1e3 / max(1, sat['requests']):.3f} ms/req; "
              f"worker CPU split {split} s; db {run['database']}")
    print("  (web ms: CPU of gunicorn master + workers; db ms: CPU of this database's client "
          "backends;\n   WAL is server-wide, so other databases' writes count too; p99@max is "
          "the closed loop's)")
    if "ours" in systems:
        print_targets(systems)
        for kind, rows in systems["ours"].get("hot_spots", {}).items():
            print(f"\nhot spots, {kind} (share of samples, py-spy on every worker):")
            for frame, share in rows:
                print(f"  {share * 100:5.1f}%  {frame}")


def print_targets(systems: dict) -> None:
    def rate(name: str) -> float:
        sat = systems[name]["saturation"]
        return float(sat["requests"] / sat["seconds"])

    ours_rate, ours_p99 = rate("ours"), systems["ours"]["fixed_rate"]["p99_ms"]
    checks = [(f"max ≥ {TARGET_RATE:.0f}/s", ours_rate >= TARGET_RATE, f"{ours_rate:.0f}/s"),
              (f"p99 at fixed rate ≤ {TARGET_P99_MS:.0f} ms", ours_p99 <= TARGET_P99_MS,
               f"{ours_p99:.1f} ms")]
    if "floor" in systems:
        ratio = ours_rate / rate("floor")
        checks.append((f"≥ {TARGET_RATIO}x the floor", ratio >= TARGET_RATIO, f"{ratio:.2f}x"))
    print("targets: " + "; ".join(f"{what}: {value} {'met' if ok else 'MISSED'}"
                                  for what, ok, value in checks))


if __name__ == "__main__":
    sys.exit(main())
