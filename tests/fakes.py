"""In-memory fakes of the outside systems' adapters (the ports), for service-level tests.

They stand in for app.twilio_client.TwilioGateway and the CXone port: what they
were asked is recorded, what they answer is set by the test. Our own code is
never faked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.cxone import InboundPost, Posted, ReplyPage, StatusReport, Threads
from app.twilio_client import TwilioMessage


@dataclass
class FakeTwilio:
    """Creates succeed (status accepted) unless ``fail_next`` holds an error to raise."""

    created: list[TwilioMessage] = field(default_factory=list)
    lookups: int = 0
    fail_next: list[Exception] = field(default_factory=list)
    on_create: Callable[[TwilioMessage], None] | None = None

    def create_message(self, *, to: str, body: str, from_: str | None = None,
                       media_urls: list[str] | None = None,
                       smart_encoded: bool = False) -> TwilioMessage:
        message = TwilioMessage(sid="SM" + uuid.uuid4().hex, status="accepted", to=to,
                                from_=from_, body=body, error_code=None,
                                date_created=datetime.now(UTC))
        if self.fail_next:
            error = self.fail_next.pop(0)
            if getattr(error, "ambiguous", False):
                self.created.append(message)  # it reached Twilio; the answer was lost
            raise error
        self.created.append(message)
        return message

    def fetch_message(self, sid: str) -> TwilioMessage:
        return next(m for m in self.created if m.sid == sid)

    def find_messages(self, *, to: str, from_: str | None, since: datetime,
                      limit: int = 100) -> list[TwilioMessage]:
        self.lookups += 1
        return [m for m in self.created if m.to == to and (from_ is None or m.from_ == from_)]


@dataclass
class FakeCxone:
    """The CXone port: replies to hand out, and every report and inbound post recorded."""

    mode: str = "fake"
    polls: bool = True
    pages: list[ReplyPage] = field(default_factory=list)
    reports: list[tuple[str, StatusReport]] = field(default_factory=list)
    posts: list[InboundPost] = field(default_factory=list)

    def fetch_replies(self, cursor: str | None, page_size: int) -> ReplyPage:
        return self.pages.pop(0) if self.pages else ReplyPage([], [], cursor, 0)

    def find_stale(self, created_before: datetime, cursor: str | None) -> ReplyPage:
        return ReplyPage([], [], None, 0)

    def report_status(self, message_id: str, report: StatusReport, *,
                      channel_id: str | None = None) -> bool:
        self.reports.append((message_id, report))
        return True

    def post_inbound(self, post: InboundPost, threads: Threads, *,
                     channel_id: str | None = None) -> Posted:
        self.posts.append(post)
        return Posted(message_id=f"msg_{post.sid}", conversation_id="conv_fake")

    def problem(self) -> str | None:
        return None
