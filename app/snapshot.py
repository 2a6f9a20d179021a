"""One snapshot of the gateway's state, read from Postgres: the CLI, /readyz and /metrics
all show the same figures, read the same way.

Also where a role's health is judged (the workers only report; see worker/health.py):
a dispatcher whose loop stopped going round is *stuck*; a role that keeps failing
or crashing with no success for a while is *failing* or *crash-looping*.
"""

from __future__ import annotations

from typing import Any

from app.pacing import next_slots
from db import admin, ops
from db import migrate as migrations
from db import reconcile as reconcile_q
from db.pool import Connection

WORKER_STALE_S = 30.0
DISPATCHER_STUCK_S = 60.0
ROLE_FAIL_AFTER_S = 120.0
FAILING_AFTER = 3
LEADER_ROLES = ("poller", "reconciler", "housekeeping")


def read_snapshot(conn: Connection) -> dict[str, Any]:
    """Queue by kind and state, lag, dead letters, workers and their roles, senders' next
    slots, the last webhook, the reconciler's last run and pending migrations."""
    workers = ops.live_workers(conn, WORKER_STALE_S)
    lag = admin.oldest_runnable_s(conn)
    webhook = admin.last_webhook_s(conn)
    return {
        "queue": admin.queue_depth(conn),
        "oldest_runnable_s": None if lag is None else round(lag, 1),
        "dead_letters": admin.dead_count(conn),
        "workers": [_worker(w) for w in workers],
        "roles": judge_roles(workers),
        "senders": [_sender(s) for s in next_slots(conn)],
        "last_webhook_s": None if webhook is None else round(webhook, 1),
        "reconciler": reconcile_q.runs(conn),
        "pending_migrations": [m.version for m in migrations.pending(conn)],
    }


def _worker(row: dict[str, Any]) -> dict[str, Any]:
    return {"worker_id": row["worker_id"], "hostname": row["hostname"], "pid": row["pid"],
            "started_at": row["started_at"], "beat_at": row["beat_at"],
            "age_s": round(float(row["age_s"]), 1),
            "roles": row["roles"]}


def _sender(row: dict[str, Any]) -> dict[str, Any]:
    return {"key": row["key"], "next_slot": row["next_slot"],
            "next_start": row["next_start"], "backlog_s": round(float(row["backlog_s"]), 1)}


def judge_roles(workers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each role's verdict (``ok``, ``warn``, ``fail``) from the live workers' reports."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for worker in workers:
        beat_age = float(worker["age_s"])
        for name, report in (worker.get("roles") or {}).items():
            seen.setdefault(name, []).append(_aged(report, beat_age, worker["worker_id"]))
    verdicts = {}
    for name, reports in sorted(seen.items()):
        if name in LEADER_ROLES:
            verdicts[name] = _leader_verdict(name, reports)
        elif name == "dispatcher":
            verdicts[name] = _dispatcher_verdict(reports)
        else:
            verdicts[name] = _shared_verdict(reports)
    return verdicts


def _aged(report: dict[str, Any], beat_age: float, worker_id: str) -> dict[str, Any]:
    """A report with its ages counted to now (they were ages when the heartbeat was written)."""
    def age(key: str) -> float | None:
        value = report.get(key)
        return None if value is None else round(float(value) + beat_age, 1)

    return {"worker_id": worker_id, "ok_age_s": age("ok_age_s"),
            "tick_age_s": age("tick_age_s"), "failures": int(report.get("failures") or 0),
            "crashes": int(report.get("crashes") or 0), "error": report.get("error"),
            "leader": report.get("leader")}


def _failing(report: dict[str, Any]) -> str | None:
    """``crash-looping`` / ``failing`` when a role keeps failing with no recent success."""
    stale = report["ok_age_s"] is None or report["ok_age_s"] > ROLE_FAIL_AFTER_S
    if report["crashes"] >= FAILING_AFTER:
        return "crash-looping"
    if report["failures"] >= FAILING_AFTER and stale:
        return "failing"
    return None


def _verdict(status: str, report: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, **extra}
    if report is not None:
        out.update({k: report[k] for k in ("worker_id", "ok_age_s", "failures", "crashes",
                                            "error")})
    return out


def _leader_verdict(name: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    leaders = [r for r in reports if r["leader"]]
    if not leaders:
        # Between two leaders (a crash, a restart) for a moment; the poller matters most.
        return _verdict("warn" if name == "poller" else "ok", None,
                        detail=f"no worker holds the {name} role right now")
    leader = leaders[0]
    problem = _failing(leader)
    if problem:
        return _verdict("fail", leader, detail=f"{name} is {problem}")
    return _verdict("warn" if leader["failures"] else "ok", leader)


def _dispatcher_verdict(reports: list[dict[str, Any]]) -> dict[str, Any]:
    for report in reports:
        tick = report["tick_age_s"]
        if tick is not None and tick > DISPATCHER_STUCK_S:
            return _verdict("fail", report, detail=f"dispatcher stuck for {tick:.0f}s")
        problem = _failing(report)
        if problem:
            return _verdict("fail", report, detail=f"dispatcher is {problem}")
    return _verdict("ok", None, workers=len(reports))


def _shared_verdict(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """A job role every worker runs (sends, status sync, inbound posts)."""
    failing = [(r, _failing(r)) for r in reports]
    bad = [(r, p) for r, p in failing if p]
    if bad and len(bad) == len(reports):
        report, problem = bad[0]
        return _verdict("fail", report, detail=f"{problem} on every worker")
    if bad or any(r["failures"] for r in reports):
        worst = max(reports, key=lambda r: r["failures"])
        return _verdict("warn", worst)
    return _verdict("ok", None, workers=len(reports))
