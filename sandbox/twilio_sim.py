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
``/_sandbox/`` (JSON, no auth; :mod:`sandbox.twilio_sim_control`) sets
per-destination outcomes, injects faults, sends inbound messages and shows
what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox import defaults
from sandbox.control import install_error_handlers
from sandbox.faults import FaultAction, FaultPlan, drop_connection, run_with_faults
from sandbox.twilio_sim_control import control_blueprint
from sandbox.twilio_sim_media import LOOPBACK_HOSTS
from sandbox.twilio_sim_model import (
    API_VERSION,
    TwilioError,
    error_body,
    list_page_body,
    message_resource,
    parse_list_query,
)
from sandbox.twilio_sim_state import SimState, log_event

log = logging.getLogger(__name__)

AUTH_DETAIL = "Your AccountSid or AuthToken was incorrect."
# Twilio's error codes for the statuses a fault rule may force.
FAULT_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


@dataclass
class TwilioSimConfig:
    """What the simulated Twilio account looks like."""

    account_sid: str = defaults.TWILIO_ACCOUNT_SID
    auth_token: str = defaults.TWILIO_AUTH_TOKEN
    messaging_service_sid: str = defaults.TWILIO_MESSAGING_SERVICE_SID
    sender_numbers: tuple[str, ...] = defaults.SENDER_NUMBERS  # the service's pool
    inbound_url: str | None = None  # where inbound SMS webhooks are posted
    step_delay_s: float = 0.05  # delay between lifecycle steps (0 = as fast as possible)
    create_latency_ms: float = 0.0  # p50 of the time a create takes to answer
    latency_jitter_ms: float = 0.0  # its spread (a normal law, clipped at 0 and p50 + 4x)
    media_timeout_s: float = 5.0  # fetching a MediaUrl
    media_fetch_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # hosts MediaUrls are fetched from
    media_redirect: bool = False  # inbound media: 307 to an unauthenticated copy, as Twilio


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
    hosts = [h.strip() for h in (value("TWILIO_SIM_MEDIA_HOSTS") or "").split(",") if h.strip()]
    if base_url and urlsplit(base_url).hostname:
        hosts.append(str(urlsplit(base_url).hostname))
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
        create_latency_ms=float(value("TWILIO_SIM_CREATE_LATENCY_MS") or 0),
        latency_jitter_ms=float(value("TWILIO_SIM_LATENCY_JITTER_MS") or 0),
        media_fetch_hosts=(*LOOPBACK_HOSTS, *hosts),
    )


def create_app(config: TwilioSimConfig | None = None) -> Flask:
    """Build the simulator; ``app.extensions["twilio_sim"]`` holds its SimState."""
    app = Flask(__name__)
    app.extensions["twilio_sim"] = SimState(config or TwilioSimConfig())
    app.register_blueprint(_api_blueprint())
    app.register_blueprint(control_blueprint())
    install_error_handlers(app, _http_error)
    app.register_error_handler(TwilioError, _twilio_error)
    return app


def _state() -> SimState:
    state: SimState = current_app.extensions["twilio_sim"]
    return state


def _twilio_error(exc: TwilioError) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    return response


def _http_error(exc: HTTPException) -> Response:
    # Under the API prefix Twilio answers unknown resources with its JSON body.
    if exc.code == 404:
        return _twilio_error(TwilioError(20404, 404, path=request.path))
    status = exc.code or 400
    return _twilio_error(TwilioError(20000 + status, status, message=exc.description or exc.name))


# --- the REST API ------------------------------------------------------------


def _api_blueprint() -> Blueprint:
    api = Blueprint("twilio_api", __name__, url_prefix=f"/{API_VERSION}/Accounts/<account_sid>")
    api.before_request(_authenticate)
    api.add_url_rule("/Messages.json", view_func=_create, methods=["POST"])
    api.add_url_rule("/Messages.json", view_func=_list, methods=["GET"])
    api.add_url_rule("/Messages/<sid>.json", view_func=_fetch, methods=["GET"])
    api.add_url_rule("/Messages/<sid>.json", view_func=_update, methods=["POST"])
    api.add_url_rule("/Messages/<sid>/Media/<media_sid>", view_func=_media, methods=["GET"])
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


def _serve(endpoint: str, handle: Callable[[FaultPlan], Response],
           on_refused: Callable[[FaultAction], None] | None = None) -> Response:
    """Run one API request through the fault switches; ``handle`` errors become Twilio's body.

    ``on_refused`` hears about a fault that answers before anything was handled.
    """
    state = _state()
    state.log.count(endpoint)
    plan = state.faults.plan(endpoint)
    if plan.before is not None and on_refused is not None:
        on_refused(plan.before)

    def run() -> Response:
        try:
            return handle(plan)
        except TwilioError as exc:
            return _twilio_error(exc)

    _, response = run_with_faults(plan, run, _fault_response)
    applied = plan.before if plan.before is not None else plan.after
    state.log.record(endpoint, None if applied and applied.drop else response.status_code)
    return response


def _fault_response(action: FaultAction) -> Response:
    if action.drop or action.status is None:
        log_event("connection_dropped", fault=action.kind, path=request.path)
        return drop_connection()
    if action.status == 401:
        response = _unauthorized("Authentication Error - invalid username")
    else:
        code = FAULT_CODES.get(action.status, 20000 + action.status)
        response = _twilio_error(TwilioError(code, action.status))
    response.headers.update(action.headers())
    return response


def _create(account_sid: str) -> Response:
    state = _state()
    form = request.form
    arrived_at = state.clock()  # before any latency: pacing is measured on arrivals

    def refused(action: FaultAction) -> None:
        state.record_fault_create(form, action.kind, action.status, arrived_at)

    def create(plan: FaultPlan) -> Response:
        latency_s = state.create_latency_s()
        time.sleep(latency_s)
        # An after-fault (drop_after_accept, timeout) is noted in the creates log.
        fault = plan.after.kind if plan.after is not None else None
        msg = state.create_message(form, fault=fault, arrived_at=arrived_at,
                                   latency_ms=latency_s * 1000)
        response = jsonify(message_resource(msg, account_sid))
        response.status_code = 201
        return response

    return _serve("create", create, refused)


def _fetch(account_sid: str, sid: str) -> Response:
    def fetch(_: FaultPlan) -> Response:
        msg = _state().get(sid)
        if msg is None:
            raise TwilioError(20404, 404, path=request.path)
        return jsonify(message_resource(msg, account_sid))

    return _serve("fetch", fetch)


def _list(account_sid: str) -> Response:
    def page(_: FaultPlan) -> Response:
        query = parse_list_query(request.args)
        items, has_next = _state().list_page(query)
        return jsonify(list_page_body(account_sid, query, items, has_next))

    return _serve("list", page)


def _update(account_sid: str, sid: str) -> Response:
    def update(_: FaultPlan) -> Response:
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

    return _serve("update", update)



def _media(account_sid: str, sid: str, media_sid: str) -> Response:
    """Inbound media the simulator hosts: the bytes (or a redirect to them, as Twilio)."""

    def serve(_: FaultPlan) -> Response:
        media = _state().media.get(sid, media_sid)
        if media is None:
            raise TwilioError(20404, 404, path=request.path)
        if _state().config.media_redirect:
            return Response(status=307, headers={
                "Location": f"{request.host_url.rstrip('/')}/_sandbox/media/{media_sid}"})
        return Response(media.data, headers={"Content-Type": media.content_type})

    return _serve("media", serve)
