"""Simulator of Twilio Programmable Messaging (API v2010), for tests and the demo.

REST API, as the official ``twilio`` package calls it (HTTP Basic AccountSid:AuthToken):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: create (201 Message)
- ``GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``: fetch
- ``POST /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``: ``Status=canceled``
  or ``Body=`` (redact)
- ``GET  /2010-04-01/Accounts/{AccountSid}/Messages.json``: list (To, From,
  DateSent, DateSent<, DateSent>, PageSize, Page, PageToken), newest first

After a create the message walks accepted → queued → sending → sent → final,
``step_delay_s`` apart, with signed status callbacks. The control API under
``/_sandbox/`` (JSON, no auth) sets per-destination outcomes, injects faults,
sends inbound messages and shows what happened; see ``_control_blueprint``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox import defaults
from sandbox.server import SOCKET_KEY
from sandbox.twilio_sim_model import (
    API_VERSION,
    TwilioError,
    error_body,
    list_page_body,
    message_resource,
    parse_list_query,
)
from sandbox.twilio_sim_rules import (
    CALLBACK_MODES,
    FAULT_KINDS,
    FAULT_TARGETS,
    OUTCOMES,
    DestinationRule,
    FaultRule,
)
from sandbox.twilio_sim_state import SimState, log_event

log = logging.getLogger(__name__)

FAULT_STATUS = {"429": (429, 20429), "500": (500, 20500), "503": (503, 20503)}
DROP_KINDS = ("drop_after_accept", "timeout")
AUTH_DETAIL = "Your AccountSid or AuthToken was incorrect."


@dataclass
class TwilioSimConfig:
    """What the simulated Twilio account looks like."""

    account_sid: str = defaults.TWILIO_ACCOUNT_SID
    auth_token: str = defaults.TWILIO_AUTH_TOKEN
    messaging_service_sid: str = defaults.TWILIO_MESSAGING_SERVICE_SID
    sender_numbers: tuple[str, ...] = defaults.SENDER_NUMBERS  # the service's pool
    inbound_url: str | None = None  # where inbound SMS webhooks are posted
    step_delay_s: float = 0.05  # delay between lifecycle steps (0 = as fast as possible)


def config_from_env(environ: Mapping[str, str]) -> TwilioSimConfig:
    """Read the simulator's settings from environment variables (empty = unset)."""

    def value(name: str) -> str | None:
        return (environ.get(name) or "").strip() or None

    base_url = value("PUBLIC_BASE_URL")
    inbound_url = value("TWILIO_SIM_INBOUND_URL")
    if inbound_url is None and base_url:
        inbound_url = base_url.rstrip("/") + "/twilio/inbound"
    numbers = value("SENDER_NUMBERS")
    delay_ms = value("TWILIO_SIM_STEP_DELAY_MS")
    return TwilioSimConfig(
        account_sid=value("TWILIO_ACCOUNT_SID") or defaults.TWILIO_ACCOUNT_SID,
        auth_token=value("TWILIO_AUTH_TOKEN") or defaults.TWILIO_AUTH_TOKEN,
        messaging_service_sid=value("TWILIO_MESSAGING_SERVICE_SID")
        or defaults.TWILIO_MESSAGING_SERVICE_SID,
        sender_numbers=tuple(n.strip() for n in numbers.split(",") if n.strip())
        if numbers
        else defaults.SENDER_NUMBERS,
        inbound_url=inbound_url,
        step_delay_s=float(delay_ms) / 1000 if delay_ms is not None else 0.05,
    )


def create_app(config: TwilioSimConfig | None = None) -> Flask:
    """Build the simulator; ``app.extensions["twilio_sim"]`` holds its SimState."""
    app = Flask(__name__)
    app.extensions["twilio_sim"] = SimState(config or TwilioSimConfig())
    app.register_blueprint(_api_blueprint())
    app.register_blueprint(_control_blueprint())
    app.register_error_handler(TwilioError, _twilio_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _state() -> SimState:
    state: SimState = current_app.extensions["twilio_sim"]
    return state


def _twilio_error(exc: TwilioError) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    return response


def _http_error(exc: HTTPException) -> Response | HTTPException:
    # Under the API prefix Twilio answers unknown resources with its JSON body.
    if request.path.startswith(f"/{API_VERSION}/") and exc.code == 404:
        return _twilio_error(TwilioError(20404, 404, path=request.path))
    if request.path.startswith("/_sandbox/"):
        response = jsonify({"error": exc.description})
        response.status_code = exc.code or 500
        return response
    return exc


# --- the REST API ------------------------------------------------------------


def _api_blueprint() -> Blueprint:
    api = Blueprint("twilio_api", __name__, url_prefix=f"/{API_VERSION}/Accounts/<account_sid>")
    api.before_request(_authenticate)
    api.add_url_rule("/Messages.json", view_func=_create, methods=["POST"])
    api.add_url_rule("/Messages.json", view_func=_list, methods=["GET"])
    api.add_url_rule("/Messages/<sid>.json", view_func=_fetch, methods=["GET"])
    api.add_url_rule("/Messages/<sid>.json", view_func=_update, methods=["POST"])
    return api


def _authenticate() -> Response | None:
    """HTTP Basic AccountSid:AuthToken (20003), then the path's AccountSid (20404)."""
    config = _state().config
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return _unauthorized("Authentication Error - No credentials provided")
    if auth.username != config.account_sid or auth.password != config.auth_token:
        return _unauthorized("Authentication Error - invalid username")
    if (request.view_args or {}).get("account_sid") != config.account_sid:
        return _twilio_error(TwilioError(20404, 404, path=request.path))
    return None


def _unauthorized(message: str) -> Response:
    response = jsonify({**error_body(20003, 401, message), "detail": AUTH_DETAIL})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def _create(account_sid: str) -> Response:
    state = _state()
    fault = state.take_fault("create")
    if fault is not None and fault.kind in FAULT_STATUS:
        status, code = FAULT_STATUS[fault.kind]
        state.record_fault_create(request.form, fault.kind, status)
        return _twilio_error(TwilioError(code, status))  # refused: nothing created
    if fault is not None and fault.kind == "slow":
        time.sleep(fault.delay_ms / 1000)
    drop = fault if fault is not None and fault.kind in DROP_KINDS else None
    msg = state.create_message(request.form, fault=drop.kind if drop else None)
    if drop is not None:
        return _drop_connection(drop.kind, drop.delay_ms)  # created, but never answered
    response = jsonify(message_resource(msg, account_sid))
    response.status_code = 201
    return response


def _fetch(account_sid: str, sid: str) -> Response:
    early = _read_fault("fetch")
    if early is not None:
        return early
    msg = _state().get(sid)
    if msg is None:
        raise TwilioError(20404, 404, path=request.path)
    return jsonify(message_resource(msg, account_sid))


def _list(account_sid: str) -> Response:
    early = _read_fault("list")
    if early is not None:
        return early
    query = parse_list_query(request.args)
    items, has_next = _state().list_page(query)
    return jsonify(list_page_body(account_sid, query, items, has_next))


def _update(account_sid: str, sid: str) -> Response:
    state = _state()
    msg = state.get(sid)
    if msg is None:
        raise TwilioError(20404, 404, path=request.path)
    status = request.form.get("Status")
    if status is not None and status != "canceled":
        raise TwilioError(20422, message=f"Invalid Status value: {status}")
    if status == "canceled":
        msg = state.cancel(sid)
    if "Body" in request.form:
        msg = state.redact(sid, request.form["Body"])
    return jsonify(message_resource(msg, account_sid))


def _read_fault(target: str) -> Response | None:
    """Apply a fault to a fetch or list; a response means: answer this instead."""
    fault = _state().take_fault(target)
    if fault is None:
        return None
    if fault.kind in FAULT_STATUS:
        status, code = FAULT_STATUS[fault.kind]
        return _twilio_error(TwilioError(code, status))
    if fault.kind in DROP_KINDS:
        return _drop_connection(fault.kind, fault.delay_ms)
    time.sleep(fault.delay_ms / 1000)  # slow
    return None


def _drop_connection(kind: str, delay_ms: int) -> Response:
    """Close the client's connection without an answer (after ``delay_ms`` for timeout)."""
    if kind == "timeout":
        time.sleep(delay_ms / 1000)
    sock: socket.socket | None = request.environ.get(SOCKET_KEY)
    if sock is not None:
        with contextlib.suppress(OSError):  # the client may already have gone
            sock.shutdown(socket.SHUT_RDWR)
    log_event("connection_dropped", fault=kind, path=request.path)
    # The server will fail to write this; the client sees a dropped connection.
    return Response(b"", status=500)


# --- the control API ---------------------------------------------------------


def _control_blueprint() -> Blueprint:
    control = Blueprint("twilio_sim_control", __name__, url_prefix="/_sandbox")
    control.add_url_rule("/reset", view_func=_reset, methods=["POST"])
    control.add_url_rule("/messages", view_func=_messages, methods=["GET"])
    control.add_url_rule("/creates", view_func=_creates, methods=["GET"])
    control.add_url_rule("/inbound", view_func=_inbound_log, methods=["GET"])
    control.add_url_rule("/inbound", view_func=_inbound, methods=["POST"])
    control.add_url_rule("/destinations", view_func=_destinations, methods=["GET"])
    control.add_url_rule("/destinations", view_func=_set_destination, methods=["POST"])
    control.add_url_rule("/destinations", view_func=_clear_destinations, methods=["DELETE"])
    control.add_url_rule("/faults", view_func=_faults, methods=["GET"])
    control.add_url_rule("/faults", view_func=_add_fault, methods=["POST"])
    control.add_url_rule("/faults", view_func=_clear_faults, methods=["DELETE"])
    control.add_url_rule("/messages/<sid>/callback", view_func=_manual_callback, methods=["POST"])
    control.add_url_rule("/config", view_func=_config, methods=["GET"])
    control.add_url_rule("/config", view_func=_set_config, methods=["POST"])
    return control


def _bad_request(problem: str) -> tuple[Response, int]:
    return jsonify({"error": problem}), 400


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _reset() -> Response:
    _state().reset()
    return jsonify({"ok": True})


def _messages() -> Response:
    return jsonify({"messages": _state().messages_view()})


def _creates() -> Response:
    return jsonify({"creates": _state().creates_view()})


def _inbound_log() -> Response:
    return jsonify({"inbound": _state().inbound_view()})


def _destinations() -> Response:
    return jsonify({"destinations": _state().destinations()})


def _set_destination() -> Response | tuple[Response, int]:
    body = _json_body()
    to, outcome = body.get("to"), body.get("outcome", "delivered")
    callbacks = body.get("callbacks", "normal")
    if not isinstance(to, str) or not to:
        return _bad_request("'to' is required")
    if outcome not in OUTCOMES:
        return _bad_request(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    if callbacks not in CALLBACK_MODES:
        return _bad_request(f"'callbacks' must be one of {', '.join(CALLBACK_MODES)}")
    create_error = body.get("create_error")
    if outcome == "create_error" and not isinstance(create_error, dict):
        create_error = {"code": body.get("error_code") or 21211, "status": 400}
    rule = DestinationRule(
        to=to,
        outcome=outcome,
        error_code=body.get("error_code"),
        callbacks=callbacks,
        delay_ms=int(body.get("delay_ms") or 0),
        create_error=create_error,
    )
    _state().set_destination(rule)
    return jsonify({"ok": True, "destination": asdict(rule)})


def _clear_destinations() -> Response:
    _state().clear_destinations()
    return jsonify({"ok": True})


def _faults() -> Response:
    return jsonify({"faults": _state().faults()})


def _add_fault() -> Response | tuple[Response, int]:
    body = _json_body()
    target, kind = body.get("target", "any"), str(body.get("kind", ""))
    if target not in FAULT_TARGETS:
        return _bad_request(f"'target' must be one of {', '.join(FAULT_TARGETS)}")
    if kind not in FAULT_KINDS:
        return _bad_request(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
    probability = body.get("probability")
    count = body.get("count")
    if count is None and probability is None:
        count = 1  # neither given: hit the next matching request only
    rule = FaultRule(
        id=f"fault-{time.monotonic_ns()}",
        target=target,
        kind=kind,
        count=int(count) if count is not None else None,
        probability=float(probability) if probability is not None else None,
        delay_ms=int(body.get("delay_ms") or 0),
    )
    _state().add_fault(rule)
    return jsonify({"ok": True, "fault": asdict(rule)})


def _clear_faults() -> Response:
    _state().clear_faults()
    return jsonify({"ok": True})


def _inbound() -> Response | tuple[Response, int]:
    body = _json_body()
    if not body.get("from") or not body.get("to"):
        return _bad_request("'from' and 'to' are required")
    try:
        result = _state().receive_inbound(body)
    except ValueError as exc:
        return _bad_request(str(exc))
    return jsonify(result)


def _manual_callback(sid: str) -> Response | tuple[Response, int]:
    body = _json_body()
    status = body.get("status")
    if not isinstance(status, str) or not status:
        return _bad_request("'status' is required")
    try:
        result = _state().send_manual_callback(sid, status, body.get("error_code"), body.get("url"))
    except KeyError:
        return jsonify({"error": f"no message {sid}"}), 404
    except ValueError as exc:
        return _bad_request(str(exc))
    return jsonify({"sid": sid, "status": status, **result})


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
    return jsonify(_config_view())


def _set_config() -> Response | tuple[Response, int]:
    body = _json_body()
    config = _state().config
    if "step_delay_s" in body:
        try:
            config.step_delay_s = max(float(body["step_delay_s"]), 0.0)
        except (TypeError, ValueError):
            return _bad_request("'step_delay_s' must be a number")
    if "inbound_url" in body:
        config.inbound_url = body["inbound_url"] or None
    log_event("config_changed", step_delay_s=config.step_delay_s, inbound_url=config.inbound_url)
    return jsonify(_config_view())
