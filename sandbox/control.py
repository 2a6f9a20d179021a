"""What every simulator's control API (``/_sandbox/...``) shares.

- :class:`ControlError` and :func:`json_body`: a control body is JSON or a 400,
  never a 500 (bad JSON, NUL bytes, deep nesting, huge numbers included).
- :class:`RequestLog`: the request log (``GET /_sandbox/requests``) and the
  per-endpoint counters (``GET /_sandbox/stats``).
- :func:`add_fault_routes`: ``GET``/``POST``/``DELETE /_sandbox/faults`` over a
  :class:`sandbox.faults.FaultSwitches`.
- :func:`install_error_handlers`: JSON answers for HTTP errors, a size limit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.faults import FaultRuleError, FaultSwitches, stamp

log = logging.getLogger(__name__)

REQUEST_LOG_SIZE = 50_000
MAX_BODY_BYTES = 32 * 1024 * 1024  # room for uploaded test files


class ControlError(Exception):
    """A control-API error answer: ``{"error": <code>, "message": <why>}``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> Response:
        return answer({"error": self.error, "message": self.message}, self.status)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def parse_json(raw: bytes) -> Any:
    """Decode a JSON document; raises ValueError for anything that is not one.

    ``json.loads`` raises RecursionError on deep nesting and ValueError on
    integers too long to convert; both are bad input, not a server fault.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError("body must be JSON (UTF-8)") from exc


def json_body(*, object_only: bool = True) -> Any:
    """The request's JSON body (empty: ``{}``); a ControlError 400 when it is not usable."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise ControlError(400, "invalid_request", str(exc)) from None
    if object_only and not isinstance(body, dict):
        raise ControlError(400, "invalid_request", "body must be a JSON object")
    return body


class RequestLog:
    """The last requests a simulator served and how many each endpoint got."""

    def __init__(self, endpoints: Iterable[str], size: int = REQUEST_LOG_SIZE) -> None:
        self._endpoints = tuple(endpoints)
        self._size = size
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._items: deque[dict[str, Any]] = deque(maxlen=self._size)
            self._counts = dict.fromkeys(self._endpoints, 0)

    def count(self, endpoint: str) -> None:
        """Count a request as it arrives (before faults or handling)."""
        with self._lock:
            self._counts[endpoint] = self._counts.get(endpoint, 0) + 1

    def record(self, endpoint: str, status: int | None, **extra: Any) -> None:
        """Log the request being served, with the status sent (None: dropped)."""
        entry = {"at": stamp(), "endpoint": endpoint, "method": request.method,
                 "path": request.full_path.rstrip("?"), "response_status": status, **extra}
        with self._lock:
            self._items.append(entry)

    def items(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._items if endpoint in (None, item["endpoint"])]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def add_fault_routes(control: Blueprint, switches: Callable[[], FaultSwitches],
                     event_prefix: str) -> None:
    """``GET``/``POST``/``DELETE /faults`` on ``control``, over the switches ``switches()``.

    POST answers 201 with the rule (200 when the body used the legacy ``kind``,
    as the Twilio simulator always did); GET ``{"items": [rule, ...]}``; DELETE
    ``{"removed": n}``.
    """

    def list_faults() -> Response:
        return answer({"items": switches().list()})

    def add_fault() -> Response:
        try:
            rule, legacy = switches().add(json_body(object_only=False))
        except FaultRuleError as exc:
            raise ControlError(400, "invalid_request", str(exc)) from None
        log.info(json.dumps({"event": f"{event_prefix}.fault_set", **rule.to_json()}))
        return answer(rule.to_json(), 200 if legacy else 201)

    def clear_faults() -> Response:
        return answer({"removed": switches().clear()})

    control.add_url_rule("/faults", "list_faults", list_faults, methods=["GET"])
    control.add_url_rule("/faults", "add_fault", add_fault, methods=["POST"])
    control.add_url_rule("/faults", "clear_faults", clear_faults, methods=["DELETE"])


def install_error_handlers(app: Flask, api_error: Callable[[HTTPException], Response] | None
                           = None) -> None:
    """Control errors and HTTP errors as JSON; bodies over MAX_BODY_BYTES are a 413.

    ``api_error`` renders HTTP errors outside ``/_sandbox/`` in the simulated
    API's own error shape.
    """
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.register_error_handler(ControlError, lambda exc: exc.response())

    def http_error(exc: HTTPException) -> Response:
        if api_error is not None and not request.path.startswith("/_sandbox/"):
            return api_error(exc)
        code = (exc.name or "error").lower().replace(" ", "_")
        return answer({"error": code, "message": exc.description or exc.name}, exc.code or 500)

    app.register_error_handler(HTTPException, http_error)


# --- field checks for control bodies ----------------------------------------------------


def bad_request(message: str) -> ControlError:
    return ControlError(400, "invalid_request", message)


def int_field(body: dict[str, Any], name: str, default: int | None, low: int,
              high: int) -> int | None:
    """An integer field from ``low`` to ``high`` (booleans are not integers)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}")
    return value


def number_field(body: dict[str, Any], name: str, default: float | None, low: float,
                 high: float) -> float | None:
    """A number field from ``low`` to ``high`` (NaN and infinities are refused)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"{name} must be a number from {low} to {high}")
    return float(value)


def str_field(body: dict[str, Any], name: str, default: str | None = None, *,
              max_len: int = 2048, required: bool = False) -> str | None:
    """A string field of at most ``max_len`` characters, with no NUL."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required")
        return default
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
        raise bad_request(f"{name} must be a string of at most {max_len} characters")
    if required and not value:
        raise bad_request(f"{name} must not be empty")
    return value


def url_field(body: dict[str, Any], name: str, default: str | None = None, *,
              required: bool = False) -> str | None:
    """An absolute http(s) URL field."""
    value = str_field(body, name, default, required=required)
    if value and not value.startswith(("http://", "https://")):
        raise bad_request(f"{name} must be an http(s) URL")
    return value or default
