"""CXone Open Messaging simulator: the API the gateway speaks, plus fault switches.

The API follows ``contracts/cxone-open-messaging.md``: the client-credentials
token endpoint, the cursor-paged message feed, status PUTs, conversations and
inbound posts. Tests steer it through the JSON control API under ``/_sandbox/``
(see :mod:`sandbox.cxone_sim_control`). Everything is in memory.

Run it as a process with ``python -m sandbox cxone``; in tests serve
``create_app()`` with :func:`sandbox.server.serve_in_thread`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from sandbox import defaults, latency
from sandbox.control import install_error_handlers, parse_json
from sandbox.cxone_sim_control import control
from sandbox.cxone_sim_model import ERROR_CODES, ApiError, Reply
from sandbox.cxone_sim_state import CxoneSimState
from sandbox.faults import FaultAction, drop_connection, run_with_faults

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2/open-messaging"


@dataclass
class CxoneSimConfig:
    """What the simulator accepts; the control API can change it at run time."""

    client_id: str = defaults.CXONE_CLIENT_ID
    client_secret: str = defaults.CXONE_CLIENT_SECRET
    token_ttl_s: int = 3600
    latency_ms: float = 0.0  # p50 of the time an API request takes to answer
    latency_jitter_ms: float = 0.0  # its spread (see sandbox.latency)


def config_from_env(environ: Mapping[str, str]) -> CxoneSimConfig:
    """Read ``CXONE_CLIENT_ID``, ``CXONE_CLIENT_SECRET``, ``CXONE_SIM_TOKEN_TTL_S``,
    ``CXONE_SIM_LATENCY_MS`` and ``CXONE_SIM_LATENCY_JITTER_MS``."""
    config = CxoneSimConfig()
    config.latency_ms, config.latency_jitter_ms = latency.from_env(environ, "CXONE_SIM")
    config.client_id = environ.get("CXONE_CLIENT_ID") or config.client_id
    config.client_secret = environ.get("CXONE_CLIENT_SECRET") or config.client_secret
    ttl = environ.get("CXONE_SIM_TOKEN_TTL_S")
    if ttl:
        try:
            config.token_ttl_s = int(ttl)
        except ValueError:
            config.token_ttl_s = 0
        if config.token_ttl_s < 1:
            raise ValueError(f"CXONE_SIM_TOKEN_TTL_S must be a positive integer, got {ttl!r}")
    return config


def create_app(config: CxoneSimConfig | None = None) -> Flask:
    """Build the simulator; ``app.extensions["cxone_sim"]`` is its :class:`CxoneSimState`."""
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["cxone_sim"] = CxoneSimState(config or CxoneSimConfig())
    app.register_blueprint(api)
    app.register_blueprint(control)
    install_error_handlers(app)
    return app


api = Blueprint("cxone_api", __name__)


def _state() -> CxoneSimState:
    state: CxoneSimState = current_app.extensions["cxone_sim"]
    return state


@api.post("/auth/token")
def issue_token() -> Response:
    def handle(state: CxoneSimState) -> Reply:
        credentials = _basic_credentials(request.headers.get("Authorization"))
        token = state.issue_token(credentials, request.form.get("grant_type"))
        return Reply(status=200, body=token, headers={"Cache-Control": "no-store"})

    return _serve("token", handle, authenticate=False)


@api.get(f"{API_PREFIX}/messages")
def poll_messages() -> Response:
    return _serve("poll", lambda state: Reply(status=200, body=state.poll(request.args)))


@api.put(f"{API_PREFIX}/messages/<message_id>")
def update_message_status(message_id: str) -> Response:
    body = _json_or_text()
    return _serve(
        "put",
        lambda state: state.update_status(message_id, body),
        record=lambda state, handled, status: state.record_put(message_id, body, status),
    )


@api.get(f"{API_PREFIX}/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    return _serve(
        "conversation_get",
        lambda state: Reply(status=200, body=state.get_conversation(conversation_id)),
    )


@api.post(f"{API_PREFIX}/conversations")
def create_conversation() -> Response:
    body = _json_or_text()
    return _serve(
        "conversation_create",
        lambda state: Reply(status=201, body=state.create_conversation(body)),
    )


@api.post(f"{API_PREFIX}/conversations/<conversation_id>/messages")
def post_inbound(conversation_id: str) -> Response:
    body = _json_or_text()
    return _serve(
        "inbound",
        lambda state: state.post_inbound(conversation_id, body),
        record=lambda state, handled, status: state.record_inbound(
            conversation_id, body, handled, status
        ),
    )


Recorder = Callable[[CxoneSimState, Reply | None, int | None], None]


def _serve(
    endpoint: str,
    handle: Callable[[CxoneSimState], Reply],
    *,
    authenticate: bool = True,
    record: Recorder | None = None,
) -> Response:
    """Run one API request through the fault switches, the token check and ``handle``.

    Faults act before anything else (like a gateway in front of the API), or,
    for ``after`` rules, once the request was handled. The configured latency
    is spent before handling (outside the state's lock).
    """
    state = _state()
    state.log.count(endpoint)
    plan = state.faults.plan(endpoint)
    if plan.rule_ids:
        _log_event("cxone_sim.fault", endpoint=endpoint, rules=plan.rule_ids)
    waited = [0.0]

    def run() -> Reply:
        waited[0] = latency.pause(state.config.latency_ms, state.config.latency_jitter_ms)
        try:
            if authenticate:
                state.check_token(request.headers.get("Authorization"))
            return handle(state)
        except ApiError as exc:
            return exc.reply()

    handled, reply = run_with_faults(plan, run, lambda action: fault_reply(action, endpoint))
    status = None if reply.drop else reply.status
    if record is not None:
        record(state, handled, status)
    state.log.record(endpoint, status, latency_ms=round(waited[0] * 1000, 1))
    return _respond(reply)


def fault_reply(action: FaultAction, endpoint: str) -> Reply:
    """The answer a fired fault rule forces: a dropped connection or an error status."""
    if action.drop or action.status is None:
        return Reply(status=0, body=None, drop=True)
    headers = action.headers()
    code = ERROR_CODES.get(action.status, "sandbox_fault")
    if action.status == 401:
        code = "invalid_client" if endpoint == "token" else "invalid_token"
        headers.setdefault("WWW-Authenticate", f'Bearer error="{code}"')
    body = {"error": code, "message": f"injected by sandbox fault rule {action.rule_id}"}
    return Reply(status=action.status, body=body, headers=headers)


def _respond(reply: Reply) -> Response:
    if reply.drop:
        return drop_connection()
    response = jsonify(reply.body) if reply.body is not None else Response()
    response.status_code = reply.status
    response.headers.update(reply.headers)
    return response


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None


def _json_or_text() -> Any:
    """The JSON body, or the raw text when it is not JSON (recorded as sent, then a 400)."""
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return parse_json(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _log_event(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": event, **fields}))
