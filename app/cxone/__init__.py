"""The CXone port: what the gateway's core needs from CXone, whichever dialect it speaks.

The core (outbox, pacing, consent, Twilio, receipts, reconciler) talks to CXone
only through :class:`CxonePort` and the value types below. Each dialect is one
adapter module that owns its whole wire format: ``open_messaging`` (the seed's
cursor-poll contract) and ``dfo`` (a real tenant's DFO 3.0 "Bring Your Own
Channel" integration). ``CXONE_MODE`` picks one (:func:`build_cxone`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.config import Settings
    from app.pacing import Pace


@dataclass(frozen=True)
class OutboundReply:
    """An agent reply to send, as the core needs it (however CXone delivered it)."""

    message_id: str  # CXone's id (Open Messaging) or ours (DFO): every status report's key
    conversation_id: str  # the conversation (Open Messaging) or thread (DFO)
    to: str  # canonical E.164
    from_: str | None  # the sender asked for (used when it is one of ours)
    body: str
    media_urls: tuple[str, ...] = ()
    channel_id: str | None = None  # DFO: the BYOC channel


class InvalidReply(ValueError):
    """A reply that cannot be sent; ``field`` names what is wrong. ``message_id`` is
    set only when the id itself is usable (then CXone hears FAILED with the reason)."""

    def __init__(self, field_name: str, reason: str, message_id: str | None = None, *,
                 code: str = "invalid_message") -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason
        self.message_id = message_id
        self.code = code  # the reason code CXone hears (invalid_message, too_long, …)


@dataclass(frozen=True)
class ReplyPage:
    """Replies found in one page of a CXone feed, what was refused, and where to resume."""

    replies: list[OutboundReply]
    refused: list[InvalidReply]
    cursor: str | None
    size: int  # items in the page, including skipped and refused ones


@dataclass(frozen=True)
class StatusReport:
    """A status the gateway tells CXone about one message, in the core's vocabulary:
    SENT, DELIVERED, FAILED or UNDELIVERABLE (each adapter maps it to its own)."""

    status: str
    reason_code: str | None = None
    reason_message: str | None = None
    external_id: str | None = None  # the Twilio MessageSid (SENT)
    at: datetime | None = None  # when it happened (the receipt's time)


@dataclass(frozen=True)
class InboundPost:
    """A customer's text to post into CXone."""

    sid: str  # Twilio MessageSid: CXone dedupes on it
    from_: str  # the customer
    to: str  # our number
    body: str
    media: tuple[dict[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Posted:
    """Where CXone filed an inbound text."""

    message_id: str | None
    conversation_id: str


class Threads(Protocol):
    """The conversation threading the core keeps in Postgres, for adapters that need it."""

    def open_conversation(self, customer: str, business: str) -> str | None: ...
    def remember(self, customer: str, business: str, conversation_id: str) -> None: ...
    def closed(self, conversation_id: str) -> None: ...


class CxonePort(Protocol):
    """What the core needs from CXone."""

    mode: str
    polls: bool  # True when replies are fetched with a cursor (else CXone pushes them)
    reports_give_up: bool  # CXone hears FAILED (gateway_gave_up) when a send dead-letters

    def fetch_replies(self, cursor: str | None, page_size: int) -> ReplyPage:
        """The next page of new agent replies after ``cursor``."""
        ...

    def find_stale(self, created_before: datetime, cursor: str | None) -> ReplyPage:
        """Replies still pending in CXone created before the instant (reconciliation)."""
        ...

    def report_status(self, message_id: str, report: StatusReport, *,
                      channel_id: str | None = None) -> bool:
        """Tell CXone a message's status; False when this dialect has nothing to say for it.

        NotFound and Conflict (app/errors.py) are final answers.
        """
        ...

    def post_inbound(self, post: InboundPost, threads: Threads, *,
                     channel_id: str | None = None) -> Posted:
        """File a customer's text into the right CXone conversation."""
        ...

    def thread_of(self, post: InboundPost) -> str | None:
        """The thread an inbound text is filed under, when the dialect names it itself."""
        ...

    def call_paces(self, thread: str | None) -> list[Pace]:
        """Client-side limits a call about ``thread`` counts against (none: unlimited)."""
        ...

    def problem(self) -> str | None:
        """Why calls to CXone cannot work right now (credentials refused), or None."""
        ...


def build_cxone(settings: Settings) -> CxonePort:
    """The adapter for CXONE_MODE."""
    if settings.cxone_mode == "dfo":
        from app.cxone.dfo import Dfo

        return Dfo(settings)
    from app.cxone.open_messaging import OpenMessaging

    return OpenMessaging(settings)
