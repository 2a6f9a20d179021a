"""Inbound texts: dedupe, keywords and consent, then the CXone post through the outbox.

Database work only (the web process answers Twilio at once); the worker posts
to CXone. HELP gets HELP_REPLY through the normal, paced outbound path unless
Twilio's Advanced Opt-Out already answered it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.compliance import HELP, classify_keyword, consent_status_for
from app.config import Settings
from app.consent import record_consent
from app.jobs import InboundJob, SendJob
from app.logs import event
from app.pacing import book
from db import audit, messages, outbox
from db.pool import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundText:
    """A customer's text as Twilio's inbound webhook describes it."""

    sid: str
    from_: str
    to: str
    body: str
    media: list[dict[str, str]] = field(default_factory=list)
    opt_out_type: str | None = None


def record_inbound_text(conn: Connection, settings: Settings, text: InboundText) -> str:
    """Store one inbound text inside the caller's transaction; what happened.

    A keyword counts once ever (its MessageSid is kept for good), whenever the
    same signed request comes back. A text to a number that is not one of ours
    still counts as a keyword (an opt-out must never be lost) but is not posted
    into CXone.
    """
    keyword = classify_keyword(text.body, text.opt_out_type)
    if not messages.insert_inbound(conn, sid=text.sid, from_=text.from_, to=text.to,
                                   keyword=keyword, num_media=len(text.media)):
        return "duplicate"
    if keyword and not messages.insert_keyword(conn, sid=text.sid, phone=text.from_,
                                               keyword=keyword):
        event(log, "inbound.keyword_replayed", logging.WARNING, sid=text.sid, keyword=keyword)
        return "duplicate"
    status = consent_status_for(keyword) if keyword else None
    if status:
        record_consent(conn, text.from_, status,
                       source="opt_out_type" if text.opt_out_type else "keyword",
                       evidence={"sid": text.sid, "to": text.to, "keyword": text.body.strip()[:20],
                                 "opt_out_type": text.opt_out_type})
    if not is_our_number(settings, text.to):
        audit.append(conn, "inbound.unknown_recipient", source="twilio", sid=text.sid,
                     phone=text.from_, to_state="ignored", reason=keyword,
                     details={"to": text.to})
        event(log, "inbound.unknown_recipient", logging.WARNING, sid=text.sid, to=text.to,
              keyword=keyword)
        return "unknown_recipient"
    outbox.enqueue(conn, InboundJob(sid=text.sid, from_=text.from_, to=text.to,
                                    body=text.body, media=tuple(text.media)))
    if keyword == HELP and (text.opt_out_type or "").upper() != "HELP":
        _enqueue_help_reply(conn, settings, text)
    audit.append(conn, "inbound.received", source="twilio", sid=text.sid, phone=text.from_,
                 to_state="received", reason=keyword,
                 details={"to": text.to, "num_media": len(text.media)})
    event(log, "inbound.received", sid=text.sid, from_number=text.from_, to=text.to,
          keyword=keyword)
    return keyword or "received"


def is_our_number(settings: Settings, number: str) -> bool:
    """True when ``number`` is one of the gateway's senders (any, when none are listed:
    Twilio then picks senders from the Messaging Service and we cannot tell)."""
    return not settings.our_numbers or number in settings.our_numbers


def _enqueue_help_reply(conn: Connection, settings: Settings, text: InboundText) -> None:
    job = SendJob(purpose="help", to=text.from_, from_=text.to, body=settings.help_reply,
                  in_reply_to=text.sid, source="help")
    job_id = outbox.enqueue(conn, job)
    if job_id is not None:
        book(conn, settings, [(job_id, job)])
