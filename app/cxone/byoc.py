"""The BYOC integration box's wire format: what CXone sends to our /byoc endpoints and what
we answer (docs/contracts/cxone-dfo.md, "Hosted by the gateway").

Bodies are parsed leniently (unknown fields are fine) but every value we use is
checked exactly and bounded, as everywhere else (app/inputs.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.inputs import InvalidInput, canonical_phone, external_id, text

MAX_TEXT = 16_000  # a long reply is sent in parts (app/outbound.py)
MAX_ATTACHMENTS = 10
MAX_URL = 2048


class CallbackError(ValueError):
    """A callback we refuse (400 or 404), naming the field."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"errors": [{"field": self.field, "message": self.message}]}


@dataclass(frozen=True)
class Callback:
    """An agent reply CXone pushed: where it goes and what it says."""

    channel_id: str | None  # None on the legacy path until the thread's channel is known
    thread: str
    to: str
    body: str
    media_urls: tuple[str, ...]
    cxone_ref: str | None  # CXone's own message id, when the body carries one

    def fingerprint(self) -> str:
        """What makes two callbacks "the same reply" (CXone retrying)."""
        if self.cxone_ref:
            return "ref:" + hashlib.sha256(f"{self.channel_id}\0{self.cxone_ref}".encode()
                                           ).hexdigest()
        raw = json.dumps([self.channel_id, self.thread, self.to, self.body,
                          sorted(self.media_urls)], ensure_ascii=False)
        return "body:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def parse_callback(body: Any, *, thread: str | None = None) -> Callback:
    """A 3.0 outbound callback (or, with ``thread`` from the URL, a legacy reply)."""
    if not isinstance(body, dict):
        raise CallbackError("body", "must be a JSON object")
    thread_id = thread or _id_at(body, "thread") or _id_at(body, "post")
    if not thread_id:
        raise CallbackError("thread", "thread.idOnExternalPlatform is missing")
    try:
        thread_id = external_id(thread_id, "thread")
        to = canonical_phone(_recipient(body, thread_id), "endUserRecipients")
        media = _attachments(body.get("attachments"))
        content = _object(body.get("messageContent"))
        payload = _object(content.get("payload"))
        raw_text = payload.get("text") if payload.get("text") is not None else content.get("text")
        message = text(raw_text or "", "messageContent", max_length=MAX_TEXT,
                       allow_empty=bool(media))
        ref = _cxone_ref(body)
    except InvalidInput as exc:
        raise CallbackError(exc.field, exc.reason) from None
    return Callback(channel_id=None, thread=thread_id, to=to, body=message, media_urls=media,
                    cxone_ref=ref)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id_at(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    found = value.get("idOnExternalPlatform") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _recipient(body: dict[str, Any], thread: str) -> Any:
    """The primary end-user recipient, else the customer number of the thread id."""
    for key in ("endUserRecipients", "recipients"):
        entries = body.get(key)
        if isinstance(entries, list):
            primary = [e for e in entries if isinstance(e, dict) and e.get("isPrimary")]
            if primary:
                return primary[0].get("idOnExternalPlatform")
    _, _, customer = thread.rpartition("_")
    if customer.isdigit():
        return "+" + customer
    raise InvalidInput("endUserRecipients", "has no primary recipient")


def _attachments(value: Any) -> tuple[str, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise InvalidInput("attachments", f"must be a list of at most {MAX_ATTACHMENTS} items")
    urls = []
    for item in value:
        url = item.get("url") if isinstance(item, dict) else None
        if not (isinstance(url, str) and url.startswith(("https://", "http://"))
                and len(url) <= MAX_URL and url.isprintable()):
            raise InvalidInput("attachments", "each needs an http(s) url")
        urls.append(url)
    return tuple(urls)


def _cxone_ref(body: dict[str, Any]) -> str | None:
    """CXone's own message id, when the body carries one (``id``, ``messageId``,
    ``message.id``): then it, not a time window, recognises a retry."""
    message = body.get("message")
    for value in (body.get("id"), body.get("messageId"),
                  message.get("id") if isinstance(message, dict) else None):
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return external_id(str(value), "id")
    return None


def callback_answer(message_id: str, callback: Callback, at: datetime) -> dict[str, Any]:
    """The 3.0 answer: our message id, the thread and the recipient."""
    return {"message": {"idOnExternalPlatform": message_id,
                        "createdAtWithMilliseconds": stamp(at)},
            "thread": {"idOnExternalPlatform": callback.thread},
            "recipients": [{"idOnExternalPlatform": callback.to, "isPrimary": True}],
            "endUserIdentities": [{"idOnExternalPlatform": callback.to}]}


def stamp(at: datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def token_request(form: Any) -> tuple[str, str, str]:
    """(grant_type, client_id, client_secret) of a token request, JSON or form."""
    def field(name: str) -> str:
        value = form.get(name) if hasattr(form, "get") else None
        return value if isinstance(value, str) and len(value) <= 500 else ""

    return field("grant_type"), field("client_id"), field("client_secret")


def redacted(body: Any) -> Any:
    """A callback body fit for the log: texts replaced by their length, URLs without their
    query (signed links), numbers masked by the log formatter itself."""
    if isinstance(body, dict):
        return {k: (f"<{len(v)} chars>" if k == "text" and isinstance(v, str) else redacted(v))
                for k, v in list(body.items())[:50]}
    if isinstance(body, list):
        return [redacted(v) for v in body[:20]]
    if isinstance(body, str) and body.startswith(("http://", "https://")):
        return body.split("?", 1)[0]
    return body
