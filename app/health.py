"""``/healthz``: the process is up and serving."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness only: no database call, so a slow database never restarts the web process."""
    return jsonify({"status": "ok"})
