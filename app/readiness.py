"""Readiness: can the gateway as a whole do its job right now?

Each check answers ``ok``, ``warn`` (worth a look, still ready) or ``fail``
(not ready: /readyz answers 503).
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from app.errors import DatabaseUnavailable
from app.services import Services
from db import admin, ops
from db import migrate as migrations

WORKER_STALE_S = 30.0
QUEUE_LAG_FAIL_S = 600.0
QUEUE_LAG_WARN_S = 60.0
TLS_WARN_DAYS = 14.0
TLS_CACHE_S = 3600.0


def readiness(services: Services) -> dict[str, Any]:
    """Every check and the verdict: ``{"ready": bool, "checks": {...}}``."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        with services.db.connection() as conn:
            ops.now(conn)
            checks["database"] = {"status": "ok",
                                  "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
            checks.update(_database_checks(conn))
    except DatabaseUnavailable as exc:
        checks["database"] = {"status": "fail", "error": str(exc)}
    url = services.settings.public_base_url
    if url.startswith("https://"):
        checks["tls_certificate"] = tls_check(url)
    ready = all(c["status"] != "fail" for c in checks.values())
    return {"ready": ready, "checks": checks}


def _database_checks(conn: Any) -> dict[str, dict[str, Any]]:
    pending = [m.version for m in migrations.pending(conn)]
    workers = ops.live_workers(conn, WORKER_STALE_S)
    lag = admin.oldest_runnable_s(conn)
    dead = admin.dead_count(conn)
    webhook = admin.last_webhook_s(conn)
    return {
        "migrations": {"status": "fail" if pending else "ok", "pending": pending},
        "workers": {"status": "ok" if workers else "fail", "live": len(workers),
                    "stale_after_s": WORKER_STALE_S},
        "queue_lag": {"status": _grade(lag or 0.0, QUEUE_LAG_WARN_S, QUEUE_LAG_FAIL_S),
                      "oldest_runnable_s": None if lag is None else round(lag, 1)},
        "dead_letters": {"status": "warn" if dead else "ok", "count": dead},
        "last_webhook": {"status": "ok",
                         "age_s": None if webhook is None else round(webhook, 1)},
    }


def _grade(value: float, warn: float, fail: float) -> str:
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


_tls_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_tls_lock = threading.Lock()


def tls_check(url: str, *, now: float | None = None) -> dict[str, Any]:
    """Days until the certificate served at ``url`` expires (cached for an hour)."""
    now = time.time() if now is None else now
    with _tls_lock:
        cached = _tls_cache.get(url)
        if cached and now - cached[0] < TLS_CACHE_S:
            return cached[1]
    parts = urlsplit(url)
    try:
        days = tls_days_left(parts.hostname or "", parts.port or 443)
        result: dict[str, Any] = {
            "status": "fail" if days <= 0 else "warn" if days < TLS_WARN_DAYS else "ok",
            "days_left": round(days, 1)}
    except (OSError, ssl.SSLError, ValueError) as exc:
        result = {"status": "warn", "error": f"could not read the certificate: {exc}"}
    with _tls_lock:
        _tls_cache[url] = (now, result)
    return result


def tls_days_left(host: str, port: int, timeout: float = 5.0) -> float:
    """Days until the certificate ``host:port`` presents expires (not verified: expiry only)."""
    pem = ssl.get_server_certificate((host, port), timeout=timeout)
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        # The stdlib decodes a PEM file into the same dict getpeercert() returns.
        info = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    finally:
        os.unlink(path)
    return (ssl.cert_time_to_seconds(info["notAfter"]) - time.time()) / 86400.0

