"""The Twilio adapter: Twilio's REST API for messages, over our pooled HTTP client.

Create, fetch and find speak Twilio's wire format directly (form-encoded requests,
JSON answers) through :mod:`app.http_client`: the ``twilio`` package's client costs
more CPU per create than the create itself (docs/PERFORMANCE.md); its request
validator's port rules are still what signatures are checked by. Twilio's answers
become the gateway's own errors (:mod:`app.errors`) here and nowhere else. A create
whose answer never came back is *ambiguous*: the caller must look the message up
before sending again.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from hashlib import sha1
from typing import Any, Protocol
from urllib.parse import quote, urlparse

from twilio.request_validator import add_port, remove_port

from app.config import Settings
from app.errors import AuthenticationFailed, PermanentError, TransientError
from app.http_client import (
    ConnectFailed,
    ConnectTimeout,
    HttpClient,
    HttpFailure,
    ReadTimeout,
    Response,
)

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
    def from_json(cls, data: Any) -> TwilioMessage:
        """A Message resource as Twilio answers it (JSON); TransientError when unusable."""
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str) \
                or not isinstance(data.get("status"), str):
            raise TransientError("twilio: the answer is not a Message resource",
                                 code="unreadable")
        code = data.get("error_code")
        return cls(sid=data["sid"], status=data["status"], to=_text(data.get("to")),
                   from_=_text(data.get("from")), body=_text(data.get("body")),
                   error_code=int(code) if isinstance(code, (int, str)) and str(code).isdigit()
                   else None,
                   date_created=_date(data.get("date_created")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: Any) -> datetime | None:
    """Twilio's RFC 2822 dates ("Wed, 02 Dec 2026 10:00:00 +0000")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


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
        self.http = HttpClient(pool_size=pool_size,
                               timeout=(min(5.0, settings.twilio_timeout_s),
                                        settings.twilio_timeout_s))
        self._auth = (settings.twilio_account_sid, settings.twilio_auth_token)
        # Keep edge/region out of it: the host is TWILIO_API_BASE_URL (contracts/twilio.md).
        self._messages_url = (f"{settings.twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/"
                              f"{settings.twilio_account_sid}/Messages")

    def create_message(self, *, to: str, body: str, from_: str | None = None,
                       media_urls: list[str] | None = None,
                       smart_encoded: bool = False) -> TwilioMessage:
        """Send one SMS through the Messaging Service (``From`` only when it is in the pool).

        ``smart_encoded``: Twilio replaces the characters that would turn a GSM-7 body
        into UCS-2 (curly quotes and the like), so it costs fewer segments.
        """
        form: dict[str, Any] = {
            "To": to, "Body": body,
            "MessagingServiceSid": self.settings.twilio_messaging_service_sid,
            "StatusCallback": self.settings.receipts_url,
        }
        if smart_encoded:
            form["SmartEncoded"] = "true"
        if from_:
            form["From"] = from_
        if media_urls:
            form["MediaUrl"] = list(media_urls)
        answer = self._call("create", "POST", self._messages_url + ".json", data=form,
                            may_have_sent=True)
        return TwilioMessage.from_json(_json(answer, "create", may_have_sent=True))

    def fetch_message(self, sid: str) -> TwilioMessage:
        """The current state of one message."""
        answer = self._call("fetch", "GET", f"{self._messages_url}/{quote(sid, safe='')}.json")
        return TwilioMessage.from_json(_json(answer, "fetch"))

    def find_messages(self, *, to: str, from_: str | None, since: datetime,
                      limit: int = 100) -> list[TwilioMessage]:
        """Recent messages to ``to`` (and from ``from_``) created at or after ``since``.

        One page of Twilio's newest-first listing (``limit`` at most 100), filtered on
        creation time here: a message Twilio has not sent yet has no ``date_sent``, so
        a DateSent filter would miss it.
        """
        params: dict[str, Any] = {"To": to, "PageSize": max(1, min(limit, 100))}
        if from_:
            params["From"] = from_
        answer = self._call("list", "GET", self._messages_url + ".json", params=params)
        page = _json(answer, "list")
        items = page.get("messages") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise TransientError("twilio list: the answer has no messages", code="unreadable")
        found = [TwilioMessage.from_json(item) for item in items[:limit]]
        return [m for m in found if m.date_created is None or m.date_created >= since]

    def _call(self, operation: str, method: str, url: str, *, may_have_sent: bool = False,
              **kwargs: Any) -> Response:
        """One call; anything but a 2xx answer becomes the gateway's own error."""
        started = time.perf_counter()
        try:
            answer = self.http.request(method, url, auth=self._auth,
                                       headers={"Accept": "application/json"}, **kwargs)
        except ConnectTimeout as exc:
            raise TransientError(f"twilio {operation}: connect timeout", code="timeout") from exc
        except ConnectFailed as exc:  # nothing was sent: never ambiguous
            raise TransientError(f"twilio {operation}: connection refused ({exc})",
                                 code="connection") from exc
        except ReadTimeout as exc:
            raise TransientError(f"twilio {operation}: no answer in time",
                                 code="timeout", ambiguous=may_have_sent) from exc
        except HttpFailure as exc:
            raise TransientError(f"twilio {operation}: connection dropped ({exc})",
                                 code="connection", ambiguous=may_have_sent) from exc
        finally:
            observe_latency("twilio", operation, time.perf_counter() - started)
        if answer.status_code >= 400:
            raise _error_for(operation, answer, may_have_sent)
        return answer


def _json(answer: Response, operation: str, *, may_have_sent: bool = False) -> Any:
    try:
        return answer.json()
    except ValueError:
        raise TransientError(f"twilio {operation}: the answer is not JSON", code="unreadable",
                             ambiguous=may_have_sent) from None


def _error_for(operation: str, answer: Response, may_have_sent: bool) -> Exception:
    """Twilio's error answer ({"code", "message", "status"}) as the gateway's error."""
    status = answer.status_code
    code, detail = _error_body(answer.text)
    message = f"twilio {operation}: HTTP {status}" + (f" code {code}" if code else "") + \
        f": {detail or answer.reason or 'error'}"
    if status == 429 or code == "20429":
        return TransientError(message, code="20429", status=status)
    if status in (401, 403) and code in ("20003", None):
        return AuthenticationFailed(message, code=code, status=status)
    if status >= 500:
        # The request reached Twilio; a 5xx does not promise nothing was created.
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


def observe_latency(system: str, operation: str, seconds: float) -> None:
    """Record an outside call's latency (metrics hook; see app.metrics)."""
    from app import metrics

    metrics.observe_call(system, operation, seconds)
