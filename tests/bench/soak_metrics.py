"""What the long soak (tests/bench/soak_long.py) measures as it goes, and how it judges the trend.

A sample holds, per gateway process (one *series* per pid: a process restarted
after a kill is a new series), its RSS, CPU (% of one core since the last
sample) and open file descriptors; the simulators' RSS and CPU; Postgres's CPU
(all its processes) and connections by application_name; rows, size and dead
tuples of the outbox and dedupe tables; and the queue's lag (age of the oldest
due job, and how many are due).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

MB = 1024 * 1024
QUIET_S = 30.0  # a report this long after a kill or a Postgres restart counts as quiet
SAMPLER_APP = "smsgw-soak-sampler"
# name shown -> table: the outbox, the dedupe tables (receipts, inbound, idempotency
# keys, DFO replies), the status updates queued to CXone, and the records kept for good.
TABLES = {"outbox": "outbox", "receipts": "twilio_receipts", "inbound": "inbound_messages",
          "idempotency": "idempotency_keys", "dfo_replies": "dfo_replies",
          "status_updates": "cxone_status_updates", "state": "sms_gateway_state",
          "twilio_msgs": "twilio_messages", "audit": "audit_log"}

QUEUE_SQL = """
SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
       COALESCE(EXTRACT(EPOCH FROM now() - min(run_at) FILTER (
           WHERE state = 'queued' AND run_at <= now())), 0)::float AS lag_s,
       count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'dead') AS dead
FROM outbox"""
DUE_BY_KIND_SQL = """
SELECT kind, count(*), EXTRACT(EPOCH FROM now() - min(run_at))::float
FROM outbox WHERE state = 'queued' AND run_at <= now() GROUP BY kind ORDER BY kind"""
CONNECTIONS_SQL = """
SELECT COALESCE(NULLIF(application_name, ''), '?') AS app, count(*) AS n
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND pid <> pg_backend_pid() AND application_name <> %s
GROUP BY 1 ORDER BY 1"""
TABLES_SQL = """
SELECT s.relname, s.n_live_tup, s.n_dead_tup, c.reltuples::bigint AS reltuples,
       pg_total_relation_size(s.relid) AS bytes
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.relname = ANY(%s)"""


class Database:
    """One autocommit connection for the sampler; reconnects after a Postgres restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        for attempt in range(20):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True,
                                                 application_name=SAMPLER_APP, connect_timeout=5)
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._conn = None
                time.sleep(min(0.5 * (attempt + 1), 3))
        raise RuntimeError("the sampler cannot reach Postgres")

    def queue(self) -> dict[str, Any]:
        due, lag_s, queued, dead = self.query(QUEUE_SQL)[0]
        return {"due": due, "lag_s": round(lag_s, 2), "queued": queued, "dead": dead}

    def due_by_kind(self) -> dict[str, dict[str, float]]:
        """Which kinds of job are waiting: how many are due, the oldest one's age."""
        return {kind: {"due": n, "lag_s": round(lag, 2)}
                for kind, n, lag in self.query(DUE_BY_KIND_SQL)}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class Sampler:
    """Takes the samples; remembers CPU times, so each sample shows CPU since the last one."""

    def __init__(self, db: Database, started_at: float, pgdata: Path) -> None:
        self.db, self.started_at, self.pgdata = db, started_at, pgdata
        self._cpu: dict[str, tuple[float, float]] = {}  # series -> (cpu seconds, when)

    def _cpu_pct(self, key: str, cpu_s: float) -> float | None:
        now = time.monotonic()
        before = self._cpu.get(key)
        self._cpu[key] = (cpu_s, now)
        if before is None or now <= before[1]:
            return None
        return round(100 * (cpu_s - before[0]) / (now - before[1]), 1)

    def _process(self, key: str, pid: int) -> dict[str, Any] | None:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times = proc.cpu_times()
                found = {"rss_mb": round(proc.memory_info().rss / MB, 1), "fds": proc.num_fds(),
                         "born_s": round(proc.create_time() - self.started_at, 1)}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None  # killed between the listing and the sample
        found["cpu_pct"] = self._cpu_pct(key, times.user + times.system)
        return found

    def _postgres_cpu(self) -> float | None:
        """Postgres's CPU: the postmaster, its live children and the ones it reaped."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            master = psutil.Process(pid)
            times = master.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in master.children():
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        except (OSError, ValueError, IndexError, psutil.Error):
            return None  # restarting
        return self._cpu_pct(f"postgres/{pid}", total)

    def sample(self, processes: list[tuple[str, int]], sims: dict[str, int]) -> dict[str, Any]:
        """One report's measurements; ``processes`` are (role, pid) of the gateway's."""
        series = {}
        for role, pid in processes:
            found = self._process(f"{role}/{pid}", pid)
            if found is not None:
                series[f"{role}/{pid}"] = found
        sim_samples = {name: self._process(f"sim-{name}/{pid}", pid)
                       for name, pid in sims.items()}
        apps = dict(self.db.query(CONNECTIONS_SQL, (SAMPLER_APP,)))
        rows = {r[0]: r[1:] for r in self.db.query(TABLES_SQL, (list(TABLES.values()),))}
        tables = {}
        for label, table in TABLES.items():
            live, dead, reltuples, size = rows.get(table, (0, 0, 0, 0))
            tables[label] = {"rows": live, "reltuples": reltuples, "dead": dead,
                             "mb": round(size / MB, 2)}
        return {"processes": series,
                "sims": {name: {"rss_mb": s["rss_mb"], "cpu_pct": s["cpu_pct"]} if s else None
                         for name, s in sim_samples.items()},
                "postgres_cpu_pct": self._postgres_cpu(),
                "connections": {"total": sum(apps.values()), "by_app": apps},
                "tables": tables, "queue": self.db.queue() | {"by_kind": self.db.due_by_kind()}}


def format_report(report: dict[str, Any]) -> str:
    """A few lines for the terminal: load, queue, RSS per process, connections, tables."""
    t, load, queue = report["t_s"], report["load"], report["queue"]
    lines = [f"[{int(t) // 60:02d}:{int(t) % 60:02d}] replies {load['replies']} "
             f"({load['reply_rate']}/s), texts {load['texts']} ({load['text_rate']}/s), "
             f"twilio creates {load['twilio_creates']}, kills {load['kills']}, "
             f"pg restarts {load['pg_restarts']} | due {queue['due']}, lag {queue['lag_s']} s "
             f"(max since last {report['max_lag_s']} s), queued {queue['queued']}, "
             f"dead {queue['dead']}" + "".join(
                 f"; {kind} {k['due']} due {k['lag_s']} s" for kind, k in queue["by_kind"].items()),
             "  feed calls (ms) " + ", ".join(f"{kind} p50 {t['p50']} p95 {t['p95']} max {t['max']}"
                                           for kind, t in load["call_ms"].items())]
    procs = "  ".join(f"{name} {p['rss_mb']}MB {p['cpu_pct']}% {p['fds']}fd"
                      for name, p in report["processes"].items())
    sims = "  ".join(f"{name} {s['rss_mb']}MB {s['cpu_pct']}%" if s else f"{name} gone"
                     for name, s in report["sims"].items())
    lines.append(f"  rss/cpu  {procs}")
    lines.append(f"  sims  {sims}  | postgres cpu {report['postgres_cpu_pct']}%")
    conns = report["connections"]
    apps = ", ".join(f"{app} {n}" for app, n in conns["by_app"].items())
    lines.append(f"  pg connections {conns['total']} ({apps})")
    lines.append("  tables " + " | ".join(
        f"{name} {t['rows']} rows {t['mb']}MB dead {t['dead']}"
        for name, t in report["tables"].items()))
    return "\n".join(lines)


def format_trend(reports: list[dict[str, Any]]) -> str:
    """Every report in one table, to read the trend at the end."""
    rows = ["  t      rep/s txt/s  maxlag    due conns   pg%  sims MB/cpu% (cxone, twilio)  "
            "outbox rows/MB/dead     dedupe rows (receipts/inbound/idempotency)"]
    for r in reports:
        load, t, out = r["load"], r["tables"], r["tables"]["outbox"]
        sims = "  ".join(f"{s['rss_mb']}/{s['cpu_pct']}" if s else "-"
                         for s in r["sims"].values())
        outbox = f"{out['rows']}/{out['mb']}/{out['dead']}"
        dedupe = f"{t['receipts']['rows']}/{t['inbound']['rows']}/{t['idempotency']['rows']}"
        rows.append(
            f"  {int(r['t_s']) // 60:02d}:{int(r['t_s']) % 60:02d}  {load['reply_rate']:5} "
            f"{load['text_rate']:5} {r['max_lag_s']:7} {r['queue']['due']:6} "
            f"{r['connections']['total']:5} {r['postgres_cpu_pct']!s:>5}  {sims:28}  "
            f"{outbox:22}  {dedupe}")
    return "\n".join(rows)


def format_memory(verdict: Verdict) -> str:
    """Each judged process: its baseline, its last report, the growth."""
    rows = []
    for name, j in verdict.detail.get("judged", {}).items():
        rows.append(f"  {name:22} {j['baseline_mb']:7} MB at {j['baseline_t_s']:6} s -> "
                    f"{j['last_mb']:7} MB at {j['last_t_s']:6} s  {100 * j['growth']:+.1f}%")
    young = verdict.detail.get("too_young", [])
    if young:
        rows.append(f"  too young to judge: {', '.join(young)}")
    return "\n".join(rows)


@dataclass
class Verdict:
    """One pass criterion: what was measured, the bound, whether it held."""

    name: str
    passed: bool
    measured: Any
    bound: Any
    detail: dict[str, Any] = field(default_factory=dict)


def _baseline(samples: list[tuple[float, dict[str, Any]]], born_s: float,
              warmup_s: float) -> tuple[float, dict[str, Any]] | None:
    return next(((t, s) for t, s in samples if t >= born_s + warmup_s), None)


def judge_memory(reports: list[dict[str, Any]], warmup_s: float,
                 max_growth: float) -> Verdict:
    """RSS growth of each process from its warm-up baseline to its last report.

    A series' baseline is its first report at least ``warmup_s`` after it started
    (so a process restarted by a kill gets its own warm-up); a series without a
    report after its baseline is too young to judge and is only listed.
    """
    samples: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for report in reports:
        for name, proc in report["processes"].items():
            samples.setdefault(name, []).append((report["t_s"], proc))
    judged, young = {}, []
    for name, points in samples.items():
        base = _baseline(points, points[0][1]["born_s"], warmup_s)
        last_t, last = points[-1]
        if base is None or last_t <= base[0]:
            young.append(name)
            continue
        growth = last["rss_mb"] / base[1]["rss_mb"] - 1
        judged[name] = {"baseline_mb": base[1]["rss_mb"], "baseline_t_s": base[0],
                        "last_mb": last["rss_mb"], "last_t_s": last_t,
                        "growth": round(growth, 4)}
    worst = max((j["growth"] for j in judged.values()), default=math.nan)
    return Verdict("memory_flat", bool(judged) and worst <= max_growth, worst, max_growth,
                   {"judged": judged, "too_young": young})


def judge_connections(reports: list[dict[str, Any]], warmup_s: float, max_growth: float,
                      slack: int) -> Verdict:
    """Gateway connections in pg_stat_activity: the last quiet report against the first
    quiet one after the warm-up.

    A report is quiet when no kill or Postgres restart happened in the QUIET_S
    before it: a process that just started (or a pool that just lost every
    connection) has not opened its connections yet. Pools keep idle connections
    up to their size, so the count follows the busiest moment; ``slack``
    connections on top of the percentage absorb that, a leak does not fit in it.
    """
    quiet = [r for r in reports if r["load"]["since_disruption_s"] >= QUIET_S]
    base = next((r for r in quiet if r["t_s"] >= warmup_s), None)
    if base is None or base is quiet[-1]:
        return Verdict("connections_flat", False, None, max_growth,
                       {"why": "fewer than two quiet reports after the warm-up"})
    first, last = base["connections"]["total"], quiet[-1]["connections"]["total"]
    bound = math.floor(first * (1 + max_growth)) + slack
    return Verdict("connections_flat", last <= bound, last, bound,
                   {"baseline": first, "baseline_t_s": base["t_s"],
                    "last_t_s": quiet[-1]["t_s"],
                    "max": max(r["connections"]["total"] for r in reports)})


def judge_lag(reports: list[dict[str, Any]], max_lag_s: float) -> Verdict:
    """The oldest due job's age, sampled every few seconds, never above ``max_lag_s``."""
    worst = max((r["max_lag_s"] for r in reports), default=math.nan)
    return Verdict("lag_bounded", worst <= max_lag_s, worst, max_lag_s,
                   {"at_t_s": [r["t_s"] for r in reports if r["max_lag_s"] == worst]})


def judge_rate(name: str, fed: int, seconds: float, target: float) -> Verdict:
    """The load was applied: at least 95% of ``target`` per second over the run."""
    rate = fed / seconds if seconds > 0 else 0.0
    return Verdict(name, rate >= 0.95 * target, round(rate, 2), round(0.95 * target, 2))


def judge_exits(reports: list[dict[str, Any]]) -> Verdict:
    """No gateway process exited unless the soak killed it."""
    exits = reports[-1]["load"]["unexpected_exits"] if reports else []
    return Verdict("no_unexpected_exits", not exits, len(exits), 0, {"exits": exits})
