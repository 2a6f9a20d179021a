"""Prometheus instruments (prometheus-client) shared by web and worker.

The web process runs several gunicorn workers: gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before any worker starts, so every worker writes its
samples there and ``/metrics`` adds them up (prometheus-client multiprocess
mode). Queue figures come from Postgres at scrape time (see app.health).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
CXONE_UPDATES = Counter(
    "smsgw_cxone_updates_total", "CXone status updates by status and result",
    ["status", "result"])


def observe_call(system: str, operation: str, seconds: float) -> None:
    """Record the latency of one call to an outside system."""
    OUTSIDE_CALL_SECONDS.labels(system, operation).observe(seconds)
