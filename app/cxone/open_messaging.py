"""The Open Messaging adapter: the seed's CXone contract, its whole wire format.

docs/contracts/cxone-open-messaging.md: OAuth client credentials, a cursor-paged
feed of agent replies, a status PUT per message, conversations, inbound posts
(deduplicated by ``externalId``). Everything that knows a field name of that
contract is here; the core sees the port's types (app/cxone/__init__.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from app.config import Settings
from app.cxone import (
    InboundPost,
    InvalidReply,
    OutboundReply,
    Posted,
    ReplyPage,
    StatusReport,
    Threads,
    http,
)
from app.errors import AuthenticationFailed, Conflict, NotFound, TransientError
from app.inputs import InvalidInput, canonical_phone, external_id, text
from app.logs import event
from app.pacing import Pace

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/v2/open-messaging/messages"
CONVERSATIONS_PATH = "/api/v2/open-messaging/conversations"
SYSTEM = "cxone"
# Feed items in these statuses are new agent replies; anything else was handled already
# (pushed and sent, say): never send twice.
POLLABLE_STATUSES = (None, "", "PENDING")
# Longer than one SMS is fine: a long reply is sent in parts (app/outbound.py).
MAX_BODY = 16_000
MAX_ATTACHMENTS = 10
MAX_URL = 2048
MAX_CURSOR = 2048
CLOSED_RETRIES = 3


class OpenMessaging:
    """The CXone port over the Open Messaging contract."""

    mode = "open-messaging"
    polls = True
    reports_give_up = False  # a dead letter is the operator's call (replay or discard)

    def __init__(self, settings: Settings, *, pool_size: int = 32) -> None:
        self.settings = settings
        self.session = http.session(pool_size)
        self.tokens = http.TokenCache(self._fetch_token)

    # -- the port ---------------------------------------------------------------------------

    def fetch_replies(self, cursor: str | None, page_size: int) -> ReplyPage:
        return self._page({"pageSize": page_size}, cursor, "poll")

    def find_stale(self, created_before: datetime, cursor: str | None) -> ReplyPage:
        return self._page({"pageSize": 100, "status": "PENDING",
                           "createdBefore": created_before.astimezone(UTC).strftime(
                               "%Y-%m-%dT%H:%M:%SZ")}, cursor, "find_stale")

    def report_status(self, message_id: str, report: StatusReport, *,
                      channel_id: str | None = None) -> bool:
        """PUT the status. 404 (unknown) and 409 (already final) are final answers."""
        self._request("PUT", f"{MESSAGES_PATH}/{_segment(message_id)}", "update",
                      json=put_body(report))
        return True

    def post_inbound(self, post: InboundPost, threads: Threads, *,
                     channel_id: str | None = None) -> Posted:
        """Post into the customer's open conversation with our number, or a new one when
        there is none or CXone says it is closed (409) or gone (404)."""
        conversation_id = threads.open_conversation(post.from_, post.to)
        for _ in range(CLOSED_RETRIES):
            if conversation_id is None:
                conversation_id = self._create_conversation(post)
                threads.remember(post.from_, post.to, conversation_id)
            path = f"{CONVERSATIONS_PATH}/{_segment(conversation_id)}/messages"
            try:
                answer = http.object_of(SYSTEM, "inbound", self._request(
                    "POST", path, "inbound", json=inbound_body(post)))
            except (Conflict, NotFound):
                threads.closed(conversation_id)
                event(log, "inbound.conversation_closed", conversation_id=conversation_id)
                conversation_id = None
                continue
            return Posted(message_id=_answer_id(answer.get("id"), "message id"),
                          conversation_id=_answer_id(answer.get("conversationId"),
                                                     "conversation id") or conversation_id)
        raise Conflict("cxone inbound: conversations kept closing under us")

    def thread_of(self, post: InboundPost) -> str | None:
        return None  # threading is ours: the customer's open conversation (post_inbound)

    def call_paces(self, thread: str | None) -> list[Pace]:
        return []  # the contract publishes no client-side limits

    def problem(self) -> str | None:
        refused = self.tokens.refused
        return str(refused) if refused else None

    # -- HTTP -------------------------------------------------------------------------------

    def _page(self, params: dict[str, Any], cursor: str | None, operation: str) -> ReplyPage:
        params = {"channel": "SMS", "direction": "OUTBOUND", **params}
        if cursor:
            params["cursor"] = cursor
        data = http.json_of(SYSTEM, operation, self._request("GET", MESSAGES_PATH, operation,
                                                             params=params))
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise TransientError(f"cxone {operation}: response has no items list")
        next_cursor = data.get("cursor")
        if next_cursor is not None and not (isinstance(next_cursor, str)
                                            and len(next_cursor) <= MAX_CURSOR
                                            and next_cursor.isprintable()):
            raise TransientError(f"cxone {operation}: the response's cursor is malformed")
        replies, refused = [], []
        for item in items:
            if isinstance(item, dict) and item.get("status") not in POLLABLE_STATUSES:
                continue
            try:
                replies.append(parse_message(item))
            except InvalidReply as exc:
                refused.append(exc)
        return ReplyPage(replies=replies, refused=refused, cursor=next_cursor, size=len(items))

    def _create_conversation(self, post: InboundPost) -> str:
        body = {"channel": "SMS", "customerNumber": post.from_, "businessNumber": post.to}
        answer = http.object_of(SYSTEM, "conversation_create", self._request(
            "POST", CONVERSATIONS_PATH, "conversation_create", json=body))
        conversation_id = _answer_id(answer.get("id"), "conversation id")
        if conversation_id is None:
            raise TransientError("cxone conversation_create: the answer has no usable id")
        event(log, "inbound.conversation_created", conversation_id=conversation_id)
        return conversation_id

    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        response = http.send(self.session, "POST", s.cxone_token_url, system=SYSTEM,
                             operation="token", data={"grant_type": "client_credentials"},
                             auth=(s.cxone_client_id, s.cxone_client_secret))
        if response.status_code in (400, 401, 403):
            raise AuthenticationFailed(
                f"CXone refused the client credentials (HTTP {response.status_code}); "
                "check CXONE_CLIENT_ID and CXONE_CLIENT_SECRET", status=response.status_code)
        http.raise_for_status(SYSTEM, "token", response)
        data = http.object_of(SYSTEM, "token", response)
        try:
            return str(data["access_token"]), float(data.get("expires_in") or 3600)
        except (KeyError, TypeError, ValueError) as exc:
            raise TransientError("cxone token: malformed token response") from exc

    def _request(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        url = self.settings.cxone_api_base_url + path
        for attempt in (1, 2):
            token = self.tokens.get(force=attempt == 2)
            response = http.send(self.session, method, url, system=SYSTEM, operation=operation,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Accept": "application/json"}, **kwargs)
            if response.status_code == 401 and attempt == 1:
                event(log, "cxone.token_rejected", operation=operation)
                continue
            break
        http.raise_for_status(SYSTEM, operation, response)
        return response


# -- the wire format ----------------------------------------------------------------------

def parse_message(item: Any) -> OutboundReply:
    """A contract Message (feed item or push body) as a reply; :class:`InvalidReply` if not.

    Every field is checked exactly and bounded; only a usable id travels with the error.
    """
    if not isinstance(item, dict):
        raise InvalidReply("message", "must be a JSON object")
    try:
        message_id = external_id(item.get("id"), "id")
    except InvalidInput as exc:
        raise InvalidReply(exc.field, exc.reason) from None
    try:
        return _parse_fields(item, message_id)
    except InvalidInput as exc:
        raise InvalidReply(exc.field, exc.reason, message_id) from None


def _parse_fields(item: dict[str, Any], message_id: str) -> OutboundReply:
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


def _media_urls(attachments: Any) -> tuple[str, ...]:
    if attachments in (None, []):
        return ()
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput("attachments", f"must be a list of at most {MAX_ATTACHMENTS} items")
    urls = []
    for item in attachments:
        url = item.get("url") if isinstance(item, dict) else None
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))
                and len(url) <= MAX_URL and url.isprintable()):
            raise InvalidInput("attachments", "each needs an http(s) url")
        urls.append(url)
    return tuple(urls)


def put_body(report: StatusReport) -> dict[str, Any]:
    """The status PUT body: SENT carries externalId; failures a reason."""
    body: dict[str, Any] = {"status": report.status}
    if report.status == "SENT":
        if report.external_id:
            body["externalId"] = report.external_id
        return body
    at = report.at or datetime.now(UTC)
    body["deliveryReceipt"] = {"status": report.status,
                               "timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if report.status in ("FAILED", "UNDELIVERABLE"):
        body["reason"] = {"code": str(report.reason_code or "unknown"),
                          "message": report.reason_message or "Message not delivered"}
    return body


def inbound_body(post: InboundPost) -> dict[str, Any]:
    """An inbound post; ``externalId`` with allowDuplicateMessages false makes a retry safe."""
    body: dict[str, Any] = {
        "direction": "INBOUND", "channel": "SMS", "from": post.from_, "to": post.to,
        "body": post.body, "externalId": post.sid, "allowDuplicateMessages": False}
    if post.media:
        body["attachments"] = [{"url": m["url"], "contentType": m.get("content_type")
                                or "application/octet-stream"} for m in post.media]
    return body


def _answer_id(value: Any, what: str) -> str | None:
    """An id from CXone's answer, if it is a usable one (bounded, URL-safe)."""
    try:
        return external_id(value, what)
    except InvalidInput:
        if value is not None:
            event(log, "cxone.answer_id_unusable", logging.WARNING, what=what)
        return None


def _segment(value: str) -> str:
    return quote(value, safe="")
