"""The admin API (``/admin/...``): the CLI's operations over HTTP, for dashboards and scripts.

Bearer ADMIN_TOKEN (constant-time compare); 404 for everything when it is unset.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request

from app import operations as ops
from app.bearer import require_bearer
from app.compliance import OPTED_IN, OPTED_OUT
from app.consent import record_consent
from app.http_body import json_body
from app.inputs import InvalidInput, canonical_phone, external_id, json_value, text
from app.services import current_services

bp = Blueprint("admin", __name__, url_prefix="/admin")

MAX_LIST = 1000



@bp.before_request
def require_admin_token() -> Any:
    return require_bearer(current_services().settings.admin_token, "admin")


@bp.get("/status")
def status() -> Any:
    with current_services().db.connection() as conn:
        return jsonify(ops.queue_status(conn))


@bp.get("/dead-letters")
def dead_letters() -> Any:
    limit = request.args.get("limit", "100")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIST):
        abort(400, description=f"limit must be an integer from 1 to {MAX_LIST}")
    kind, error = _filters(request.args)
    with current_services().db.connection() as conn:
        rows = ops.dead_letters(conn, kind=kind, error=error, limit=int(limit))
    return jsonify({"items": rows})


def _filters(source: Any) -> tuple[str | None, str | None]:
    """The optional kind and error filters of a dead-letter query, bounded; 400 if odd."""
    try:
        kind = source.get("kind")
        error = source.get("error")
        return (text(kind, "kind", max_length=64) if kind else None,
                text(error, "error", max_length=200) if error else None)
    except (InvalidInput, AttributeError) as exc:
        abort(400, description=str(exc))


@bp.get("/dead-letters/<int:job_id>")
def dead_letter(job_id: int) -> Any:
    with current_services().db.connection() as conn:
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
    body = json_body(required=False) or {}
    if not isinstance(body, dict):
        abort(400, description="body must be a JSON object")
    kind, error = _filters(body)
    with current_services().db.connection() as conn:
        ids = [r["id"] for r in ops.dead_letters(conn, kind=kind, error=error, limit=100_000)]
    return _act(action, ids)


def _act(action: str, ids: list[int]) -> Any:
    if action not in ("replay", "discard"):
        abort(404)
    operation = ops.replay if action == "replay" else ops.discard
    with current_services().db.transaction() as conn:
        done = operation(conn, ids, source="api")
    return jsonify({{"replay": "replayed", "discard": "discarded"}[action]:
                    [r["id"] for r in done]})


@bp.get("/messages/<ref>/trace")
def trace(ref: str) -> Any:
    try:
        ref = external_id(ref, "message id")
    except InvalidInput as exc:
        abort(400, description=str(exc))
    with current_services().db.connection() as conn:
        found = ops.trace(conn, ref)
    if found is None:
        abort(404, description=f"nothing known about {ref}")
    return jsonify(found)


@bp.get("/consent/<number>")
def get_consent(number: str) -> Any:
    number = _number(number)
    with current_services().db.connection() as conn:
        return jsonify(ops.consent_of(conn, number))


@bp.put("/consent/<number>")
def set_consent(number: str) -> Any:
    number = _number(number)
    body = json_body()
    if not isinstance(body, dict) or body.get("status") not in (OPTED_IN, OPTED_OUT):
        abort(400, description='body must be {"status": "opted_in" | "opted_out", '
                               '"evidence": {...}}')
    evidence = body.get("evidence") if isinstance(body.get("evidence"), dict) else {}
    try:
        evidence = json_value(evidence, "evidence")
    except InvalidInput as exc:
        abort(400, description=str(exc))
    with current_services().db.transaction() as conn:
        previous = record_consent(conn, number, body["status"], source="api", evidence=evidence)
    return jsonify({"phone_number": number, "status": body["status"], "previous": previous})


def _number(raw: str) -> str:
    """The canonical form of a number in the path (so "+1…%0A" is the same number); 400."""
    try:
        return canonical_phone(raw, "number")
    except InvalidInput as exc:
        abort(400, description=str(exc))
