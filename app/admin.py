"""The admin API (``/admin/...``): the CLI's operations over HTTP, for dashboards and scripts.

Bearer ADMIN_TOKEN (constant-time compare); 404 for everything when it is unset.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

from app import operations as ops
from app.bearer import require_bearer
from app.compliance import OPTED_IN, OPTED_OUT
from app.config import is_e164
from app.consent import record_consent
from app.services import Services

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _services() -> Services:
    services: Services = current_app.extensions["services"]
    return services


@bp.before_request
def require_admin_token() -> Any:
    return require_bearer(_services().settings.admin_token, "admin")


@bp.get("/status")
def status() -> Any:
    with _services().db.connection() as conn:
        return jsonify(ops.queue_status(conn))


@bp.get("/dead-letters")
def dead_letters() -> Any:
    limit = request.args.get("limit", "100")
    if not limit.isdigit():
        abort(400, description="limit must be a positive integer")
    with _services().db.connection() as conn:
        rows = ops.dead_letters(conn, kind=request.args.get("kind"),
                                error=request.args.get("error"), limit=int(limit))
    return jsonify({"items": rows})


@bp.get("/dead-letters/<int:job_id>")
def dead_letter(job_id: int) -> Any:
    with _services().db.connection() as conn:
        job = ops.show_job(conn, job_id)
    if job is None:
        abort(404, description=f"no job {job_id}")
    return jsonify(job)


@bp.post("/dead-letters/<int:job_id>/<action>")
def act_on_one(job_id: int, action: str) -> Any:
    return _act(action, [job_id])


@bp.post("/dead-letters/<action>")
def act_on_matching(action: str) -> Any:
    """Replay or discard every dead letter matching ``{"kind", "error"}`` (both optional)."""
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        abort(400, description="body must be a JSON object")
    with _services().db.connection() as conn:
        ids = [r["id"] for r in ops.dead_letters(conn, kind=body.get("kind"),
                                                 error=body.get("error"), limit=100_000)]
    return _act(action, ids)


def _act(action: str, ids: list[int]) -> Any:
    if action not in ("replay", "discard"):
        abort(404)
    operation = ops.replay if action == "replay" else ops.discard
    with _services().db.transaction() as conn:
        done = operation(conn, ids, source="api")
    return jsonify({{"replay": "replayed", "discard": "discarded"}[action]:
                    [r["id"] for r in done]})


@bp.get("/messages/<ref>/trace")
def trace(ref: str) -> Any:
    with _services().db.connection() as conn:
        found = ops.trace(conn, ref)
    if found is None:
        abort(404, description=f"nothing known about {ref}")
    return jsonify(found)


@bp.get("/consent/<number>")
def get_consent(number: str) -> Any:
    if not is_e164(number):
        abort(400, description="number must be E.164")
    with _services().db.connection() as conn:
        return jsonify(ops.consent_of(conn, number))


@bp.put("/consent/<number>")
def set_consent(number: str) -> Any:
    body = request.get_json(silent=True)
    if not is_e164(number):
        abort(400, description="number must be E.164")
    if not isinstance(body, dict) or body.get("status") not in (OPTED_IN, OPTED_OUT):
        abort(400, description='body must be {"status": "opted_in" | "opted_out", '
                               '"evidence": {...}}')
    evidence = body.get("evidence") if isinstance(body.get("evidence"), dict) else {}
    with _services().db.transaction() as conn:
        previous = record_consent(conn, number, body["status"], source="api", evidence=evidence)
    return jsonify({"phone_number": number, "status": body["status"], "previous": previous})
