"""CXone Digital (DFO 3.0) simulator: a real tenant as ``shared/contracts/cxone-dfo.md`` has it.

The API the gateway calls:

- ``GET  /.well-known/openid-configuration``: issuer and token endpoint
- ``POST /auth/token``: password grant (Basic client id/secret; access key as
  username/password), also ``grant_type=refresh_token``
- ``GET  /.well-known/cxone-configuration?tenantId=``: area and domain
- ``POST /dfo/3.0/channels/{channelId}/messages``: customer message (409 duplicate)
- ``PUT  /dfo/3.0/channels/{channelId}/messages/{id}/status``: delivery status
- ``POST /dfo/3.0/one-time-token/verification`` and ``POST /dfo/3.0/channels``

The ``id_token`` is an unsigned JWT (``alg: none``): nothing in the sandbox
checks signatures. The control API under ``/_sandbox/`` also plays the agent
side, calling the gateway's BYOC callbacks (:mod:`sandbox.dfo_sim_control`).

Run it with ``python -m sandbox dfo``; in tests serve ``create_app()`` with
:func:`sandbox.server.serve_in_thread`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox import latency
from sandbox.control import install_error_handlers, parse_json
from sandbox.dfo_sim_config import DfoSimConfig, config_from_env, parse_channels
from sandbox.dfo_sim_control import control_blueprint
from sandbox.dfo_sim_model import DfoError, error_body
from sandbox.dfo_sim_state import DfoSimState
from sandbox.faults import FaultAction, drop_connection, run_with_faults

log = logging.getLogger(__name__)

API = "/dfo/3.0"
__all__ = ["DfoSimConfig", "config_from_env", "create_app", "parse_channels"]


def create_app(config: DfoSimConfig | None = None) -> Flask:
    """Build the simulator; ``app.extensions["dfo_sim"]`` is its :class:`DfoSimState`."""
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["dfo_sim"] = DfoSimState(config or DfoSimConfig())
    app.register_blueprint(api)
    app.register_blueprint(control_blueprint())
    install_error_handlers(app, _http_error)
    return app


api = Blueprint("dfo_api", __name__)


def _state() -> DfoSimState:
    state: DfoSimState = current_app.extensions["dfo_sim"]
    return state


def issuer() -> str:
    """The issuer URL: configured, else the simulator's own base URL."""
    return (_state().config.issuer_url or request.host_url).rstrip("/")


@api.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    def handle() -> Response:
        base = issuer()
        return jsonify({
            "issuer": base, "token_endpoint": f"{base}/auth/token",
            "jwks_uri": f"{base}/.well-known/jwks",
            "grant_types_supported": ["password", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "id_token_signing_alg_values_supported": ["none"],
        })

    return _serve("discovery", handle, authenticate=False)


@api.post("/auth/token")
def issue_token() -> Response:
    return _serve("token", _token_grant, authenticate=False)


def _token_grant() -> Response:
    state, config = _state(), _state().config
    if _basic_credentials() != (config.client_id, config.client_secret):
        return _oauth_error(401, "invalid_client", "client authentication failed")
    form = request.form
    grant = form.get("grant_type")
    if grant == "refresh_token":
        if not state.use_refresh_token(form.get("refresh_token") or ""):
            return _oauth_error(400, "invalid_grant", "refresh token is not valid")
    elif grant == "password":
        if (form.get("username"), form.get("password")) != (config.access_key_id,
                                                             config.access_key_secret):
            return _oauth_error(401, "invalid_grant",
                                "access key id or secret is wrong (is the form URL-encoded?)")
    else:
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be password")
    response = jsonify(state.new_tokens(issuer()))
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/.well-known/cxone-configuration")
def cxone_configuration() -> Response:
    def handle() -> Response:
        config = _state().config
        tenant = request.args.get("tenantId")
        if not tenant:
            raise DfoError(400, "InvalidRequest", "tenantId is required", "tenantId")
        if tenant != config.tenant_id:
            raise DfoError(404, "TenantNotFound", f"no tenant {tenant!r}", "tenantId")
        return jsonify({"tenantId": tenant, "area": config.area, "domain": config.domain,
                        "api_endpoint": f"https://api-{config.area}.{config.domain}",
                        "ui_endpoint": f"https://{config.area}.{config.domain}"})

    return _serve("cxone_config", handle, authenticate=False)


@api.post(f"{API}/channels/<channel_id>/messages")
def create_message(channel_id: str) -> Response:
    body = _json_or_text()
    return _serve("create", lambda: jsonify(_state().create_inbound(channel_id, body)))


@api.put(f"{API}/channels/<channel_id>/messages/<message_id>/status")
def update_status(channel_id: str, message_id: str) -> Response:
    body = _json_or_text()
    return _serve(
        "status", lambda: jsonify(_state().put_status(channel_id, message_id, body)),
        record=lambda status: _state().record_status(channel_id, message_id, body, status))


@api.post(f"{API}/one-time-token/verification")
def verify_one_time_token() -> Response:
    body = _json_or_text()
    return _serve("ott", lambda: jsonify(_state().verify_ott(body, issuer())))


@api.post(f"{API}/channels")
def create_channel() -> Response:
    body = _json_or_text()
    authorization = request.headers.get("Authorization")
    return _serve("channels", lambda: jsonify(_state().create_channel(authorization, body)),
                  authenticate=False)


def _serve(endpoint: str, handle: Callable[[], Response], *, authenticate: bool = True,
           record: Callable[[int | None], None] | None = None) -> Response:
    """One API request through the fault switches, the latency, the token check and ``handle``."""
    state = _state()
    state.log.count(endpoint)
    plan = state.faults.plan(endpoint)
    waited = [0.0]

    def run() -> Response:
        waited[0] = latency.pause(state.config.latency_ms, state.config.latency_jitter_ms)
        try:
            if authenticate:
                state.check_token(request.headers.get("Authorization"))
            return handle()
        except DfoError as exc:
            return _dfo_error(exc)

    _, response = run_with_faults(plan, run, lambda action: _fault_response(action, endpoint))
    applied = plan.before if plan.before is not None else plan.after
    status = None if applied is not None and applied.drop else response.status_code
    if record is not None:
        record(status)
    state.log.record(endpoint, status, latency_ms=round(waited[0] * 1000, 1))
    return response


def _fault_response(action: FaultAction, endpoint: str) -> Response:
    if action.drop or action.status is None:
        return drop_connection()
    if endpoint == "token":
        code = "invalid_client" if action.status == 401 else "temporarily_unavailable"
        response = _oauth_error(action.status, code, f"sandbox fault rule {action.rule_id}")
    else:
        codes = {401: "Unauthorized", 409: "DuplicateMessage", 429: "TooManyRequests"}
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
            if action.status == 401 else {}
        response = _dfo_error(DfoError(action.status, codes.get(action.status, "SandboxFault"),
                                       f"injected by sandbox fault rule {action.rule_id}",
                                       headers=headers))
    response.headers.update(action.headers())
    return response


def _dfo_error(exc: DfoError) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="cxone"'
    return response


def _http_error(exc: HTTPException) -> Response:
    response = jsonify(error_body("HttpError", exc.description or exc.name or "error"))
    response.status_code = exc.code or 400
    return response


def _basic_credentials() -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None


def _json_or_text() -> Any:
    """The JSON body, or the raw text when it is not JSON (then answered 400 by the checks)."""
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return parse_json(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def log_event(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": f"dfo_sim.{event}", **fields}, default=str))
