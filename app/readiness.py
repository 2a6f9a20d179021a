"""Readiness: can the gateway as a whole do its job right now?

Each check answers ``ok``, ``warn`` (worth a look, still ready) or ``fail``
(not ready: /readyz answers 503).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from app.errors import DatabaseUnavailable
from app.logs import event
from app.services import Services
from app.snapshot import WORKER_STALE_S, read_snapshot

log = logging.getLogger(__name__)

QUEUE_LAG_FAIL_S = 600.0
QUEUE_LAG_WARN_S = 60.0
TLS_WARN_DAYS = 14.0
TLS_CACHE_S = 3600.0


def readiness(services: Services) -> dict[str, Any]:
    """Every check and the verdict: ``{"ready": bool, "checks": {...}}``.

    Unauthenticated: no host, role or error text of the database ever appears
    here (those go to the log).
    """
    checks: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        with services.db.connection() as conn:
            snapshot = read_snapshot(conn)
        checks["database"] = {"status": "ok",
                              "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
        checks.update(_snapshot_checks(snapshot))
    except DatabaseUnavailable as exc:
        event(log, "readyz.database_unavailable", logging.WARNING, error=str(exc))
        checks["database"] = {"status": "fail", "error": "database unavailable"}
    url = services.settings.public_base_url
    if url.startswith("https://"):
        checks["tls_certificate"] = tls_check(url)
    ready = all(c["status"] != "fail" for c in checks.values())
    return {"ready": ready, "checks": checks}


def _snapshot_checks(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pending = snap["pending_migrations"]
    lag = snap["oldest_runnable_s"]
    roles = snap["roles"]
    worst = max((r["status"] for r in roles.values()), key=_SEVERITY.index, default="ok")
    return {
        "migrations": {"status": "fail" if pending else "ok", "pending": pending},
        "workers": {"status": "ok" if snap["workers"] else "fail",
                    "live": len(snap["workers"]), "stale_after_s": WORKER_STALE_S},
        "roles": {"status": worst, "roles": roles},
        "queue_lag": {"status": _grade(lag or 0.0, QUEUE_LAG_WARN_S, QUEUE_LAG_FAIL_S),
                      "oldest_runnable_s": lag},
        "dead_letters": {"status": "warn" if snap["dead_letters"] else "ok",
                         "count": snap["dead_letters"]},
        "last_webhook": {"status": "ok", "age_s": snap["last_webhook_s"]},
    }


_SEVERITY = ["ok", "warn", "fail"]


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
    """Days until the certificate ``host:port`` presents expires (not verified: expiry only).

    Written with a plain socket and SSLContext rather than ssl.get_server_certificate:
    gevent's patched version of that function takes no ``timeout``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we read the expiry; trust is the platform's job
    with socket.create_connection((host, port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError("the server sent no certificate")
    pem = ssl.DER_cert_to_PEM_cert(der)
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        # The stdlib decodes a PEM file into the same dict getpeercert() returns.
        info = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    finally:
        os.unlink(path)
    return (ssl.cert_time_to_seconds(info["notAfter"]) - time.time()) / 86400.0

