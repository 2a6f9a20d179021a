"""``/healthz`` (alive), ``/readyz`` (ready, with every check) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from app import metrics
from app.bearer import bearer_matches, unauthorized
from app.readiness import readiness
from app.services import current_services

bp = Blueprint("health", __name__)



@bp.get("/healthz")
def healthz() -> Any:
    """Liveness only: no database call, so a slow database never restarts the web process."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Database, migrations, worker heartbeats, queue lag, dead letters, webhooks, TLS."""
    report = readiness(current_services())
    return jsonify(report), 200 if report["ready"] else 503


@bp.get("/metrics")
def metrics_endpoint() -> Any:
    """Prometheus text format: this process's (or every gunicorn worker's) samples + queues.

    With METRICS_TOKEN set it needs ``Authorization: Bearer`` (401 otherwise); unset, it is
    open, as Prometheus on a private network expects.
    """
    services = current_services()
    token = services.settings.metrics_token
    if token and not bearer_matches(request.headers.get("Authorization"), token):
        return unauthorized("metrics")
    body, content_type = metrics.render(services)
    return Response(body, content_type=content_type)
