"""The CXone adapter: everything CXone-specific sits behind this module.

It speaks the contract in shared/contracts/cxone-open-messaging.md (OAuth
client credentials, cursor poll, status PUT, conversations, inbound posts). A
DFO 3.0 adapter for a real tenant would sit beside it with the same methods.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from app.config import Settings
from app.errors import AuthenticationFailed, Conflict, NotFound, PermanentError, TransientError
from app.logs import event
from app.metrics import observe_call

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/v2/open-messaging/messages"
CONVERSATIONS_PATH = "/api/v2/open-messaging/conversations"
TIMEOUT = (5.0, 15.0)
REFUSAL_MEMORY_S = 30.0
MAX_CURSOR = 2048


@dataclass(frozen=True)
class Page:
    """One page of the message feed and the cursor that resumes after it."""

    items: list[dict[str, Any]]
    cursor: str | None


class CxoneClient:
    """Client-credentials token (cached, refreshed before expiry and on 401) and API calls."""

    def __init__(self, settings: Settings, *, pool_size: int = 32) -> None:
        self.settings = settings
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() after which the token is stale
        self._token_lock = threading.Lock()
        # After CXone refused our credentials, callers get the same answer for a while
        # instead of asking again (no hammering the token endpoint with bad secrets).
        self._refused: AuthenticationFailed | None = None
        self._refused_until = 0.0

    # -- token -----------------------------------------------------------------------------

    def token(self, *, force: bool = False) -> str:
        """A bearer token, fetched only when missing, near expiry, or ``force``d."""
        with self._token_lock:
            now = time.monotonic()
            if not force and self._token and now < self._token_expires:
                return self._token
            if self._refused is not None and now < self._refused_until:
                raise self._refused
            try:
                self._token, lifetime = self._fetch_token()
            except AuthenticationFailed as exc:
                self._refused, self._refused_until = exc, now + REFUSAL_MEMORY_S
                raise
            self._refused = None
            # Refresh a little before expiry: a minute, or a tenth of a short lifetime.
            margin = min(60.0, lifetime * 0.1)
            self._token_expires = time.monotonic() + max(1.0, lifetime - margin)
            return self._token

    def _fetch_token(self) -> tuple[str, float]:
        started = time.perf_counter()
        try:
            response = self.session.post(
                self.settings.cxone_token_url, data={"grant_type": "client_credentials"},
                auth=(self.settings.cxone_client_id, self.settings.cxone_client_secret),
                timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise TransientError(f"cxone token: {type(exc).__name__}", code="connection") from exc
        finally:
            observe_call("cxone", "token", time.perf_counter() - started)
        if response.status_code in (400, 401, 403):
            raise AuthenticationFailed(
                f"CXone refused the client credentials (HTTP {response.status_code}); "
                "check CXONE_CLIENT_ID and CXONE_CLIENT_SECRET", status=response.status_code)
        _raise_for_status("token", response)
        try:
            data = response.json()
            return str(data["access_token"]), float(data.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError("cxone token: malformed token response") from exc

    # -- API calls -------------------------------------------------------------------------

    def poll_messages(self, *, cursor: str | None, page_size: int, status: str | None = None,
                      created_before: str | None = None) -> Page:
        """One page of outbound SMS messages after ``cursor``."""
        params: dict[str, Any] = {"channel": "SMS", "direction": "OUTBOUND", "pageSize": page_size}
        if status:
            params["status"] = status
        if created_before:
            params["createdBefore"] = created_before
        if cursor:
            params["cursor"] = cursor
        data = _json(self._request("GET", MESSAGES_PATH, "poll", params=params), "poll")
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise TransientError("cxone poll: response has no items list")
        next_cursor = data.get("cursor")
        if next_cursor is not None and not (isinstance(next_cursor, str)
                                            and len(next_cursor) <= MAX_CURSOR
                                            and next_cursor.isprintable()):
            raise TransientError("cxone poll: the response's cursor is malformed")
        return Page(items=items, cursor=next_cursor)

    def update_status(self, message_id: str, body: dict[str, Any]) -> None:
        """PUT a status; NotFound (404) and Conflict (409, already final) are final answers."""
        self._request("PUT", f"{MESSAGES_PATH}/{_segment(message_id)}", "update", json=body)

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return _object(self._request("GET", f"{CONVERSATIONS_PATH}/{_segment(conversation_id)}",
                                     "conversation_get"), "conversation_get")

    def create_conversation(self, *, customer_number: str, business_number: str) -> dict[str, Any]:
        body = {"channel": "SMS", "customerNumber": customer_number,
                "businessNumber": business_number}
        return _object(self._request("POST", CONVERSATIONS_PATH, "conversation_create",
                                     json=body), "conversation_create")

    def post_inbound(self, conversation_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Post a customer's text; Conflict means the conversation is CLOSED."""
        path = f"{CONVERSATIONS_PATH}/{_segment(conversation_id)}/messages"
        return _object(self._request("POST", path, "inbound", json=message), "inbound")

    def _request(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        url = self.settings.cxone_api_base_url + path
        for attempt in (1, 2):
            token = self.token(force=attempt == 2)
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method, url, headers={"Authorization": f"Bearer {token}",
                                          "Accept": "application/json"},
                    timeout=TIMEOUT, **kwargs)
            except requests.Timeout as exc:
                raise TransientError(f"cxone {operation}: timeout", code="timeout") from exc
            except requests.RequestException as exc:
                raise TransientError(f"cxone {operation}: {type(exc).__name__}",
                                     code="connection") from exc
            finally:
                observe_call("cxone", operation, time.perf_counter() - started)
            if response.status_code == 401 and attempt == 1:
                event(log, "cxone.token_rejected", operation=operation)
                continue
            break
        _raise_for_status(operation, response)
        return response


def _raise_for_status(operation: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _short_body(response)
    message = f"cxone {operation}: HTTP {status}{': ' + detail if detail else ''}"
    if status == 429:
        raise TransientError(message, code="429", status=status,
                             retry_after=_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        raise TransientError(message, code=str(status), status=status)
    if status == 401:
        raise AuthenticationFailed(message + " (token refused twice)", status=status)
    if status == 404:
        raise NotFound(message, code="404", status=status)
    if status == 409:
        raise Conflict(message, code="409", status=status)
    raise PermanentError(message, code=str(status), status=status)


def _json(response: requests.Response, operation: str) -> Any:
    """The answer's JSON; a body that is not JSON is CXone misbehaving (try again later)."""
    try:
        return response.json()
    except ValueError:
        raise TransientError(f"cxone {operation}: the answer is not JSON") from None


def _object(response: requests.Response, operation: str) -> dict[str, Any]:
    data = _json(response, operation)
    if not isinstance(data, dict):
        raise TransientError(f"cxone {operation}: the answer is not a JSON object")
    return data


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _short_body(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:200]
    return ""


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
