"""The Twilio adapter: the official ``twilio`` package, pointed at TWILIO_API_BASE_URL.

Library exceptions become the gateway's own (:mod:`app.errors`) here and
nowhere else. A create whose answer never came back is *ambiguous*: the caller
must look the message up before sending again.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha1
from typing import Any, Protocol
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import add_port, remove_port
from twilio.rest import Client

from app.config import Settings
from app.errors import AuthenticationFailed, PermanentError, TransientError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TwilioMessage:
    """The fields of a Twilio Message resource the gateway uses."""

    sid: str
    status: str
    to: str | None
    from_: str | None
    body: str | None
    error_code: int | None
    date_created: datetime | None

    @classmethod
    def from_resource(cls, msg: Any) -> TwilioMessage:
        return cls(sid=msg.sid, status=msg.status, to=msg.to, from_=msg.from_, body=msg.body,
                   error_code=int(msg.error_code) if msg.error_code not in (None, "") else None,
                   date_created=msg.date_created)


class _HttpClient(TwilioHttpClient):
    """TwilioHttpClient with a connection pool large enough for our greenlets."""

    def __init__(self, pool_size: int, timeout_s: float) -> None:
        super().__init__(pool_connections=True, timeout=None)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.timeout = (min(5.0, timeout_s), timeout_s)  # type: ignore[assignment]


class SignatureChecker:
    """Checks ``X-Twilio-Signature`` exactly as the official RequestValidator does, cheaply.

    The signed string is the URL as Twilio called it followed by every POST parameter
    name and value (names sorted, repeated values sorted); Twilio signs the URL with or
    without the default port, so both are tried. The parameter part is built once and
    only the distinct URL variants are hashed: a forged request costs two HMACs, not
    three passes over the form (a flood of forgeries must stay cheap).
    """

    def __init__(self, auth_token: str) -> None:
        self.key = auth_token.encode("utf-8")

    def signature_is_valid(self, url: str, params: Any, signature: str | None) -> bool:
        """True when ``signature`` signs ``url`` (as Twilio called it) and the POST params."""
        if not signature or len(signature) > MAX_SIGNATURE:
            return False
        expected = signature.encode("utf-8", "replace")
        signed_params = _signed_params(params)
        parsed = urlparse(url)
        for candidate in dict.fromkeys((url, remove_port(parsed), add_port(parsed))):
            digest = hmac.new(self.key, (candidate + signed_params).encode("utf-8"), sha1)
            if hmac.compare_digest(base64.b64encode(digest.digest()), expected):
                return True
        return False


MAX_SIGNATURE = 200


def _signed_params(params: Any) -> str:
    """Names sorted, each name's distinct values sorted, concatenated (Twilio's rule)."""
    getlist = getattr(params, "getlist", None)
    parts: list[str] = []
    for name in sorted(set(params)):
        values = getlist(name) if getlist else [params[name]]
        parts.extend(name + value for value in sorted(set(values)))
    return "".join(parts)


class TwilioPort(Protocol):
    """What the core needs from Twilio (TwilioGateway; tests use an in-memory fake)."""

    def create_message(self, *, to: str, body: str, from_: str | None = None,
                       media_urls: list[str] | None = None,
                       smart_encoded: bool = False) -> TwilioMessage: ...
    def fetch_message(self, sid: str) -> TwilioMessage: ...
    def find_messages(self, *, to: str, from_: str | None, since: datetime,
                      limit: int = 100) -> list[TwilioMessage]: ...


class TwilioGateway:
    """Create, fetch and find messages."""

    def __init__(self, settings: Settings, *, pool_size: int = 64) -> None:
        self.settings = settings
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=_HttpClient(pool_size, settings.twilio_timeout_s),
                             environment={"_": ""})
        # Keep edge/region unset: they rewrite the host (contracts/twilio.md).
        self.client.edge = None
        self.client.region = None
        self.client.api.base_url = settings.twilio_api_base_url

    @property
    def _messages(self) -> Any:
        return self.client.api.v2010.accounts(self.settings.twilio_account_sid).messages

    def create_message(self, *, to: str, body: str, from_: str | None = None,
                       media_urls: list[str] | None = None,
                       smart_encoded: bool = False) -> TwilioMessage:
        """Send one SMS through the Messaging Service (``From`` only when it is in the pool).

        ``smart_encoded``: Twilio replaces the characters that would turn a GSM-7 body
        into UCS-2 (curly quotes and the like), so it costs fewer segments.
        """
        params: dict[str, Any] = {
            "to": to, "body": body,
            "messaging_service_sid": self.settings.twilio_messaging_service_sid,
            "status_callback": self.settings.receipts_url,
        }
        if smart_encoded:
            params["smart_encoded"] = True
        if from_:
            params["from_"] = from_
        if media_urls:
            params["media_url"] = media_urls
        return self._call("create", lambda: self._messages.create(**params), may_have_sent=True)

    def fetch_message(self, sid: str) -> TwilioMessage:
        """The current state of one message."""
        return self._call("fetch", lambda: self._messages(sid).fetch())

    def find_messages(self, *, to: str, from_: str | None, since: datetime,
                      limit: int = 100) -> list[TwilioMessage]:
        """Recent messages to ``to`` (and from ``from_``) created at or after ``since``.

        Filtered on creation time here: a message Twilio has not sent yet has no
        ``date_sent``, so a DateSent filter alone would miss it. The DateSent
        filter keeps only a day of slack to bound the listing.
        """
        kwargs: dict[str, Any] = {"to": to, "limit": limit, "page_size": min(limit, 100)}
        if from_:
            kwargs["from_"] = from_

        def listing() -> list[TwilioMessage]:
            found = [TwilioMessage.from_resource(m) for m in self._messages.list(**kwargs)]
            return [m for m in found if m.date_created is None or m.date_created >= since]

        return self._call("list", listing)

    def _call(self, operation: str, fn: Any, *, may_have_sent: bool = False) -> Any:
        started = time.perf_counter()
        try:
            result = fn()
        except TwilioRestException as exc:
            raise _translate_rest_error(operation, exc) from exc
        except TwilioException as exc:
            raise _translate_library_error(operation, exc, may_have_sent) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise TransientError(f"twilio {operation}: connect timeout", code="timeout") from exc
        except requests.exceptions.Timeout as exc:
            raise TransientError(f"twilio {operation}: no answer in time",
                                 code="timeout", ambiguous=may_have_sent) from exc
        except requests.exceptions.ConnectionError as exc:
            refused = _never_connected(exc)
            raise TransientError(
                f"twilio {operation}: {'connection refused' if refused else 'connection dropped'}",
                code="connection", ambiguous=may_have_sent and not refused) from exc
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"twilio {operation}: {type(exc).__name__}",
                                 code="http", ambiguous=may_have_sent) from exc
        finally:
            observe_latency("twilio", operation, time.perf_counter() - started)
        if isinstance(result, list):
            return result
        return TwilioMessage.from_resource(result)


def _translate_rest_error(operation: str, exc: TwilioRestException) -> Exception:
    code = str(exc.code) if exc.code is not None else None
    message = f"twilio {operation}: HTTP {exc.status} code {code}: {exc.msg}"
    if exc.status == 429 or code == "20429":
        return TransientError(message, code="20429", status=exc.status)
    if exc.status in (401, 403) and code in ("20003", None):
        return AuthenticationFailed(message, code=code, status=exc.status)
    if exc.status is not None and exc.status >= 500:
        # The request reached Twilio; a 5xx does not promise nothing was created.
        return TransientError(message, code=code or str(exc.status), status=exc.status,
                              ambiguous=operation == "create")
    return PermanentError(message, code=code, status=exc.status)


def _translate_library_error(operation: str, exc: TwilioException,
                             may_have_sent: bool) -> Exception:
    """The package's other exceptions, e.g. a list page that came back 500 or 429.

    ``TwilioException("Unable to fetch page", response)`` carries the HTTP
    response; anything else (an unreadable page) is worth another try.
    """
    what = str(exc.args[0]) if exc.args else type(exc).__name__
    response = next((a for a in exc.args[1:] if hasattr(a, "status_code")), None)
    if response is None:
        return TransientError(f"twilio {operation}: {what}", code="unreadable",
                              ambiguous=may_have_sent)
    status = int(response.status_code)
    code, detail = _error_body(getattr(response, "text", ""))
    message = f"twilio {operation}: HTTP {status}" + (f" code {code}" if code else "") + \
        f": {detail or what}"
    if status == 429 or code == "20429":
        return TransientError(message, code="20429", status=status)
    if status >= 500:
        return TransientError(message, code=code or str(status), status=status,
                              ambiguous=may_have_sent)
    return PermanentError(message, code=code, status=status)


def _error_body(text: str) -> tuple[str | None, str | None]:
    """(code, message) from Twilio's error body, when it is one."""
    try:
        body = json.loads(text or "")
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (str(code) if code is not None else None,
            str(message)[:300] if message is not None else None)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


def observe_latency(system: str, operation: str, seconds: float) -> None:
    """Record an outside call's latency (metrics hook; see app.metrics)."""
    from app import metrics

    metrics.observe_call(system, operation, seconds)
