"""The DFO simulator's control API: JSON under ``/_sandbox/``, no authentication.

It plays the agent (replies and typing sent to the gateway's BYOC callbacks),
the admin (one-time tokens for the Add action) and the test's eyes (channels,
customer messages, status updates per message, limits, requests, faults, files).
Every endpoint is listed in docs/SANDBOX.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from sandbox.control import (
    ControlError,
    add_fault_routes,
    answer,
    bad_request,
    int_field,
    json_body,
    number_field,
    str_field,
    url_field,
)
from sandbox.dfo_sim_model import E164
from sandbox.dfo_sim_replies import parse_reply
from sandbox.dfo_sim_state import DfoSimState
from sandbox.faults import stamp
from sandbox.files import add_file_routes
from sandbox.latency import MAX_LATENCY_MS


def _state() -> DfoSimState:
    state: DfoSimState = current_app.extensions["dfo_sim"]
    return state


def control_blueprint() -> Blueprint:
    """The ``/_sandbox/`` routes."""
    control = Blueprint("dfo_sim_control", __name__, url_prefix="/_sandbox")
    routes: list[tuple[str, Callable[..., Response], str]] = [
        ("/reset", _reset, "POST"), ("/config", _config, "GET"),
        ("/config", _set_config, "POST"), ("/expire-tokens", _expire_tokens, "POST"),
        ("/channels", _channels, "GET"), ("/channels", _add_channel, "POST"),
        ("/messages", _messages, "GET"), ("/messages/<message_id>", _message, "GET"),
        ("/outbound", _outbound, "GET"), ("/outbound/<message_id>", _outbound_one, "GET"),
        ("/status-updates", _status_updates, "GET"),
        ("/agent-replies", _agent_reply, "POST"), ("/agent-replies", _agent_log, "GET"),
        ("/agent-typing", _agent_typing, "POST"), ("/agent-token", _forget_token, "DELETE"),
        ("/one-time-tokens", _issue_ott, "POST"), ("/admin/back", _admin_back, "GET"),
        ("/admin/backs", _admin_backs, "GET"), ("/limits", _limits, "GET"),
        ("/requests", _requests, "GET"), ("/stats", _stats, "GET"),
    ]
    for path, view, method in routes:
        name = view.__name__.lstrip("_") + "_" + method.lower()
        control.add_url_rule(path, name, view, methods=[method])
    add_fault_routes(control, lambda: _state().faults, "dfo_sim")
    add_file_routes(control, lambda: _state().files,
                    lambda: _state().token_is_live(request.headers.get("Authorization")),
                    lambda: _state().faults, lambda: _state().log)
    return control


def _reset() -> Response:
    _state().reset()
    _state().agent.forget_token()
    return answer({"reset": True})


# --- config and tokens -------------------------------------------------------------------

_STRINGS = ("client_id", "client_secret", "access_key_id", "access_key_secret", "tenant_id",
            "area", "domain", "brand_name", "byoc_client_id", "byoc_client_secret")


def _config_view() -> dict[str, Any]:
    config = _state().config
    hidden = {"client_secret", "access_key_secret", "byoc_client_secret", "channels"}
    return {name: value for name, value in vars(config).items() if name not in hidden}


def _config() -> Response:
    return answer(_config_view())


def _set_config() -> Response:
    body = json_body()
    state = _state()
    known = {*_STRINGS, "issuer_url", "gateway_url", "byoc_token_format", "token_ttl_s",
             "ott_ttl_s", "gateway_timeout_s", "enforce_limits", "contact_burst",
             "contact_refill_per_min", "tenant_limit_per_hour", "latency_ms",
             "latency_jitter_ms"}
    unknown = set(body) - known
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {name: str_field(body, name, max_len=512) for name in _STRINGS
                               if name in body}
    for name in ("issuer_url", "gateway_url"):
        if name in body:
            changes[name] = (url_field(body, name) or "").rstrip("/") or None
    if "byoc_token_format" in body:
        if body["byoc_token_format"] not in ("form", "json"):
            raise bad_request("byoc_token_format must be form or json")
        changes["byoc_token_format"] = body["byoc_token_format"]
    for name, high in (("token_ttl_s", 86_400), ("ott_ttl_s", 86_400),
                       ("contact_burst", 1_000_000), ("tenant_limit_per_hour", 10**9)):
        if name in body:
            changes[name] = int_field(body, name, None, 1, high)
    for name, low_s, high_s in (("gateway_timeout_s", 0.1, 300.0),
                                ("contact_refill_per_min", 0.0, 1e6),
                                ("latency_ms", 0.0, MAX_LATENCY_MS),
                                ("latency_jitter_ms", 0.0, MAX_LATENCY_MS)):
        if name in body:
            changes[name] = number_field(body, name, None, low_s, high_s)
    if "enforce_limits" in body:
        if not isinstance(body["enforce_limits"], bool):
            raise bad_request("enforce_limits must be a boolean")
        changes["enforce_limits"] = body["enforce_limits"]
    state.update_config(changes)
    state.agent.forget_token()
    return answer(_config_view())


def _expire_tokens() -> Response:
    return answer({"expired": _state().expire_tokens()})


def _forget_token() -> Response:
    _state().agent.forget_token()
    return answer({"forgotten": True})


# --- channels, messages, statuses --------------------------------------------------------


def _channels() -> Response:
    return answer({"items": _state().channels()})


def _add_channel() -> Response:
    body = json_body()
    channel_id = str(str_field(body, "id", required=True, max_len=255))
    number = str(str_field(body, "number", required=True, max_len=16))
    if not E164.fullmatch(number):
        raise bad_request("number must be E.164")
    return answer(_state().add_channel(channel_id, number), 201)


def _messages() -> Response:
    return answer({"items": _state().messages(request.args.get("channelId") or None)})


def _message(message_id: str) -> Response:
    found = _state().message(message_id)
    if found is None:
        raise ControlError(404, "not_found", f"no message {message_id!r}")
    return answer(found)


def _outbound() -> Response:
    return answer({"items": _state().outbound()})


def _outbound_one(message_id: str) -> Response:
    found = _state().outbound(message_id)
    if not found:
        raise ControlError(404, "not_found", f"no accepted reply {message_id!r}")
    return answer(found[0])


def _status_updates() -> Response:
    return answer({"items": _state().status_updates(request.args.get("id") or None)})


def _limits() -> Response:
    return answer(_state().limits())


def _requests() -> Response:
    return answer({"items": _state().log.items(request.args.get("endpoint") or None)})


def _stats() -> Response:
    return answer(_state().log.stats())


# --- the agent and the admin -------------------------------------------------------------


def _agent_reply() -> Response:
    state, base = _state(), request.host_url.rstrip("/")
    channels = {c["id"]: c["idOnExternalPlatform"] for c in state.channels()}

    def file_url(name: str) -> str | None:
        return f"{base}/_sandbox/files/{name}" if state.files.get(name) else None

    reply = parse_reply(json_body(), channels, file_url)
    try:
        return answer(_state().agent.reply(reply))
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _agent_log() -> Response:
    with _state().lock:
        return answer({"items": list(_state().agent_log)})


def _agent_typing() -> Response:
    body = json_body()
    channel_id = str(str_field(body, "channelId", required=True, max_len=255))
    thread_id = str(str_field(body, "threadId", required=True, max_len=255))
    try:
        return answer(_state().agent.typing(channel_id, thread_id))
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _issue_ott() -> Response:
    body = json_body()
    state = _state()
    brand = int_field(body, "brandId", state.config.brand_id, 1, 10**12 - 1)
    user = str(str_field(body, "userId", "sbx-admin-user", max_len=255))
    ttl = int_field(body, "ttl_s", state.config.ott_ttl_s, 1, 86_400) or 1
    ott = state.issue_ott(str(brand), user, ttl)
    gateway = state.config.gateway_url
    back = f"{request.host_url.rstrip('/')}/_sandbox/admin/back"
    add_url = None
    if gateway:
        query = urlencode({"userId": user, "brandId": brand, "token": ott.token, "backUrl": back})
        add_url = f"{gateway}/byoc/actions/add?{query}"
    return answer({"token": ott.token, "brandId": brand, "userId": user,
                   "expiresInS": ttl, "backUrl": back, "addUrl": add_url}, 201)


def _admin_back() -> Response:
    with _state().lock:
        _state().admin_backs.append({"at": stamp(), "query": request.args.to_dict()})
    return Response("<!doctype html><title>CXone</title><p>Back in CXone.</p>",
                    mimetype="text/html")


def _admin_backs() -> Response:
    with _state().lock:
        return answer({"items": list(_state().admin_backs)})
