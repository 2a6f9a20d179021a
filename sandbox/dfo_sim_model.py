"""Values, body checks and small tools of the DFO 3.0 simulator (no Flask, no state).

Bodies follow ``shared/contracts/cxone-dfo.md``. Checks raise :class:`DfoError`,
which answers in DFO's error shape ``{"errors": [{"field", "message",
"errorCode"}], "uid"}``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

E164 = re.compile(r"\+[1-9]\d{1,14}")
THREAD_ID = re.compile(r"[1-9]\d{1,14}_[1-9]\d{1,14}")
MAX_ID = 255
MAX_TEXT = 10_000
MAX_ATTACHMENTS = 10
DFO_STATUSES = ("delivered", "seen", "failed")
OTT_PURPOSE = "channel-integration"


class DfoError(Exception):
    """An error answer in DFO's shape; ``headers`` go with it (Retry-After, WWW-Authenticate)."""

    def __init__(self, status: int, error_code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.error_code, self.message, self.field)


def error_body(error_code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """``{"errors": [{"field", "message", "errorCode"}], "uid"}``."""
    return {"errors": [{"field": field, "message": message, "errorCode": error_code}],
            "uid": str(uuid.uuid4())}


def invalid(field: str, message: str) -> DfoError:
    return DfoError(400, "InvalidRequest", message, field)


def digits(number: str) -> str:
    return number.lstrip("+")


def thread_id_for(business: str, customer: str) -> str:
    """The contract's thread id: ``{business digits}_{customer digits}``."""
    return f"{digits(business)}_{digits(customer)}"


def now_millis(ts: float) -> str:
    """``2026-12-01T14:03:22.481Z``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` and an empty signature: the sandbox signs nothing."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# --- field checks -------------------------------------------------------------------------


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, f"{field} must be an object")
    return value


def require_str(body: dict[str, Any], name: str, where: str = "", *, max_len: int = MAX_ID,
                allow_empty: bool = False) -> str:
    field = where + name
    value = body.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise invalid(field, f"{field} must be a non-empty string")
    if len(value) > max_len or "\x00" in value:
        raise invalid(field, f"{field} must be at most {max_len} characters, with no NUL")
    return value


def require_e164(body: dict[str, Any], name: str, where: str = "") -> str:
    value = require_str(body, name, where, max_len=16)
    if not E164.fullmatch(value):
        raise invalid(where + name, f"{where}{name} must be an E.164 number like +14155559876")
    return value


def require_time(body: dict[str, Any], name: str) -> str:
    value = require_str(body, name, max_len=64)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, f"{name} must be an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise invalid(name, f"{name} must carry a time zone (Z)")
    return value


def check_attachments(value: Any) -> list[dict[str, Any]]:
    """``[{"friendlyName", "url"}]``, at most 10."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise invalid("attachments", f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    checked = []
    for index, item in enumerate(value):
        where = f"attachments[{index}]."
        item = require_object(item, where.rstrip("."))
        url = require_str(item, "url", where, max_len=4096)
        if not url.startswith(("http://", "https://")):
            raise invalid(where + "url", f"{where}url must be an http(s) URL")
        require_str(item, "friendlyName", where)
        checked.append(dict(item))
    return checked


@dataclass(frozen=True)
class InboundMessage:
    """A checked ``POST /dfo/3.0/channels/{channelId}/messages`` body."""

    id: str
    thread_id: str
    author: str
    text: str
    attachments: list[dict[str, Any]]
    created_at: str


def check_inbound(body: Any, channel_number: str) -> InboundMessage:
    """Check a message-create body for the channel served by ``channel_number``."""
    body = require_object(body, "body")
    message_id = require_str(body, "idOnExternalPlatform")
    if body.get("direction") != "inbound":
        raise invalid("direction", 'direction must be "inbound"')
    created_at = require_time(body, "createdAtWithMilliseconds")
    thread_id = require_str(require_object(body.get("thread"), "thread"), "idOnExternalPlatform",
                            "thread.")
    content = require_object(body.get("messageContent"), "messageContent")
    if content.get("type") != "TEXT":
        raise invalid("messageContent.type", 'messageContent.type must be "TEXT"')
    payload = require_object(content.get("payload"), "messageContent.payload")
    text = require_str(payload, "text", "messageContent.payload.", max_len=MAX_TEXT,
                       allow_empty=True)
    author = require_e164(require_object(body.get("authorEndUserIdentity"),
                                         "authorEndUserIdentity"),
                          "idOnExternalPlatform", "authorEndUserIdentity.")
    _check_recipients(body.get("recipients"), channel_number)
    attachments = check_attachments(body.get("attachments"))
    if not text and not attachments:
        raise invalid("messageContent.payload.text", "text must not be empty without attachments")
    if thread_id != thread_id_for(channel_number, author):
        raise invalid("thread.idOnExternalPlatform",
                      f"thread id must be {thread_id_for(channel_number, author)} "
                      "({business digits}_{customer digits})")
    return InboundMessage(message_id, thread_id, author, text, attachments, created_at)


def _check_recipients(value: Any, channel_number: str) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not value or len(value) > 10:
        raise invalid("recipients", "recipients must be a non-empty list")
    primary = [require_object(item, "recipients[]") for item in value
               if isinstance(item, dict) and item.get("isPrimary") is True]
    if len(primary) != 1:
        raise invalid("recipients", "recipients must have exactly one isPrimary entry")
    number = require_e164(primary[0], "idOnExternalPlatform", "recipients[primary].")
    if number != channel_number:
        raise invalid("recipients", f"the primary recipient must be the channel's number "
                                    f"{channel_number}")


def check_status(body: Any) -> dict[str, Any]:
    """``{"status": delivered|seen|failed, "updatedAt", "reason"?}`` (reason required on failed)."""
    body = require_object(body, "body")
    status = body.get("status")
    if status not in DFO_STATUSES:
        raise invalid("status", f"status must be one of {', '.join(DFO_STATUSES)}")
    require_time(body, "updatedAt")
    if status == "failed" or body.get("reason") is not None:
        require_str(body, "reason", max_len=1000)
    return body


def check_ott_verification(body: Any) -> tuple[str, str, str]:
    """``{brandId, userId, token, purpose}`` → (brandId, userId, token) as strings."""
    body = require_object(body, "body")
    brand = body.get("brandId")
    if isinstance(brand, int) and not isinstance(brand, bool) and 0 < brand < 10**12:
        brand = str(brand)
    if not isinstance(brand, str) or not brand.isdigit() or len(brand) > 12:
        raise invalid("brandId", "brandId must be a brand number")
    user = require_str(body, "userId")
    token = require_str(body, "token", max_len=512)
    if body.get("purpose") != OTT_PURPOSE:
        raise invalid("purpose", f'purpose must be "{OTT_PURPOSE}"')
    return brand, user, token


def check_channel(body: Any) -> dict[str, Any]:
    """A ``POST /dfo/3.0/channels`` body as the contract writes it."""
    body = require_object(body, "body")
    for name in ("id", "channelIntegrationId", "realExternalPlatformId", "name"):
        require_str(body, name)
    require_e164(body, "idOnExternalPlatform")
    for name, wanted in (("isPrivate", True), ("hasTreeStructure", False)):
        if body.get(name) is not wanted:
            raise invalid(name, f"{name} must be {str(wanted).lower()}")
    if body["realExternalPlatformId"] != "sms":
        raise invalid("realExternalPlatformId", 'realExternalPlatformId must be "sms"')
    return body


# --- records ------------------------------------------------------------------------------


@dataclass
class Channel:
    id: str
    number: str
    source: str  # config | control | add-action
    body: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "idOnExternalPlatform": self.number, "source": self.source,
                "body": self.body, "createdAt": self.created_at}


@dataclass
class OneTimeToken:
    token: str
    brand_id: str
    user_id: str
    expires_at: float
    used_at: float | None = None


@dataclass
class Outbound:
    """An agent reply the gateway accepted: its id takes status updates."""

    id: str
    channel_id: str
    thread_id: str
    mode: str
    accepted_at: str
    status_updates: list[dict[str, Any]] = field(default_factory=list)
