"""The hour-long soak: steady load, realistic latencies, faults and kill -9s, measured as it goes.

    .venv/bin/python tests/bench/soak_long.py --minutes 60 --json soak-long.json
    .venv/bin/python tests/bench/soak_long.py --minutes 4 --report-every-s 60 \\
        --kill-every-s 50 --warmup-s 60          # a short run while developing

Agent replies (--reply-rate, 30/s) and customer texts (--text-rate, 5/s) flow
for --minutes while Twilio answers creates in ~150 ms (jitter 40 ms) and CXone
its API in ~80 ms (jitter 30 ms); both simulators inject faults as
tests/bench/soak.py does; every --kill-every-s a gateway process gets kill -9
and comes back, and Postgres restarts (--postgres-restarts, evenly spaced).

Every --report-every-s it prints, and keeps: RSS, Postgres sockets and fds of
each gateway process (the gunicorn master, each gunicorn worker, each worker;
one series per pid), the simulators' RSS, Postgres connections by
application_name, rows / size / dead tuples of the outbox and dedupe tables,
and the queue lag (oldest due job's age, sampled every --lag-sample-s, and the
due count).

At the end it settles and checks as soak.py does (0 lost, 0 duplicated, 0 wrong
final status, no text lost or duplicated) and judges (tests/bench/soak_metrics.py):
memory flat (each process's RSS grew <= --max-growth from its warm-up baseline:
its first report --warmup-s after it started), connections flat (in reports at
least 30 s after a kill or restart: the last one <= the first after the warm-up
x (1 + --max-growth) + --connection-slack), lag bounded (<= --max-lag-s), the
load applied (>= 95% of each rate), and no gateway process exited unless killed
(one that does is restarted and listed). Exit 1 when anything fails.

Kills rotate over --kill-targets, never in the 30 s before a report (a process
that just restarted has not opened its connections yet). The default (worker1,
web-worker: the youngest gunicorn worker, which the master replaces) leaves
worker0, the gunicorn master and the older gunicorn worker alive for the whole
run, so their memory is judged over the hour; a restarted process is a new
series, judged from its own warm-up when it lives long enough, else listed as
too young. ``worker0,worker1,web`` rotates over everything, as soak.py kills.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from tests.bench import soak_metrics as metrics  # noqa: E402
from tests.bench.soak import (  # noqa: E402
    _clear_faults,
    _Gateway,
    _inject_dfo_faults,
    _inject_faults,
    _Sim,
    soak_env,
    start_sims,
)
from tests.bench.soak_checks import (  # noqa: E402
    SoakReport,
    accepted,
    count_dfo_problems,
    count_problems,
    diagnose,
    sent_bodies,
)
from tests.bench.soak_load import Load  # noqa: E402
from tests.harness import free_port, start_web, start_worker  # noqa: E402
from tests.pg_instance import PrivatePostgres  # noqa: E402


def gateway_processes(gateway: _Gateway) -> list[tuple[str, int]]:
    """(role, pid) of the gunicorn master, its workers, and each worker process."""
    found = [("web-master", gateway.web.popen.pid)]
    try:
        found += [("web-worker", child.pid)
                  for child in psutil.Process(gateway.web.popen.pid).children()]
    except psutil.NoSuchProcess:
        pass
    return found + [(proc.name, proc.popen.pid) for proc in gateway.workers]


KILL_TARGETS = {"worker0", "worker1", "web-worker", "web"}


def revive(gateway: _Gateway) -> list[str]:
    """Restart any gateway process that exited without being killed; what had exited."""
    exited = []
    if not gateway.web.alive():
        exited.append(f"web-master/{gateway.web.popen.pid} (exit {gateway.web.popen.returncode}):"
                      f" {gateway.web.output()[-300:]!r}")
        gateway.web = start_web(gateway.env, gateway.web_port)
    for n, proc in enumerate(gateway.workers):
        if not proc.alive():
            exited.append(f"{proc.name}/{proc.popen.pid} (exit {proc.popen.returncode}): "
                          f"{proc.output()[-300:]!r}")
            gateway.workers[n] = start_worker(gateway.env, name=proc.name)
    return exited


def kill(gateway: _Gateway, target: str, rng: random.Random) -> str:
    """kill -9 one gateway process and bring it back; what was killed."""
    if target == "web-worker":  # the youngest: the older one lives the whole run
        try:
            children = psutil.Process(gateway.web.popen.pid).children()
            victim = max(children, key=lambda p: (p.create_time(), p.pid))
            victim.kill()
        except (ValueError, psutil.Error):
            return "no web-worker (none alive just now)"
        return f"web-worker/{victim.pid}"
    if target == "web":
        old = gateway.web.popen.pid
        gateway.web.kill9()
        time.sleep(0.3)
        gateway.web = start_web(gateway.env, gateway.web_port)
        return f"web-master/{old} and its workers"
    n = int(target.removeprefix("worker"))
    old = gateway.workers[n].popen.pid
    gateway.workers[n].kill9()
    time.sleep(rng.uniform(0.2, 1.5))
    gateway.workers[n] = start_worker(gateway.env, name=target)
    return f"{target}/{old}"


@dataclass
class Stack:
    """Everything the soak runs: Postgres, the simulators, the gateway, the sampler."""

    pg: PrivatePostgres
    cx: _Sim
    tw: _Sim
    gateway: _Gateway
    sampler: metrics.Sampler
    t0: float  # time.monotonic() when the load started


def drive(opts: argparse.Namespace, stack: Stack, load: Load, rng: random.Random,
          log: Any) -> list[dict[str, Any]]:
    """Run the load's duration: lag samples, kills, Postgres restarts and the reports."""
    t0, gateway, db = stack.t0, stack.gateway, stack.sampler.db
    end = t0 + opts.minutes * 60
    targets = itertools.cycle([t.strip() for t in opts.kill_targets.split(",") if t.strip()])
    # Evenly spaced, half a report off the reports' times.
    restarts = [min(t0 + (end - t0) * (k + 1) / (opts.postgres_restarts + 1)
                    + opts.report_every_s / 2, end - 10) for k in range(opts.postgres_restarts)]
    next_kill = t0 + opts.kill_every_s if opts.kill_every_s > 0 else math.inf
    next_report, next_lag = t0 + opts.report_every_s, t0
    reports: list[dict[str, Any]] = []
    stack.sampler.sample(gateway_processes(gateway), _sims(stack))  # CPU counts from here
    counts: dict[str, Any] = {"kills": 0, "pg_restarts": 0, "max_lag_s": 0.0, "replies": 0,
                              "texts": 0, "t": t0, "disrupted": t0, "exits": []}
    while True:
        now = time.monotonic()
        for exited in revive(gateway):
            log(f"soak: UNEXPECTED exit of {exited}; restarted")
            counts["exits"].append(f"{_clock(now - t0)} {exited}")
            counts["disrupted"] = time.monotonic()
        if now >= next_lag:
            counts["max_lag_s"] = max(counts["max_lag_s"], db.queue()["lag_s"])
            next_lag += opts.lag_sample_s
        if restarts and now >= restarts[0]:
            log(f"soak: restarting Postgres at {_clock(now - t0)}")
            stack.pg.restart()
            restarts.pop(0)
            counts["pg_restarts"] += 1
            counts["disrupted"] = time.monotonic()
        if now >= next_kill and next_report - now < metrics.QUIET_S:
            next_kill = next_report + 1  # after the report: a process just restarted would
            # not have opened its connections yet (see metrics.judge_connections)
        if now >= next_kill and now < end:
            log(f"soak: kill -9 {kill(gateway, next(targets), rng)} at {_clock(now - t0)}")
            counts["kills"] += 1
            counts["disrupted"] = time.monotonic()
            next_kill += opts.kill_every_s * rng.uniform(0.9, 1.1)
        last_report = reports[-1]["t_s"] if reports else 0.0
        if now >= next_report or (now >= end and now - t0 - last_report > 5):
            report = _report(stack, load, now, counts)
            reports.append(report)
            log(metrics.format_report(report))
            next_report += opts.report_every_s
        if now >= end:
            return reports
        wake = min(next_lag, next_kill, next_report, end, *restarts[:1])
        time.sleep(max(0.05, min(wake - time.monotonic(), 1.0)))


def _report(stack: Stack, load: Load, now: float, counts: dict[str, Any]) -> dict[str, Any]:
    interval = max(now - counts["t"], 1e-6)
    replies, texts = len(load.expected), len(load.texts)
    stats = stack.tw.get("/_sandbox/stats")
    report = {"t_s": round(now - stack.t0, 1), "max_lag_s": counts["max_lag_s"], "load": {
        "replies": replies, "reply_rate": round((replies - counts["replies"]) / interval, 1),
        "texts": texts, "text_rate": round((texts - counts["texts"]) / interval, 1),
        "twilio_creates": stats.get("create"), "kills": counts["kills"],
        "pg_restarts": counts["pg_restarts"], "errors": dict(load.errors),
        "since_disruption_s": round(now - counts["disrupted"], 1),
        "unexpected_exits": list(counts["exits"]),
        "call_ms": load.call_times_ms()}}
    report |= stack.sampler.sample(gateway_processes(stack.gateway), _sims(stack))
    report["max_lag_s"] = max(report["max_lag_s"], report["queue"]["lag_s"])
    counts.update(max_lag_s=0.0, replies=replies, texts=texts, t=now)
    return report


def _sims(stack: Stack) -> dict[str, int]:
    return {stack.cx.process.name: stack.cx.process.popen.pid,
            "twilio": stack.tw.process.popen.pid}


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


def settle_and_check(opts: argparse.Namespace, cx: _Sim, tw: _Sim, load: Load,
                     log: Any) -> tuple[SoakReport, int]:
    """Wait (up to --settle-timeout-s) for every reply to be final in CXone; then count."""
    report = SoakReport(replies=len(load.expected))
    deadline = time.monotonic() + opts.settle_timeout_s
    if opts.cxone_mode == "dfo":
        left = list(load.expected)
        while True:
            if len(left) > 100:  # one bulk view is cheaper than a request per reply
                outbound = {o["id"]: o for o in cx.get("/_sandbox/outbound")["items"]}
                left = [i for i in left if not accepted(outbound.get(i, {}))]
            else:
                left = [i for i in left if not accepted(cx.get(f"/_sandbox/outbound/{i}"))]
            if not left or time.monotonic() >= deadline:
                break
            _settling(log, len(left), deadline)
            time.sleep(3)
        outbound = {o["id"]: o for o in cx.get("/_sandbox/outbound")["items"]}
        created = Counter(m["idOnExternalPlatform"] for m in cx.get("/_sandbox/messages")["items"])
        count_dfo_problems(report, outbound, created, sent_bodies(tw), load.expected, load.texts)
        return report, len(left)
    while True:
        not_final = {m["id"] for status in ("PENDING", "SENT") for m in cx.get(
            f"/_sandbox/messages?direction=OUTBOUND&status={status}")["items"]}
        unsettled = len(not_final & load.expected.keys())
        if not unsettled or time.monotonic() >= deadline:
            break
        _settling(log, unsettled, deadline)
        time.sleep(3)
    messages = {m["id"]: m for m in cx.get("/_sandbox/messages")["items"]}
    count_problems(report, messages, sent_bodies(tw), load.expected, load.texts)
    return report, unsettled


def _settling(log: Any, left: int, deadline: float) -> None:
    if int(deadline - time.monotonic()) % 30 < 3:  # about every 30 s
        log(f"soak: settling, {left} replies not final yet")


def run_long_soak(opts: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    """Run the soak; the summary (``summary["passed"]``: every check and criterion held)."""
    rng = random.Random(opts.seed)
    pg = PrivatePostgres()
    started = time.monotonic()
    processes, gateway, db = [], None, None
    try:
        url = pg.create_database("smsgw")
        migrate.migrate(url)
        web_port = free_port()
        cx, tw = start_sims(opts.cxone_mode, web_port, **_sim_env(opts))
        processes += [cx.process, tw.process]
        env = soak_env(url, cx, tw, web_port, opts.cxone_mode,
                       OUTBOX_RETENTION_S=str(opts.outbox_retention_s),
                       **dict(item.split("=", 1) for item in opts.env))
        (_inject_dfo_faults if opts.cxone_mode == "dfo" else _inject_faults)(cx, tw)
        gateway = _Gateway(env, web_port)
        db = metrics.Database(url)
        stack = Stack(pg, cx, tw, gateway, metrics.Sampler(db, time.time(), pg.server.pgdata),
                      time.monotonic())
        load = Load(opts, cx, tw, rng, stack.t0, stack.t0 + opts.minutes * 60)
        load.start()
        reports = drive(opts, stack, load, rng, log)
        load.join()
        _clear_faults(cx, tw)
        log(f"soak: fed {len(load.expected)} replies and {len(load.texts)} texts; settling")
        checks, unsettled = settle_and_check(opts, cx, tw, load, log)
        if not checks.clean:
            checks.examples += diagnose(url, checks.examples)
        checks.kills, checks.postgres_restarts = (reports[-1]["load"]["kills"],
                                                  reports[-1]["load"]["pg_restarts"])
        checks.seconds = round(time.monotonic() - started, 1)
        return summarize(opts, reports, checks, unsettled, load)
    finally:
        if db is not None:
            db.close()
        for proc in (gateway.processes if gateway else []) + processes:
            if proc.alive():
                proc.terminate(timeout=20)
        pg.stop()
        log(f"soak: {time.monotonic() - started:.0f} s in all")


def _sim_env(opts: argparse.Namespace) -> dict[str, str]:
    cxone = {f"{prefix}_SIM_{name}": str(value) for prefix in ("CXONE", "DFO")
             for name, value in (("LATENCY_MS", opts.cxone_latency_ms),
                                 ("LATENCY_JITTER_MS", opts.cxone_jitter_ms))}
    return {"TWILIO_SIM_CREATE_LATENCY_MS": str(opts.twilio_latency_ms),
            "TWILIO_SIM_LATENCY_JITTER_MS": str(opts.twilio_jitter_ms),
            "TWILIO_SIM_STEP_DELAY_MS": str(opts.step_delay_ms), **cxone}


def summarize(opts: argparse.Namespace, reports: list[dict[str, Any]], checks: SoakReport,
              unsettled: int, load: Load) -> dict[str, Any]:
    """The checks, the criteria and the reports, as one JSON-ready dict."""
    last = reports[-1]
    criteria = [
        metrics.judge_memory(reports, opts.warmup_s, opts.max_growth),
        metrics.judge_connections(reports, opts.warmup_s, opts.max_growth,
                                  opts.connection_slack),
        metrics.judge_lag(reports, opts.max_lag_s),
        metrics.judge_exits(reports),
        metrics.judge_rate("reply_rate", last["load"]["replies"], last["t_s"], opts.reply_rate),
        metrics.judge_rate("text_rate", last["load"]["texts"], last["t_s"], opts.text_rate),
    ]
    passed = checks.clean and all(c.passed for c in criteria)
    return {"passed": passed, "checks": asdict(checks) | {"clean": checks.clean,
                                                          "unsettled": unsettled},
            "criteria": {c.name: asdict(c) for c in criteria},
            "load_errors": dict(load.errors), "options": vars(opts) | {"json": str(opts.json)},
            "reports": reports}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--minutes", type=float, default=60.0, help="how long the load runs (default 60)")
    add("--cxone-mode", choices=["open-messaging", "dfo"], default="open-messaging")
    add("--reply-rate", type=float, default=30.0, help="agent replies per second")
    add("--text-rate", type=float, default=5.0, help="customer texts per second")
    add("--report-every-s", type=float, default=300.0)
    add("--kill-every-s", type=float, default=180.0, help="0: no kills")
    add("--kill-targets", default="worker1,web-worker",
        help="rotation over worker0, worker1, web-worker (a gunicorn worker), web (all of it)")
    add("--postgres-restarts", type=int, default=1, help="evenly spaced over the run")
    add("--warmup-s", type=float, default=600.0, help="a process's baseline: its first "
        "report this long after it started")
    add("--max-growth", type=float, default=0.10, help="RSS and connections, after warm-up")
    add("--connection-slack", type=int, default=2, help="connections allowed on top")
    add("--max-lag-s", type=float, default=30.0, help="bound on the oldest due job's age")
    add("--lag-sample-s", type=float, default=10.0)
    add("--settle-timeout-s", type=float, default=600.0)
    add("--outbox-retention-s", type=int, default=600, help="OUTBOX_RETENTION_S: done jobs "
        "are deleted after this, so the outbox reaches its steady size within the hour")
    add("--twilio-latency-ms", type=float, default=150.0)
    add("--twilio-jitter-ms", type=float, default=40.0)
    add("--cxone-latency-ms", type=float, default=80.0)
    add("--cxone-jitter-ms", type=float, default=30.0)
    add("--step-delay-ms", type=int, default=250, help="Twilio's delay between statuses")
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="more gateway environment, e.g. WORKER_CONCURRENCY=32 (repeatable)")
    add("--seed", type=int, default=None)
    add("--json", type=Path, help="write the summary, with every report, here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if any("=" not in item for item in opts.env):
        print("--env takes NAME=VALUE", file=sys.stderr)
        return 2
    targets = {t.strip() for t in opts.kill_targets.split(",") if t.strip()}
    if opts.kill_every_s > 0 and (not targets or targets - KILL_TARGETS):
        print(f"--kill-targets: a list of {', '.join(sorted(KILL_TARGETS))}", file=sys.stderr)
        return 2
    summary = run_long_soak(opts, log=lambda line: print(line, flush=True))
    print("soak: every report\n" + metrics.format_trend(summary["reports"]))
    print("soak: memory of each judged process\n"
          + metrics.format_memory(metrics.Verdict(**summary["criteria"]["memory_flat"])))
    shown = {key: value for key, value in summary.items() if key != "reports"}
    print(json.dumps(shown, indent=2, default=str))
    if opts.json:
        opts.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
