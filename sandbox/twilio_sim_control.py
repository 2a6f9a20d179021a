"""The Twilio simulator's control API: JSON under ``/_sandbox/``, no authentication.

Tests and the demo use it to set what the carrier does per destination, inject
faults, send inbound messages (with hosted media) and read back every create,
message and callback.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

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
from sandbox.twilio_sim_rules import CALLBACK_MODES, OUTCOMES, DestinationRule
from sandbox.twilio_sim_state import SimState, log_event

MAX_DELAY_MS = 600_000
MAX_REPEAT = 100


def _state() -> SimState:
    state: SimState = current_app.extensions["twilio_sim"]
    return state


def control_blueprint() -> Blueprint:
    """The ``/_sandbox/`` routes."""
    control = Blueprint("twilio_sim_control", __name__, url_prefix="/_sandbox")
    control.add_url_rule("/reset", view_func=_reset, methods=["POST"])
    control.add_url_rule("/messages", view_func=_messages, methods=["GET"])
    control.add_url_rule("/creates", view_func=_creates, methods=["GET"])
    control.add_url_rule("/requests", view_func=_requests, methods=["GET"])
    control.add_url_rule("/stats", view_func=_stats, methods=["GET"])
    control.add_url_rule("/inbound", view_func=_inbound_log, methods=["GET"])
    control.add_url_rule("/inbound", view_func=_inbound, methods=["POST"])
    control.add_url_rule("/destinations", view_func=_destinations, methods=["GET"])
    control.add_url_rule("/destinations", view_func=_set_destination, methods=["POST"])
    control.add_url_rule("/destinations", view_func=_clear_destinations, methods=["DELETE"])
    control.add_url_rule("/messages/<sid>/callback", view_func=_manual_callback,
                         methods=["POST"])
    control.add_url_rule("/config", view_func=_config, methods=["GET"])
    control.add_url_rule("/config", view_func=_set_config, methods=["POST"])
    add_fault_routes(control, lambda: _state().faults, "twilio_sim")
    return control


def _reset() -> Response:
    _state().reset()
    return answer({"ok": True})


def _messages() -> Response:
    return answer({"messages": _state().messages_view()})


def _creates() -> Response:
    return answer({"creates": _state().creates_view()})


def _requests() -> Response:
    return answer({"items": _state().log.items(request.args.get("endpoint") or None)})


def _stats() -> Response:
    return answer(_state().log.stats())


def _inbound_log() -> Response:
    return answer({"inbound": _state().inbound_view()})


def _destinations() -> Response:
    return answer({"destinations": _state().destinations()})


def _set_destination() -> Response:
    body = json_body()
    to = str_field(body, "to", max_len=64, required=True)
    outcome = body.get("outcome", "delivered")
    callbacks = body.get("callbacks", "normal")
    if outcome not in OUTCOMES:
        raise bad_request(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    if callbacks not in CALLBACK_MODES:
        raise bad_request(f"'callbacks' must be one of {', '.join(CALLBACK_MODES)}")
    error_code = int_field(body, "error_code", None, 10_000, 99_999)
    create_error = body.get("create_error")
    if create_error is not None:
        if not isinstance(create_error, dict):
            raise bad_request("'create_error' must be {code, status}")
        create_error = {"code": int_field(create_error, "code", 21211, 10_000, 99_999),
                        "status": int_field(create_error, "status", 400, 400, 599)}
    elif outcome == "create_error":
        create_error = {"code": error_code or 21211, "status": 400}
    rule = DestinationRule(
        to=str(to), outcome=outcome, error_code=error_code, callbacks=callbacks,
        delay_ms=int_field(body, "delay_ms", 0, 0, MAX_DELAY_MS) or 0,
        create_error=create_error,
    )
    _state().set_destination(rule)
    return answer({"ok": True, "destination": asdict(rule)})


def _clear_destinations() -> Response:
    _state().clear_destinations()
    return answer({"ok": True})


def _inbound() -> Response:
    body = json_body()
    request_ = {
        "from": str_field(body, "from", max_len=64, required=True),
        "to": str_field(body, "to", max_len=64, required=True),
        "body": str_field(body, "body", "", max_len=10_000),
        "url": url_field(body, "url"),
        "opt_out_type": str_field(body, "opt_out_type", max_len=64),
        "repeat": int_field(body, "repeat", 1, 1, MAX_REPEAT),
        "media": _media_items(body.get("media")),
    }
    try:
        result = _state().receive_inbound(request_)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return answer(result)


def _media_items(value: Any) -> list[dict[str, Any]]:
    """Inbound media: ``{"url", "content_type"}``."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10:
        raise bad_request("media must be a list of at most 10 items")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"media[{index}] must be an object")
        items.append({
            "url": url_field(item, "url", required=True),
            "content_type": str_field(item, "content_type", "image/jpeg", max_len=255),
        })
    return items


def _manual_callback(sid: str) -> Response:
    body = json_body()
    status = str_field(body, "status", max_len=32, required=True)
    error_code = int_field(body, "error_code", None, 0, 99_999)
    url = url_field(body, "url")
    try:
        result = _state().send_manual_callback(sid, str(status), error_code, url)
    except KeyError:
        raise ControlError(404, "not_found", f"no message {sid}") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return answer({"sid": sid, "status": status, **result})


def _config_view() -> dict[str, Any]:
    config = _state().config
    return {
        "account_sid": config.account_sid,
        "messaging_service_sid": config.messaging_service_sid,
        "sender_numbers": list(config.sender_numbers),
        "inbound_url": config.inbound_url,
        "step_delay_s": config.step_delay_s,
    }


def _config() -> Response:
    return answer(_config_view())


def _set_config() -> Response:
    body = json_body()
    config = _state().config
    step_delay = number_field(body, "step_delay_s", None, 0.0, 3600.0)
    inbound_url = url_field(body, "inbound_url")
    if step_delay is not None:
        config.step_delay_s = step_delay
    if "inbound_url" in body:
        config.inbound_url = inbound_url or None
    log_event("config_changed", step_delay_s=config.step_delay_s, inbound_url=config.inbound_url)
    return answer(_config_view())
