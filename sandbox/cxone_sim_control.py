"""The CXone simulator's control API: JSON under ``/_sandbox/``, no authentication.

Tests and the demo use it to add agent replies, manage conversations, set fault
switches, and read back what the gateway sent (status PUTs, inbound posts,
request counts).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request

from sandbox.control import add_fault_routes, answer, json_body
from sandbox.cxone_sim_model import ApiError, require_object
from sandbox.cxone_sim_state import CxoneSimState
from sandbox.files import add_file_routes

log = logging.getLogger(__name__)

control = Blueprint("cxone_control", __name__, url_prefix="/_sandbox")


def _state() -> CxoneSimState:
    state: CxoneSimState = current_app.extensions["cxone_sim"]
    return state


def _body() -> Any:
    """The JSON body; an empty body is ``{}``; anything else that is not JSON is a 400."""
    return json_body(object_only=False)


_answer = answer
add_fault_routes(control, lambda: _state().faults, "cxone_sim")


def _token_is_live() -> bool:
    try:
        _state().check_token(request.headers.get("Authorization"))
    except ApiError:
        return False
    return True


add_file_routes(control, lambda: _state().files, _token_is_live, lambda: _state().faults,
                lambda: _state().log)


@control.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _answer({"error": exc.error, "message": exc.message}, exc.status)


@control.post("/reset")
def reset() -> Response:
    _state().reset()
    log.info(json.dumps({"event": "cxone_sim.reset"}))
    return _answer({"reset": True})


@control.post("/replies")
def add_replies() -> Response:
    return _answer({"items": _state().add_replies(_body(), request.host_url.rstrip("/"))}, 201)


@control.get("/conversations")
def list_conversations() -> Response:
    return _answer({"items": _state().list_conversations()})


@control.post("/conversations")
def create_conversation() -> Response:
    body = require_object(_body())
    return _answer(_state().create_conversation({"channel": "SMS", **body}), 201)


@control.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    return _answer(_state().conversation_with_messages(conversation_id))


@control.post("/conversations/<conversation_id>/close")
def close_conversation(conversation_id: str) -> Response:
    return _answer(_state().close_conversation(conversation_id))


@control.get("/messages")
def list_messages() -> Response:
    return _answer({"items": _state().list_messages(request.args)})


@control.get("/messages/<message_id>")
def get_message(message_id: str) -> Response:
    return _answer(_state().get_message(message_id))


@control.get("/status-updates")
def status_updates() -> Response:
    return _answer({"items": _state().status_updates()})


@control.get("/inbound")
def inbound_posts() -> Response:
    return _answer({"items": _state().inbound_posts()})


@control.get("/attachments")
def inbound_attachments() -> Response:
    return _answer({"items": _state().inbound_attachments()})


@control.get("/stats")
def stats() -> Response:
    return _answer(_state().log.stats())


@control.get("/requests")
def requests_log() -> Response:
    return _answer({"items": _state().log.items(request.args.get("endpoint") or None)})


@control.post("/expire-tokens")
def expire_tokens() -> Response:
    return _answer({"expired": _state().expire_tokens()})


@control.get("/config")
def get_config() -> Response:
    return _answer(_state().config_json())


@control.post("/config")
def update_config() -> Response:
    return _answer(_state().update_config(_body()))

