"""The outbox's job kinds and their payloads: one typed definition that every producer uses.

A job row holds ``kind``, ``dedupe_key`` and a JSON ``payload``; the classes
below are the only code that writes or reads those payload keys. SQL never
names a kind: it is passed in as a parameter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What a job does. The values are stored in ``outbox.kind``."""

    SEND = "send_sms"  # one SMS to Twilio (an agent reply, or our HELP answer)
    CXONE_STATUS = "cxone_status"  # push a message's pending status reports to CXone
    CXONE_INBOUND = "cxone_inbound"  # post a customer's text into CXone
    FETCH_MEDIA = "fetch_media"  # keep an agent reply's attachments before its slot comes
    REJECTED = "rejected"  # a marker, never run: this reply was refused at the edge


@dataclass(frozen=True)
class SendJob:
    """One SMS to send. ``message_id`` is CXone's (or, in DFO mode, ours) for replies."""

    to: str
    body: str
    purpose: str = "reply"  # reply | help
    message_id: str | None = None
    conversation_id: str | None = None
    from_: str | None = None  # the sender the reply asked for (used when it is in the pool)
    media_urls: tuple[str, ...] = ()
    dispatch: int = 1  # 1, then 2, 3… for each re-dispatch after 30008/30022
    source: str = "poll"  # poll | push | callback | reconcile | help
    sender: str | None = None  # a re-dispatch's chosen sender (None: Twilio picks) …
    sender_chosen: bool = False  # … when this is True
    channel_id: str | None = None  # the DFO channel the reply came through
    in_reply_to: str | None = None  # a HELP answer: the inbound MessageSid
    redispatch_of: str | None = None  # the SID whose 30008/30022 made this dispatch
    lookup_first: bool = False  # a replayed dead letter: ask Twilio before creating
    parts: tuple[str, ...] = ()  # a long reply's parts, in order (empty: the body alone)

    kind = Kind.SEND

    @property
    def dedupe_key(self) -> str:
        """Replies: the message id (poll, push and reconciler offer the same key)."""
        if self.purpose == "help":
            return f"help:{self.in_reply_to}"
        assert self.message_id is not None
        return self.message_id

    @property
    def ordering_key(self) -> str:
        """Replies of one conversation go one at a time, in order; HELP answers per number."""
        if self.purpose == "help":
            return f"help:{self.to}"
        return f"conv:{self.conversation_id}"

    @property
    def wanted_sender(self) -> str | None:
        """The sender this dispatch should use, if it is one of ours."""
        return self.sender if self.sender_chosen else self.from_

    @property
    def bodies(self) -> tuple[str, ...]:
        """What is sent, one SMS each: the parts of a long reply, or the body."""
        return self.parts or (self.body,)

    def redispatched(self, *, sender: str | None, after_sid: str) -> SendJob:
        """The next dispatch of this message, from ``sender`` (30008/30022)."""
        return replace(self, dispatch=self.dispatch + 1, sender=sender, sender_chosen=True,
                       redispatch_of=after_sid, lookup_first=False)

    def payload(self) -> dict[str, Any]:
        return _to_payload(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> SendJob:
        return _from_payload(cls, data)


# A replayed dead-letter send first asks Twilio whether it already holds the message.
REPLAY_PATCH = {Kind.SEND.value: {"lookup_first": True}}


@dataclass(frozen=True)
class StatusJob:
    """Push the pending status reports of one message to CXone, in order."""

    message_id: str

    kind = Kind.CXONE_STATUS

    @property
    def dedupe_key(self) -> str:
        # smsgw_queue_status_report (SQL) builds the same key from the kind it is given.
        return f"{self.kind}:{self.message_id}"

    def payload(self) -> dict[str, Any]:
        return _to_payload(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> StatusJob:
        return _from_payload(cls, data)


@dataclass(frozen=True)
class MediaJob:
    """Fetch an agent reply's attachments now and keep them (app/media_service.py); the
    reply's send job waits behind it (same ordering key)."""

    message_id: str
    urls: tuple[str, ...]
    conversation_id: str

    kind = Kind.FETCH_MEDIA

    @property
    def dedupe_key(self) -> str:
        return f"media:{self.message_id}"

    @property
    def ordering_key(self) -> str:
        return f"conv:{self.conversation_id}"  # the send job's: it runs after this one

    def payload(self) -> dict[str, Any]:
        return _to_payload(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> MediaJob:
        return _from_payload(cls, data)


@dataclass(frozen=True)
class InboundJob:
    """Post one customer text (by its Twilio MessageSid) into CXone."""

    sid: str
    from_: str
    to: str
    body: str
    media: tuple[dict[str, str], ...] = field(default_factory=tuple)

    kind = Kind.CXONE_INBOUND

    @property
    def dedupe_key(self) -> str:
        return f"inbound:{self.sid}"

    @property
    def ordering_key(self) -> str:
        return f"inbound:{self.from_}:{self.to}"

    def payload(self) -> dict[str, Any]:
        return _to_payload(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> InboundJob:
        return _from_payload(cls, data)


# -- payload encoding: field names as JSON keys, "from_" as "from", tuples as lists ---------

def _to_payload(job: Any) -> dict[str, Any]:
    data = asdict(job)
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = "from" if name == "from_" else name
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _from_payload(cls: Any, data: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = "from_" if key == "from" else key
        if name not in known:
            continue  # keys of older releases (e.g. a pacing slot) are ignored
        values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
