"""The BYOC integration box under ``/byoc`` (CXONE_MODE=dfo; 404 in other modes).

CXone calls these: a client-credentials token endpoint, the 3.0 outbound callback,
the legacy reply path and the typing indicator. Thin: check the token, parse
(app/cxone/byoc.py), one service call (app/callbacks.py), answer. A bad token is
401 with ``WWW-Authenticate: Bearer`` (CXone then fetches a token and retries; a
403 would break that flow). The admin actions are in app/byoc_actions.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from app.callbacks import accept_callback, channel_for_number, number_for_channel
from app.cxone.byoc import (
    Callback,
    CallbackError,
    callback_answer,
    parse_callback,
    redacted,
    token_request,
)
from app.http_body import json_body
from app.inputs import InvalidInput, external_id
from app.logs import event
from app.services import current_services
from db import dfo

log = logging.getLogger(__name__)

bp = Blueprint("byoc", __name__, url_prefix="/byoc")

# The raw first callbacks each process sees are logged (numbers masked, texts as their
# length): what a real tenant sends is not settled by public material.
LOG_FIRST_CALLBACKS = 5
_seen = {"callbacks": 0}
_seen_lock = threading.Lock()


@bp.before_request
def dfo_mode_only() -> None:
    if current_services().settings.cxone_mode != "dfo":
        abort(404)


@bp.post("/1.0/token")
def token() -> Any:
    """Client credentials (JSON or form) → a bearer token valid on every web process."""
    settings = current_services().settings
    form = request.get_json(silent=True) if request.is_json else request.form
    grant_type, client_id, client_secret = token_request(form or {})
    if not grant_type or not client_id or not client_secret:
        return jsonify({"error": "invalid_request"}), 400
    if grant_type != "client_credentials":
        return jsonify({"error": "unsupported_grant_type"}), 400
    assert settings.byoc_client_id and settings.byoc_client_secret
    if not (hmac.compare_digest(client_id.encode(), settings.byoc_client_id.encode())
            & hmac.compare_digest(client_secret.encode(), settings.byoc_client_secret.encode())):
        event(log, "byoc.token_refused", logging.WARNING)
        return jsonify({"error": "invalid_client"}), 401
    issued = secrets.token_urlsafe(32)
    with current_services().db.connection() as conn:
        dfo.issue_token(conn, _hash(issued), client_id=client_id,
                        ttl_s=settings.byoc_token_ttl_s)
    return jsonify({"access_token": issued, "token_type": "Bearer",
                    "expires_in": int(settings.byoc_token_ttl_s)})


@bp.post("/2.0/channel/<channel_id>/outbound")
def outbound(channel_id: str) -> Any:
    """An agent reply (DFO 3.0 outbound API): accepted, committed, then answered."""
    refused = _require_token()
    if refused is not None:
        return refused
    body = json_body()
    _log_first(body, "3.0")
    try:
        callback = parse_callback(body)
    except CallbackError as exc:
        return jsonify(exc.body()), exc.status
    message_id = _accept(_checked_channel(channel_id), callback)
    return jsonify(callback_answer(message_id, callback, datetime.now(UTC)))


@bp.post("/1.0/posts/<post_id>/messages")
def legacy_reply(post_id: str) -> Any:
    """An agent reply when the BYOC form's "DFO 3.0 outbound API" is off; the post is the
    thread, and the channel is the one of the business number in its id."""
    refused = _require_token()
    if refused is not None:
        return refused
    body = json_body()
    _log_first(body, "legacy")
    try:
        callback = parse_callback(body, thread=_segment_id(post_id, "postId"))
    except CallbackError as exc:
        return jsonify(exc.body()), exc.status
    message_id = _accept(_channel_of_thread(callback.thread), callback)
    return jsonify({"idOnExternalPlatform": message_id})


@bp.post("/1.0/channel/<channel_id>/thread/<thread_id>/sender-action")
def sender_action(channel_id: str, thread_id: str) -> Any:
    """Typing indicators: SMS has none."""
    refused = _require_token()
    if refused is not None:
        return refused
    return Response(status=204)


# -- helpers ----------------------------------------------------------------------------

def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _require_token() -> Any:
    """None when the bearer token is one we issued and still valid; else the 401."""
    scheme, _, presented = (request.headers.get("Authorization") or "").partition(" ")
    valid = False
    if scheme.lower() == "bearer" and 0 < len(presented.strip()) <= 200:
        with current_services().db.connection() as conn:
            valid = dfo.token_valid(conn, _hash(presented.strip()))
    if valid:
        return None
    response = jsonify({"error": "invalid_token", "message": "bearer token missing, unknown "
                        "or expired: get one at /byoc/1.0/token"})
    response.headers["WWW-Authenticate"] = 'Bearer realm="byoc", error="invalid_token"'
    return response, 401


def _segment_id(value: str, field: str) -> str:
    try:
        return external_id(value, field)
    except InvalidInput as exc:
        abort(_error_answer(field, exc.reason, 400))


def _checked_channel(channel_id: str) -> tuple[str, str]:
    """(channel, the number serving it); 404 naming channelId when it is not ours."""
    channel_id = _segment_id(channel_id, "channelId")
    services = current_services()
    with services.db.connection() as conn:
        number = number_for_channel(conn, services.settings, channel_id)
    if number is None:
        abort(_error_answer("channelId", f"no channel {channel_id} is connected to this "
                            "gateway (DFO_CHANNELS or the Add action)", 404))
    return channel_id, number


def _channel_of_thread(thread: str) -> tuple[str, str]:
    business, _, _ = thread.partition("_")
    services = current_services()
    with services.db.connection() as conn:
        channel = channel_for_number(conn, services.settings, "+" + business) \
            if business.isdigit() else None
    if channel is None:
        abort(_error_answer("postId", "no channel of this gateway serves the thread's number",
                            404))
    return channel, "+" + business


def _accept(channel: tuple[str, str], callback: Callback) -> str:
    channel_id, sender = channel
    services = current_services()
    with services.db.transaction() as conn:
        accepted = accept_callback(conn, services.settings, callback, channel_id=channel_id,
                                   sender=sender, source="callback")
    return accepted.message_id


def _error_answer(field: str, message: str, status: int) -> Response:
    response = jsonify(CallbackError(field, message).body())
    response.status_code = status
    return response


def _log_first(body: Any, path: str) -> None:
    with _seen_lock:
        _seen["callbacks"] += 1
        if _seen["callbacks"] > LOG_FIRST_CALLBACKS:
            return
    event(log, "byoc.callback_seen", path=path, body=redacted(body))
