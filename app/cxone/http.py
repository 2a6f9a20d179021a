"""HTTP plumbing both CXone adapters share: a cached token, status codes → our errors.

The adapters own their wire formats; this module only knows HTTP: how a token
is kept (refreshed before expiry, a refusal remembered for a while so bad
credentials do not hammer the token endpoint) and how an answer's status
becomes one of the gateway's errors (app/errors.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from app.errors import AuthenticationFailed, Conflict, NotFound, PermanentError, TransientError
from app.http_client import ConnectTimeout, HttpClient, HttpFailure, ReadTimeout, Response

TIMEOUT = (5.0, 15.0)
REFUSAL_MEMORY_S = 30.0


def session(pool_size: int = 32) -> HttpClient:
    """Keep-alive connections sized for the worker's greenlets (no retries of their own)."""
    return HttpClient(pool_size=pool_size, timeout=TIMEOUT)


class TokenCache:
    """A bearer token fetched only when missing, near expiry, or forced (after a 401)."""

    def __init__(self, fetch: Callable[[], tuple[str, float]]) -> None:
        self._fetch = fetch  # → (token, lifetime in seconds); raises our errors
        self._token: str | None = None
        self._expires = 0.0  # time.monotonic() after which the token is stale
        self._lock = threading.Lock()
        self._refused: AuthenticationFailed | None = None
        self._refused_until = 0.0

    def get(self, *, force: bool = False) -> str:
        with self._lock:
            now = time.monotonic()
            if not force and self._token and now < self._expires:
                return self._token
            if self._refused is not None and now < self._refused_until:
                raise self._refused
            try:
                token, lifetime = self._fetch()
            except AuthenticationFailed as exc:
                self._refused, self._refused_until = exc, now + REFUSAL_MEMORY_S
                raise
            self._refused = None
            self._token = token
            # Refresh a little before expiry: a minute, or a tenth of a short lifetime.
            margin = min(60.0, lifetime * 0.1)
            self._expires = time.monotonic() + max(1.0, lifetime - margin)
            return token

    @property
    def refused(self) -> AuthenticationFailed | None:
        """The last refusal, while it is remembered (readiness reports it)."""
        if self._refused is not None and time.monotonic() < self._refused_until:
            return self._refused
        return None


def raise_for_status(system: str, operation: str, response: Response) -> None:
    """Our error for an HTTP error answer: 429/5xx transient, 404/409 final answers."""
    status = response.status_code
    if status < 400:
        return
    detail = short_detail(response)
    message = f"{system} {operation}: HTTP {status}{': ' + detail if detail else ''}"
    if status == 429:
        raise TransientError(message, code="429", status=status,
                             retry_after=retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        raise TransientError(message, code=str(status), status=status)
    if status == 401:
        raise AuthenticationFailed(message + " (token refused twice)", status=status)
    if status == 404:
        raise NotFound(message, code="404", status=status)
    if status == 409:
        raise Conflict(message, code="409", status=status)
    raise PermanentError(message, code=str(status), status=status)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (an HTTP date falls back to our own backoff)."""
    if not value or len(value) > 20:
        return None
    try:
        return min(3600.0, max(0.0, float(value)))
    except ValueError:
        return None


def short_detail(response: Response) -> str:
    """A short, printable reason from an error body (never the whole body)."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(data.get(key), str):
                return _printable(data[key])
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return _printable(str(errors[0].get("message") or ""))
    return ""


def _printable(text: str) -> str:
    return "".join(c for c in text[:200] if c.isprintable())


def json_of(system: str, operation: str, response: Response) -> Any:
    """The answer's JSON; a body that is not JSON is the other side misbehaving (retry)."""
    try:
        return response.json()
    except ValueError:
        raise TransientError(f"{system} {operation}: the answer is not JSON") from None


def object_of(system: str, operation: str, response: Response) -> dict[str, Any]:
    data = json_of(system, operation, response)
    if not isinstance(data, dict):
        raise TransientError(f"{system} {operation}: the answer is not a JSON object")
    return data


def send(client: HttpClient, method: str, url: str, *, system: str, operation: str,
         **kwargs: Any) -> Response:
    """One request; connection errors and timeouts become TransientError."""
    from app.metrics import observe_call

    started = time.perf_counter()
    try:
        return client.request(method, url, **kwargs)
    except (ConnectTimeout, ReadTimeout) as exc:
        raise TransientError(f"{system} {operation}: timeout", code="timeout") from exc
    except HttpFailure as exc:
        raise TransientError(f"{system} {operation}: {exc}", code="connection") from exc
    finally:
        observe_call(system, operation, time.perf_counter() - started)
