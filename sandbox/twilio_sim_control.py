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
MAX_MEDIA_BYTES = 5 * 1024 * 1024
MAX_MEDIA_B64 = MAX_MEDIA_BYTES * 4 // 3 + 4


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
    control.add_url_rule("/media/<media_sid>", view_func=_hosted_media, methods=["GET"])
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
        result = _state().receive_inbound(request_, request.host_url.rstrip("/"))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return answer(result)


def _media_items(value: Any) -> list[dict[str, Any]]:
    """Inbound media: ``{"url", "content_type"}`` served elsewhere, or hosted here from
    ``{"content_type", "data_base64" | "text" | "size"}``."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10:
        raise bad_request("media must be a list of at most 10 items")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"media[{index}] must be an object")
        given = [key for key in ("url", "data_base64", "text", "size") if item.get(key) is not None]
        if len(given) != 1:
            raise bad_request(f"media[{index}]: give one of url, data_base64, text or size")
        items.append({
            "url": url_field(item, "url"),
            "content_type": str_field(item, "content_type", "image/jpeg", max_len=255),
            "data_base64": str_field(item, "data_base64", max_len=MAX_MEDIA_B64),
            "text": str_field(item, "text", max_len=MAX_MEDIA_BYTES),
            "size": int_field(item, "size", None, 0, MAX_MEDIA_BYTES),
            "name": f"media-{index}",
        })
    return items


def _hosted_media(media_sid: str) -> Response:
    """The unauthenticated copy an inbound media URL redirects to (``media_redirect``)."""
    media = _state().media.get(None, media_sid)
    if media is None:
        raise ControlError(404, "not_found", f"no media {media_sid}")
    return Response(media.data, headers={"Content-Type": media.content_type})


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
        "create_latency_ms": config.create_latency_ms,
        "latency_jitter_ms": config.latency_jitter_ms,
        "media_timeout_s": config.media_timeout_s,
        "media_fetch_hosts": list(config.media_fetch_hosts),
        "media_redirect": config.media_redirect,
    }


def _config() -> Response:
    return answer(_config_view())


def _set_config() -> Response:
    body = json_body()
    config = _state().config
    numbers = {name: number_field(body, name, None, low, high) for name, low, high in (
        ("step_delay_s", 0.0, 3600.0), ("create_latency_ms", 0.0, 600_000.0),
        ("latency_jitter_ms", 0.0, 600_000.0), ("media_timeout_s", 0.1, 120.0))}
    inbound_url = url_field(body, "inbound_url")
    hosts = body.get("media_fetch_hosts")
    if hosts is not None and (not isinstance(hosts, list) or len(hosts) > 100 or not all(
            isinstance(host, str) and 0 < len(host) <= 255 for host in hosts)):
        raise bad_request("media_fetch_hosts must be a list of host names ('*': any)")
    redirect = body.get("media_redirect")
    if redirect is not None and not isinstance(redirect, bool):
        raise bad_request("media_redirect must be a boolean")
    for name, value in numbers.items():
        if value is not None:
            setattr(config, name, value)
    if "inbound_url" in body:
        config.inbound_url = inbound_url or None
    if hosts is not None:
        config.media_fetch_hosts = tuple(hosts)
    if redirect is not None:
        config.media_redirect = redirect
    log_event("config_changed", step_delay_s=config.step_delay_s, inbound_url=config.inbound_url)
    return answer(_config_view())
