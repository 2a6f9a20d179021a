"""Values, records and input checks shared by the CXone simulator's modules.

Nothing here holds state or knows about Flask: the checks take plain JSON
values and raise :class:`ApiError`, which the views turn into a JSON answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

STATUSES = ("PENDING", "SENT", "DELIVERED", "FAILED", "UNDELIVERABLE")
UPDATE_STATUSES = ("SENT", "DELIVERED", "FAILED", "UNDELIVERABLE")
FINAL_STATUSES = frozenset({"DELIVERED", "FAILED", "UNDELIVERABLE"})
DIRECTIONS = ("INBOUND", "OUTBOUND")
CHANNELS = ("SMS",)
# Inbound messages are stored as delivered: they reached CXone.
INBOUND_STATUS = "DELIVERED"

# Endpoint names as counted in /_sandbox/stats (``files`` joins once it is asked for),
# and the fault targets that hit them.
ENDPOINTS = ("token", "poll", "put", "conversation_get", "conversation_create", "inbound")
FAULT_TARGETS: dict[str, frozenset[str]] = {
    "token": frozenset({"token"}),
    "poll": frozenset({"poll"}),
    "put": frozenset({"put"}),
    "conversations": frozenset({"conversation_get", "conversation_create"}),
    "conversation_get": frozenset({"conversation_get"}),
    "conversation_create": frozenset({"conversation_create"}),
    "inbound": frozenset({"inbound"}),
    "files": frozenset({"files"}),
    "any": frozenset({*ENDPOINTS, "files"}),
}
ERROR_CODES = {
    400: "invalid_request", 401: "invalid_token", 403: "forbidden", 404: "not_found",
    409: "conflict", 429: "too_many_requests", 500: "internal_server_error",
    502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout",
}

MAX_ATTACHMENTS = 10
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


class ApiError(Exception):
    """An error answer: HTTP status, a short error code and a readable reason."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def reply(self) -> Reply:
        return Reply(
            status=self.status,
            body={"error": self.error, "message": self.message},
            headers=dict(self.headers),
        )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


@dataclass
class Reply:
    """What one API request answers (``drop``: close the connection instead)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    message_id: str | None = None
    duplicate: bool = False


@dataclass
class Conversation:
    id: str
    customer_number: str
    business_number: str
    created: float
    status: str = "OPEN"
    message_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "customerNumber": self.customer_number,
            "businessNumber": self.business_number,
            "channel": "SMS",
            "createdTime": format_time(self.created),
        }


@dataclass(eq=False)
class MessageRecord:
    """A message as the API shows it (``fields``); a raw test item is shown as given."""

    fields: dict[str, Any]
    created: float | None
    raw: bool = False

    @property
    def id(self) -> str | None:
        value = self.fields.get("id")
        return value if isinstance(value, str) and value else None


# --- time -----------------------------------------------------------------------------


def format_time(ts: float, *, millis: bool = False) -> str:
    """ISO 8601 in UTC with a ``Z``: seconds (as in the contract) or milliseconds."""
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> float:
    """Parse ISO 8601 (``Z`` or an offset; no offset means UTC) into epoch seconds."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a timestamp")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_given_time(ts: float) -> str:
    """Seconds precision unless the timestamp has a fraction worth keeping."""
    return format_time(ts, millis=round(ts * 1000) % 1000 != 0)


# --- checks ---------------------------------------------------------------------------


def is_e164(value: Any) -> bool:
    return isinstance(value, str) and bool(_E164.match(value))


def require_object(body: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    return body


def require_e164(body: dict[str, Any], name: str, prefix: str = "") -> str:
    value = body.get(name)
    if value is None:
        raise bad_request(f"{prefix}{name} is required")
    if not is_e164(value):
        raise bad_request(f"{prefix}{name} must be an E.164 number like +14155559876")
    return str(value)


def require_choice(body: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = body.get(name)
    if value not in choices:
        shown = "missing" if value is None else repr(value)
        raise bad_request(f"{name} must be one of {', '.join(choices)} (got {shown})")
    return str(value)


def optional_string(body: dict[str, Any], name: str, prefix: str = "") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"{prefix}{name} must be a non-empty string")
    return value


def optional_int(body: dict[str, Any], name: str, low: int, prefix: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise bad_request(f"{prefix}{name} must be an integer >= {low}")
    return value


def optional_time(body: dict[str, Any], name: str, prefix: str = "") -> float | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise bad_request(f"{prefix}{name} must be an ISO 8601 timestamp") from None


def check_status_update(body: Any) -> dict[str, Any]:
    """Validate a status PUT body as the contract writes it."""
    body = require_object(body)
    status = body.get("status")
    if status == "UNDIVERABLE":
        raise bad_request("status UNDIVERABLE is the seed guide's typo: use UNDELIVERABLE")
    require_choice(body, "status", UPDATE_STATUSES)
    receipt = body.get("deliveryReceipt")
    if receipt is not None:
        receipt = require_object(receipt, "deliveryReceipt")
        if "status" in receipt and receipt["status"] not in STATUSES:
            raise bad_request(f"deliveryReceipt.status must be one of {', '.join(STATUSES)}")
        optional_time(receipt, "timestamp", "deliveryReceipt.")
    reason = body.get("reason")
    if status in ("FAILED", "UNDELIVERABLE") and reason is None:
        raise bad_request(f"reason {{code, message}} is required with status {status}")
    if reason is not None:
        reason = require_object(reason, "reason")
        if not isinstance(reason.get("code"), str) or not reason["code"]:
            raise bad_request('reason.code must be a non-empty string such as "30003"')
        if not isinstance(reason.get("message"), str):
            raise bad_request("reason.message must be a string")
    if status == "SENT" and body.get("externalId") is None:
        raise bad_request("externalId (the Twilio MessageSid) is required with status SENT")
    optional_string(body, "externalId")
    return body


def check_conversation(body: Any) -> tuple[str, str]:
    """Validate a create-conversation body; returns (customerNumber, businessNumber)."""
    body = require_object(body)
    require_choice(body, "channel", CHANNELS)
    return require_e164(body, "customerNumber"), require_e164(body, "businessNumber")


def check_inbound(body: Any, conversation: Conversation) -> dict[str, Any]:
    """Validate an inbound post for ``conversation``; returns the checked values."""
    body = require_object(body)
    require_choice(body, "direction", ("INBOUND",))
    require_choice(body, "channel", CHANNELS)
    sender, recipient = require_e164(body, "from"), require_e164(body, "to")
    if sender != conversation.customer_number:
        raise bad_request("from must be the conversation's customerNumber")
    if recipient != conversation.business_number:
        raise bad_request("to must be the conversation's businessNumber")
    text = body.get("body", "")
    if not isinstance(text, str):
        raise bad_request("body must be a string")
    attachments = _check_attachments(body.get("attachments"))
    if not text and not attachments:
        raise bad_request("body must not be empty unless there are attachments")
    allow_duplicates = body.get("allowDuplicateMessages", True)
    if not isinstance(allow_duplicates, bool):
        raise bad_request("allowDuplicateMessages must be a boolean")
    external_id = optional_string(body, "externalId")
    if external_id is None and not allow_duplicates:
        raise bad_request("externalId is required when allowDuplicateMessages is false")
    return {
        "from": sender,
        "to": recipient,
        "body": text,
        "externalId": external_id,
        "attachments": attachments,
        "allowDuplicateMessages": allow_duplicates,
    }


def check_reply_attachments(
    value: Any, prefix: str, file_url: Callable[[str], tuple[str, str] | None]
) -> list[dict[str, Any]]:
    """An agent reply's attachments: ``{"url", "contentType"}`` or ``{"file": name}``.

    ``file_url(name)`` gives the URL and content type of a file the simulator
    serves (None: no such file).
    """
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise bad_request(f"{prefix}attachments must be a list of at most {MAX_ATTACHMENTS}")
    checked = []
    for index, item in enumerate(value):
        where = f"{prefix}attachments[{index}]"
        item = require_object(item, where)
        if "file" in item:
            served = file_url(item["file"]) if isinstance(item["file"], str) else None
            if served is None:
                raise not_found(f"{where}.file: no file {item['file']!r} (POST /_sandbox/files)")
            checked.append({"url": served[0], "contentType": served[1]})
        else:
            checked.append(_check_attachment(item, where))
    return checked


def _check_attachments(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise bad_request(f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    return [_check_attachment(item, f"attachments[{index}]") for index, item in enumerate(value)]


def _check_attachment(item: Any, where: str) -> dict[str, Any]:
    item = require_object(item, where)
    url = item.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 4096:
        raise bad_request(f"{where}.url must be an http(s) URL")
    content_type = item.get("contentType")
    if not isinstance(content_type, str) or not content_type or len(content_type) > 255:
        raise bad_request(f"{where}.contentType must be a non-empty string")
    return dict(item)
