"""The CXone inbound job: post a customer's text into the right conversation.

Threading: the OPEN conversation recorded for (customer, business number), or
a new one when there is none or CXone says it is CLOSED. The post carries
``externalId`` = MessageSid with ``allowDuplicateMessages: false``, so a retry
after a lost answer cannot create a second copy in CXone.
"""

from __future__ import annotations

import logging
from typing import Any

from app.errors import Conflict, NotFound, TransientError
from app.inputs import InvalidInput, external_id
from app.logs import event
from db import audit, cxone_state, messages
from db.outbox import Job
from worker.jobs import Done, JobContext, Outcome

log = logging.getLogger(__name__)


def handle_cxone_inbound(ctx: JobContext, job: Job) -> Outcome:
    """Post one inbound SMS to CXone (kind ``cxone_inbound``)."""
    p = job.payload
    customer, business = p["from"], p["to"]
    with ctx.db.connection() as conn:
        known = cxone_state.find_conversation(conn, customer, business)
    conversation_id = known["conversation_id"] if known and known["status"] == "OPEN" else None
    for _ in range(3):
        if conversation_id is None:
            conversation_id = _new_conversation(ctx, customer, business)
        try:
            posted = ctx.services.cxone.post_inbound(conversation_id, inbound_body(p))
        except (Conflict, NotFound):
            # CLOSED (409) or gone (404): thread into a new conversation instead.
            with ctx.db.connection() as conn:
                cxone_state.close_conversation(conn, conversation_id)
            event(log, "inbound.conversation_closed", conversation_id=conversation_id)
            conversation_id = None
            continue
        _record_posted(ctx, p, posted, conversation_id)
        return Done()
    raise Conflict("cxone inbound: conversations kept closing under us")


def inbound_body(p: dict[str, Any]) -> dict[str, Any]:
    """The contract's inbound message body."""
    body: dict[str, Any] = {
        "direction": "INBOUND", "channel": "SMS", "from": p["from"], "to": p["to"],
        "body": p.get("body") or "", "externalId": p["sid"], "allowDuplicateMessages": False}
    media = p.get("media") or []
    if media:
        body["attachments"] = [{"url": m["url"], "contentType": m.get("content_type")
                                or "application/octet-stream"} for m in media]
    return body


def _cxone_id(value: Any, what: str) -> str | None:
    """An id from CXone's answer, if it is a usable one (bounded, URL-safe)."""
    try:
        return external_id(value, what)
    except InvalidInput:
        if value is not None:
            event(log, "cxone.answer_id_unusable", logging.WARNING, what=what)
        return None


def _new_conversation(ctx: JobContext, customer: str, business: str) -> str:
    created = ctx.services.cxone.create_conversation(customer_number=customer,
                                                     business_number=business)
    conversation_id = _cxone_id(created.get("id"), "conversation id")
    if conversation_id is None:
        raise TransientError("cxone conversation_create: the answer has no usable id")
    # Stored at once (its own commit): a crash before the post must not orphan it.
    with ctx.db.connection() as conn:
        cxone_state.remember_conversation(conn, customer=customer, business=business,
                                          conversation_id=conversation_id)
    event(log, "inbound.conversation_created", conversation_id=conversation_id)
    return conversation_id


def _record_posted(ctx: JobContext, p: dict[str, Any], posted: dict[str, Any],
                   conversation_id: str) -> None:
    message_id = _cxone_id(posted.get("id"), "message id") or ""
    conversation_id = _cxone_id(posted.get("conversationId"), "conversation id") \
        or conversation_id
    with ctx.db.transaction() as conn:
        if message_id:
            messages.record_inbound(conn, conversation_id=conversation_id, message_id=message_id,
                                    sid=p["sid"], to=p["to"], from_=p["from"])
        audit.append(conn, "inbound.posted", source="worker", message_id=message_id or None,
                     sid=p["sid"], phone=p["from"], to_state="posted",
                     details={"conversation_id": conversation_id})
    event(log, "inbound.posted", sid=p["sid"], conversation_id=conversation_id,
          message_id=message_id)
