"""``POST /cxone/outbound``: push mode, a Studio flow posts agent replies here.

Bearer CXONE_WEBHOOK_TOKEN (constant-time compare; 401 otherwise; 404 when the
variable is unset). The Message is validated (400 naming the bad field) and
enqueued with the poller's dedupe key, so push and poll never send twice.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.bearer import require_bearer
from app.cxone import InvalidReply
from app.cxone.open_messaging import POLLABLE_STATUSES, parse_message
from app.http_body import json_body
from app.outbound import enqueue_replies
from app.services import current_services

bp = Blueprint("cxone_push", __name__)


@bp.post("/cxone/outbound")
def push_outbound() -> Any:
    services = current_services()
    refused = require_bearer(services.settings.cxone_webhook_token, "cxone-push")
    if refused is not None:
        return refused
    data = json_body()
    if not isinstance(data, dict):
        return jsonify({"error": "bad_request",
                        "message": "body must be a JSON object (Content-Type: application/json)"}
                       ), 400
    if data.get("status") not in POLLABLE_STATUSES:
        return _invalid("status", "must be PENDING (only new agent replies are sent)")
    try:
        reply = parse_message(data)
    except InvalidReply as exc:
        return _invalid(exc.field, exc.reason)
    with services.db.transaction() as conn:
        new = enqueue_replies(conn, services.settings, [reply], source="push") > 0
    return jsonify({"status": "accepted", "id": reply.message_id, "duplicate": not new}), 202


def _invalid(field: str, reason: str) -> Any:
    return jsonify({"error": "invalid_message", "field": field,
                    "message": f"{field} {reason}"}), 400
