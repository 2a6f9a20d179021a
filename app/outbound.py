"""Agent replies from CXone (poll or push) become send jobs, once each.

The dedupe key of a send job is the CXone message id, so the poller, push
mode and the reconciler can all offer the same message and it is enqueued once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from app.config import Settings
from app.inputs import InvalidInput, canonical_phone, external_id, text
from app.logs import event
from app.pacing import place_new_sends
from app.status_sync import enqueue_cxone_update
from app.statuses import failed_update
from db import audit, cxone_state, outbox
from db.pool import Connection

log = logging.getLogger(__name__)

SEND_KIND = "send_sms"
MAX_BODY = 1600
MAX_ATTACHMENTS = 10
MAX_URL = 2048


class InvalidMessage(ValueError):
    """A CXone Message that cannot be sent; ``field`` names what is wrong."""

    def __init__(self, field_name: str, reason: str, message_id: str | None = None) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason
        self.message_id = message_id


@dataclass(frozen=True)
class OutboundReply:
    """An agent reply to send: the parts of a CXone Message the gateway uses."""

    message_id: str
    conversation_id: str
    to: str
    from_: str | None
    body: str
    media_urls: list[str] = field(default_factory=list)

    def payload(self, source: str) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return {**data, "purpose": "reply", "dispatch": 1, "source": source}


def parse_reply(item: Any) -> OutboundReply:
    """Validate a CXone Message (poll item or push body); raises :class:`InvalidMessage`.

    Every field is checked exactly and bounded. Only a valid id is carried by the
    error: a message whose id itself is unusable cannot be reported back to CXone.
    """
    if not isinstance(item, dict):
        raise InvalidMessage("message", "must be a JSON object")
    try:
        message_id = external_id(item.get("id"), "id")
    except InvalidInput as exc:
        raise InvalidMessage(exc.field, exc.reason) from None
    try:
        return _parse_valid_id(item, message_id)
    except InvalidInput as exc:
        raise InvalidMessage(exc.field, exc.reason, message_id) from None


def _parse_valid_id(item: dict[str, Any], message_id: str) -> OutboundReply:
    conversation_id = external_id(item.get("conversationId"), "conversationId")
    to = canonical_phone(item.get("to"), "to")
    from_ = item.get("from")
    if from_ is not None and from_ != "":
        from_ = canonical_phone(from_, "from")
    media = _media_urls(item.get("attachments"))
    body = text(item.get("body"), "body", max_length=MAX_BODY, allow_empty=bool(media))
    for name, expected in (("direction", "OUTBOUND"), ("channel", "SMS")):
        value = item.get(name)
        if value is not None and value != expected:
            raise InvalidInput(name, f"must be {expected}")
    return OutboundReply(message_id=message_id, conversation_id=conversation_id, to=to,
                         from_=from_ or None, body=body, media_urls=media)


def _media_urls(attachments: Any) -> list[str]:
    if attachments in (None, []):
        return []
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput("attachments", f"must be a list of at most {MAX_ATTACHMENTS} items")
    urls = []
    for item in attachments:
        url = item.get("url") if isinstance(item, dict) else None
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))
                and len(url) <= MAX_URL and url.isprintable()):
            raise InvalidInput("attachments", "each needs an http(s) url")
        urls.append(url)
    return urls


def enqueue_replies(conn: Connection, settings: Settings, replies: list[OutboundReply], *,
                    source: str) -> int:
    """Enqueue send jobs (once per CXone message id) and place them on their senders' slots.

    Returns how many were new. One placement statement for the whole batch.
    """
    new: list[tuple[int, dict[str, Any]]] = []
    for reply in replies:
        payload = reply.payload(source)
        job_id = outbox.enqueue(conn, SEND_KIND, reply.message_id, payload,
                                ordering_key=f"conv:{reply.conversation_id}")
        if job_id is not None:
            new.append((job_id, payload))
            audit.append(conn, "message.enqueued", source=source, message_id=reply.message_id,
                         phone=reply.to, to_state="queued",
                         details={"conversation_id": reply.conversation_id, "job_id": job_id})
    # Sender rows before conversation rows: the lock order smsgw_record_sent uses too.
    place_new_sends(conn, settings, new)
    for reply in replies:
        if reply.from_:
            # Threading: the customer's answer to this business number belongs here.
            cxone_state.remember_conversation(conn, customer=reply.to, business=reply.from_,
                                              conversation_id=reply.conversation_id)
    return len(new)


def reject_reply(conn: Connection, error: InvalidMessage, *, source: str) -> None:
    """A malformed reply is not sent: CXone gets FAILED with the reason (when it has an id)."""
    event(log, "message.rejected", logging.WARNING, message_id=error.message_id,
          field=error.field, reason=error.reason, source=source)
    if not error.message_id:
        return
    # Dedupe: the same malformed item polled twice is rejected once.
    if not outbox.record_done(conn, "rejected", error.message_id,
                              {"field": error.field, "reason": error.reason}):
        return
    audit.append(conn, "message.rejected", source=source, message_id=error.message_id,
                 to_state="FAILED", reason=f"{error.field} {error.reason}")
    enqueue_cxone_update(conn, error.message_id,
                         failed_update("invalid_message", f"{error.field} {error.reason}"))
