"""Prometheus instruments (prometheus-client) shared by web and worker.

The web process runs several gunicorn workers: gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before any worker starts, so every worker writes its
samples there and ``/metrics`` adds them up (prometheus-client multiprocess
mode). Queue figures come from Postgres at scrape time (see app.health).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)

OUTSIDE_CALL_SECONDS = Histogram(
    "smsgw_outside_call_seconds", "Latency of calls to CXone and Twilio",
    ["system", "operation"], buckets=_LATENCY_BUCKETS)
SENDS = Counter(
    "smsgw_sends_total", "Outbound send attempts by outcome and Twilio error code",
    ["outcome", "error_code"])
RECEIPTS = Counter(
    "smsgw_receipts_total", "Twilio status callbacks received, by status and result",
    ["status", "result"])
WEBHOOK_SECONDS = Histogram(
    "smsgw_webhook_seconds", "Time to answer a webhook", ["endpoint", "status"],
    buckets=_LATENCY_BUCKETS)
THROTTLE_WAITS = Counter(
    "smsgw_throttle_waits_total", "Sends that had to wait for their sender's next slot",
    ["sender"])
THROTTLE_WAIT_SECONDS = Counter(
    "smsgw_throttle_wait_seconds_total", "Seconds sends waited for their sender's slot",
    ["sender"])
CONSENT_CHANGES = Counter(
    "smsgw_consent_changes_total", "Consent ledger changes", ["status", "source"])
DEAD_LETTERS = Counter(
    "smsgw_dead_letters_total", "Jobs moved to the dead-letter state", ["kind"])
JOBS = Counter(
    "smsgw_jobs_total", "Jobs run by the worker, by kind and result", ["kind", "result"])
SEGMENTS = Counter(
    "smsgw_segments_total", "SMS segments handed to Twilio, by encoding (what carriers bill)",
    ["encoding"])
REFUSED_BUSY = Counter(
    "smsgw_web_refused_busy_total",
    "Requests the web tier refused at once (503) because it had too many in progress")
CXONE_UPDATES = Counter(
    "smsgw_cxone_updates_total", "CXone status updates by status and result",
    ["status", "result"])


def observe_call(system: str, operation: str, seconds: float) -> None:
    """Record the latency of one call to an outside system."""
    OUTSIDE_CALL_SECONDS.labels(system, operation).observe(seconds)


class QueueCollector:
    """Figures read from Postgres at scrape time (app/snapshot.py): the same in every process."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        from app.errors import DatabaseUnavailable
        from app.snapshot import read_snapshot

        up = GaugeMetricFamily("smsgw_database_up", "1 when Postgres answered this scrape")
        try:
            with self.services.db.connection() as conn:
                snap = read_snapshot(conn)
        except DatabaseUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queue_metrics(snap)
        yield from _role_metrics(snap["roles"])


def _queue_metrics(snap: dict[str, Any]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("smsgw_queue_jobs", "Jobs by kind and state", labels=["kind", "state"])
    dead = GaugeMetricFamily("smsgw_dead_letter_jobs", "Jobs in the dead-letter state",
                             labels=["kind"])
    for row in snap["queue"]:
        jobs.add_metric([row["kind"], row["state"]], row["jobs"])
        if row["state"] == "dead":
            dead.add_metric([row["kind"]], row["jobs"])
    yield jobs
    yield dead
    yield GaugeMetricFamily("smsgw_queue_oldest_runnable_seconds",
                            "Age of the oldest job that could run now",
                            value=snap["oldest_runnable_s"] or 0.0)
    yield GaugeMetricFamily("smsgw_workers_live", "Worker processes with a fresh heartbeat",
                            value=len(snap["workers"]))
    backlog = GaugeMetricFamily("smsgw_sender_backlog_seconds",
                                "How far ahead a sender's next free slot is", labels=["sender"])
    for row in snap["senders"]:
        backlog.add_metric([row["key"]], row["backlog_s"])
    yield backlog
    if snap["last_webhook_s"] is not None:
        yield GaugeMetricFamily("smsgw_last_webhook_age_seconds",
                                "Seconds since Twilio last called a webhook",
                                value=snap["last_webhook_s"])


def _role_metrics(roles: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    healthy = GaugeMetricFamily(
        "smsgw_role_healthy", "1 unless the role is stuck, failing or crash-looping",
        labels=["role"])
    failures = GaugeMetricFamily(
        "smsgw_role_consecutive_failures", "Failures (and crashes) since the role last "
        "succeeded", labels=["role"])
    age = GaugeMetricFamily(
        "smsgw_role_last_success_age_seconds", "Seconds since the role last succeeded",
        labels=["role"])
    for name, verdict in roles.items():
        healthy.add_metric([name], 0 if verdict["status"] == "fail" else 1)
        failures.add_metric([name], verdict.get("failures") or 0)
        if verdict.get("ok_age_s") is not None:
            age.add_metric([name], verdict["ok_age_s"])
    yield healthy
    yield failures
    yield age


def render(services: Any) -> tuple[bytes, str]:
    """The Prometheus text exposition of this process (or all gunicorn workers) plus queues."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (OUTSIDE_CALL_SECONDS, SENDS, RECEIPTS, WEBHOOK_SECONDS, THROTTLE_WAITS,
                          THROTTLE_WAIT_SECONDS, CONSENT_CHANGES, DEAD_LETTERS, JOBS,
                          CXONE_UPDATES, SEGMENTS):
            registry.register(collector)
    registry.register(QueueCollector(services))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
