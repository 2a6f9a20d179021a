"""The CXone simulator's memory: tokens, conversations, messages, the feed and the logs.

Everything lives in one :class:`CxoneSimState` guarded by one lock (a
``threading.RLock``, which gevent's monkey-patching turns greenlet-safe).

The poll feed is append-only and holds messages in the order they became
visible. Requests must not cost O(messages): over an hour-long soak the feed
holds ~100k messages, so the feed keeps an index of the positions that may
still be PENDING (the reconciler's query) and conversations are indexed by
their pair of numbers. A message created with a visibility delay waits in a heap and joins
the feed, in visibility order, the first time the feed is read or appended to
after its moment; so it lands after messages created later. The cursor is the
base64 of ``{"e": epoch, "p": position}``: stateless, so the poller and the
reconciler page independently. A cursor from before a reset (another epoch)
starts again from the beginning of the new feed.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import heapq
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sandbox.control import RequestLog
from sandbox.cxone_sim_model import (
    CHANNELS,
    DEFAULT_PAGE_SIZE,
    DIRECTIONS,
    ENDPOINTS,
    FAULT_TARGETS,
    FINAL_STATUSES,
    INBOUND_STATUS,
    MAX_PAGE_SIZE,
    STATUSES,
    ApiError,
    Conversation,
    MessageRecord,
    Reply,
    bad_request,
    check_conversation,
    check_inbound,
    check_reply_attachments,
    check_status_update,
    conflict,
    format_given_time,
    format_time,
    not_found,
    optional_int,
    optional_string,
    optional_time,
    parse_time,
    require_e164,
    require_object,
)
from sandbox.faults import FaultSwitches
from sandbox.files import FileStore
from sandbox.latency import MAX_LATENCY_MS

if TYPE_CHECKING:
    from sandbox.cxone_sim import CxoneSimConfig

_REPLY_FIELDS = frozenset(
    {"conversationId", "from", "to", "body", "id", "createdTime", "status", "visibleAfterMs",
     "raw", "duplicateOf", "attachments"}
)
_CONFIG_FIELDS = frozenset({"token_ttl_s", "client_id", "client_secret", "latency_ms",
                            "latency_jitter_ms"})


@dataclass
class _PollQuery:
    channel: str | None
    direction: str | None
    status: str | None
    created_before: float | None
    page_size: int
    cursor: str | None

    def matches(self, record: MessageRecord) -> bool:
        # A raw test item that lacks a filtered field is not filtered out by it.
        fields = record.fields
        for name, wanted in (
            ("channel", self.channel), ("direction", self.direction), ("status", self.status)
        ):
            if wanted is not None and name in fields and fields[name] != wanted:
                return False
        return not (
            self.created_before is not None
            and record.created is not None
            and record.created >= self.created_before
        )


class CxoneSimState:
    """All of the simulator's state; every public method takes the lock."""

    def __init__(self, config: CxoneSimConfig, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._initial_config = replace(config)
        self._clock = clock
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.files = FileStore(require_token_by_default=True)  # the contract: URLs may need it
        self._base_url = ""
        self._clear()

    def _clear(self) -> None:
        self.config = replace(self._initial_config)
        self.faults = FaultSwitches(FAULT_TARGETS)
        self.log = RequestLog(ENDPOINTS)
        self.files.clear()
        self._epoch = secrets.token_hex(4)
        self._conversations: dict[str, Conversation] = {}
        # (customer, business) -> its conversations, oldest first: a reply finds its
        # conversation without scanning them all (bulk loads of thousands of replies).
        self._by_pair: dict[tuple[str, str], list[Conversation]] = {}
        self._messages: dict[str, MessageRecord] = {}
        self._by_external_id: dict[str, str] = {}
        self._feed: list[MessageRecord] = []
        self._maybe_pending: list[int] = []  # feed positions, ascending (see _candidates)
        self._prune_at = _PRUNE_MIN
        self._pending: list[tuple[float, int, MessageRecord]] = []
        self._seq = 0
        self._status_updates: list[dict[str, Any]] = []
        self._inbound_posts: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget messages, conversations, logs, counters and faults; restore the config.

        Issued tokens stay valid (use :meth:`expire_tokens` to revoke them).
        """
        with self.lock:
            self._clear()

    def _now(self) -> float:
        return self._clock()

    def _whole_second(self) -> float:
        # createdTime has seconds precision, as in the contract; filters use the same value.
        return float(int(self._now()))

    def _stamp(self) -> str:
        return format_time(self._now(), millis=True)

    # --- records ----------------------------------------------------------------------

    def record_put(self, message_id: str, body: Any, status: int | None) -> None:
        with self.lock:
            self._status_updates.append(
                {"at": self._stamp(), "messageId": message_id, "body": body,
                 "response_status": status}
            )

    def record_inbound(
        self, conversation_id: str, body: Any, handled: Reply | None, status: int | None
    ) -> None:
        with self.lock:
            self._inbound_posts.append(
                {"at": self._stamp(), "conversationId": conversation_id, "body": body,
                 "response_status": status,
                 "messageId": handled.message_id if handled else None,
                 "duplicate": bool(handled and handled.duplicate)}
            )

    # --- tokens -----------------------------------------------------------------------

    def issue_token(self, credentials: tuple[str, str] | None, grant_type: str | None) -> dict:
        """Client-credentials grant: 401 on bad credentials, 400 on another grant."""
        with self.lock:
            expected = (self.config.client_id, self.config.client_secret)
            if credentials is None or not all(
                secrets.compare_digest(given.encode(), wanted.encode())
                for given, wanted in zip(credentials, expected, strict=True)
            ):
                raise ApiError(
                    401, "invalid_client", "client authentication failed",
                    {"WWW-Authenticate": 'Basic realm="cxone-sim"'},
                )
            if not grant_type:
                raise ApiError(400, "invalid_request", "grant_type is required")
            if grant_type != "client_credentials":
                raise ApiError(
                    400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
                )
            token = "sbx_" + secrets.token_urlsafe(24)
            ttl = self.config.token_ttl_s
            self._tokens[token] = self._now() + ttl
            return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}

    def check_token(self, authorization: str | None) -> None:
        """401 unless ``authorization`` is ``Bearer <a live token>``."""
        scheme, _, token = (authorization or "").partition(" ")
        with self.lock:
            expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if expiry is not None and expiry > self._now():
                return
        reason = (
            "missing bearer token" if scheme.lower() != "bearer"
            else "unknown token" if expiry is None
            else "token expired"
        )
        raise ApiError(
            401, "invalid_token", reason, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )

    def expire_tokens(self) -> int:
        """Make every issued token invalid; returns how many were still live."""
        with self.lock:
            now = self._now()
            live = sum(1 for expiry in self._tokens.values() if expiry > now)
            self._tokens = dict.fromkeys(self._tokens, now)
            return live

    def update_config(self, body: Any) -> dict[str, Any]:
        body = require_object(body)
        unknown = set(body) - _CONFIG_FIELDS
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
        ttl = optional_int(body, "token_ttl_s", 1)
        client_id = optional_string(body, "client_id")
        client_secret = optional_string(body, "client_secret")
        latencies = {name: _optional_ms(body, name) for name in ("latency_ms", "latency_jitter_ms")}
        with self.lock:
            for name, value in latencies.items():
                if value is not None:
                    setattr(self.config, name, value)
            if ttl is not None:
                self.config.token_ttl_s = ttl
            if client_id is not None:
                self.config.client_id = client_id
            if client_secret is not None:
                self.config.client_secret = client_secret
            return self.config_json()

    def config_json(self) -> dict[str, Any]:
        with self.lock:
            return {"client_id": self.config.client_id, "token_ttl_s": self.config.token_ttl_s,
                    "latency_ms": self.config.latency_ms,
                    "latency_jitter_ms": self.config.latency_jitter_ms}

    # --- the poll feed ----------------------------------------------------------------

    def poll(self, args: Mapping[str, str]) -> dict[str, Any]:
        """One page of the feed after ``cursor``, filtered; the cursor resumes after it."""
        query = _parse_poll_query(args)
        with self.lock:
            self._promote()
            start = self._decode_cursor(query.cursor)
            items: list[dict[str, Any]] = []
            end = len(self._feed)  # a short page: the cursor resumes at the end
            for position in self._candidates(query, start):
                record = self._feed[position]
                if query.matches(record):
                    items.append(dict(record.fields))
                    if len(items) == query.page_size:
                        end = position + 1
                        break
            return {"items": items, "cursor": self._encode_cursor(end)}

    def _candidates(self, query: _PollQuery, start: int) -> Iterable[int]:
        """The feed positions from ``start`` that ``query`` may match, in order.

        The reconciler pages ``status=PENDING`` from the start of the feed every few
        seconds: only positions that may still be PENDING are walked (no status PUT
        sets PENDING, so a record that left it never matches again).
        """
        if query.status != "PENDING":
            return range(start, len(self._feed))
        if len(self._maybe_pending) >= self._prune_at:
            self._maybe_pending = [p for p in self._maybe_pending
                                   if _may_be_pending(self._feed[p])]
            self._prune_at = max(2 * len(self._maybe_pending), _PRUNE_MIN)
        return self._maybe_pending[bisect.bisect_left(self._maybe_pending, start):]

    def _append_to_feed(self, record: MessageRecord) -> None:
        if _may_be_pending(record):
            self._maybe_pending.append(len(self._feed))
        self._feed.append(record)

    def _promote(self) -> None:
        now = self._now()
        while self._pending and self._pending[0][0] <= now:
            self._append_to_feed(heapq.heappop(self._pending)[2])

    def _publish(self, record: MessageRecord, visible_after_ms: int = 0) -> None:
        if visible_after_ms > 0:
            visible_at = self._now() + visible_after_ms / 1000
            heapq.heappush(self._pending, (visible_at, self._seq, record))
            self._seq += 1
        else:
            self._promote()
            self._append_to_feed(record)

    def _encode_cursor(self, position: int) -> str:
        data = json.dumps({"e": self._epoch, "p": position}, separators=(",", ":"))
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str | None) -> int:
        if not cursor:
            return 0
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            epoch, position = data["e"], data["p"]
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
            raise bad_request("cursor is not valid: pass back a cursor this API returned") from None
        if not isinstance(epoch, str) or type(position) is not int or position < 0:
            raise bad_request("cursor is not valid: pass back a cursor this API returned")
        if epoch != self._epoch:
            return 0  # the simulator was reset: its feed starts over
        if position > len(self._feed):
            raise bad_request("cursor is not valid: it points past the end of the feed")
        return position

    # --- messages ---------------------------------------------------------------------

    def _new_message(
        self, conversation: Conversation, direction: str, sender: str, recipient: str,
        text: str, *, status: str, created: float, message_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MessageRecord:
        fields = {
            "id": message_id or f"msg_{uuid.uuid4()}",
            "conversationId": conversation.id,
            "direction": direction,
            "channel": "SMS",
            "from": sender,
            "to": recipient,
            "body": text,
            "status": status,
            "createdTime": format_given_time(created),
            **(extra or {}),
        }
        record = MessageRecord(fields=fields, created=created)
        self._messages[fields["id"]] = record
        conversation.message_ids.append(fields["id"])
        return record

    def update_status(self, message_id: str, body: Any) -> Reply:
        """The status PUT: 404 unknown, 400 invalid, 409 already final, else 200."""
        with self.lock:
            record = self._messages.get(message_id)
            if record is None:
                raise not_found(f"no message {message_id!r}")
            checked = check_status_update(body)
            current = record.fields.get("status")
            if current in FINAL_STATUSES:
                raise conflict(f"message {message_id} is already {current} (a final state)")
            record.fields["status"] = checked["status"]
            return Reply(status=200, body=dict(record.fields), message_id=message_id)

    def get_message(self, message_id: str) -> dict[str, Any]:
        with self.lock:
            record = self._messages.get(message_id)
            if record is None:
                raise not_found(f"no message {message_id!r}")
            updates = [
                {"at": u["at"], "body": u["body"], "response_status": u["response_status"]}
                for u in self._status_updates
                if u["messageId"] == message_id
            ]
            return {**record.fields, "statusUpdates": updates}

    def list_messages(self, args: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = {
            name: args[name] for name in ("direction", "status", "conversationId") if args.get(name)
        }
        with self.lock:
            return [
                dict(record.fields)
                for record in self._messages.values()
                if all(record.fields.get(name) == value for name, value in wanted.items())
            ]

    def status_updates(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(update) for update in self._status_updates]

    def inbound_posts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(post) for post in self._inbound_posts]

    def inbound_attachments(self) -> list[dict[str, Any]]:
        """Every attachment of the inbound messages CXone stored, in order."""
        with self.lock:
            return [
                {"messageId": record.id, "conversationId": record.fields.get("conversationId"),
                 "externalId": record.fields.get("externalId"), **attachment}
                for record in self._messages.values()
                if record.fields.get("direction") == "INBOUND" and not record.raw
                for attachment in record.fields.get("attachments") or []
            ]

    # --- agent replies (control API) --------------------------------------------------

    def add_replies(self, body: Any, base_url: str = "") -> list[dict[str, Any]]:
        """Create agent replies (or raw/duplicate feed items); all are checked first.

        ``base_url`` is the simulator's own, for attachments that name a served file.
        """
        body = require_object(body)
        if "items" in body:
            if not isinstance(body["items"], list) or not body["items"]:
                raise bad_request("items must be a non-empty list")
            items = [(item, f"items[{index}].") for index, item in enumerate(body["items"])]
        else:
            items = [(body, "")]
        with self.lock:
            self._base_url = base_url
            claimed: set[str] = set()
            specs = [self._check_reply(item, prefix, claimed) for item, prefix in items]
            return [self._create_reply(spec) for spec in specs]

    def _check_reply(self, item: Any, prefix: str, claimed: set[str]) -> dict[str, Any]:
        item = require_object(item, prefix.rstrip(".") or "body")
        unknown = set(item) - _REPLY_FIELDS
        if unknown:
            raise bad_request(f"{prefix}unknown fields: {', '.join(sorted(unknown))}")
        delay = optional_int(item, "visibleAfterMs", 0, prefix) or 0
        if "raw" in item:
            raw = copy.deepcopy(require_object(item["raw"], f"{prefix}raw"))
            if isinstance(raw.get("id"), str) and raw["id"]:
                self._claim_id(raw["id"], prefix, claimed)
            return {"kind": "raw", "raw": raw, "delay": delay}
        if "duplicateOf" in item:
            original = item["duplicateOf"]
            if not isinstance(original, str) or original not in self._messages:
                raise not_found(f"{prefix}duplicateOf: no message {original!r}")
            return {"kind": "duplicate", "id": original, "delay": delay}
        conversation = None
        conversation_id = optional_string(item, "conversationId", prefix)
        if conversation_id is not None:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                raise not_found(f"{prefix}conversationId: no conversation {conversation_id!r}")
        if conversation is not None and "from" not in item:
            sender = conversation.business_number
        else:
            sender = require_e164(item, "from", prefix)
        if conversation is not None and "to" not in item:
            recipient = conversation.customer_number
        else:
            recipient = require_e164(item, "to", prefix)
        attachments = check_reply_attachments(item.get("attachments"), prefix, self._file_url)
        text = item.get("body")
        if not isinstance(text, str) or (not text and not attachments):
            raise bad_request(f"{prefix}body must be a non-empty string (use raw for a bad item)")
        message_id = optional_string(item, "id", prefix)
        if message_id is not None:
            self._claim_id(message_id, prefix, claimed)
        status = item.get("status", "PENDING")
        if status not in STATUSES:
            raise bad_request(f"{prefix}status must be one of {', '.join(STATUSES)}")
        created = optional_time(item, "createdTime", prefix)
        return {
            "kind": "reply", "conversation": conversation, "from": sender, "to": recipient,
            "body": text, "id": message_id, "status": status, "delay": delay,
            "created": self._whole_second() if created is None else created,
            "attachments": attachments,
        }

    def _file_url(self, name: str) -> tuple[str, str] | None:
        stored = self.files.get(name)
        if stored is None:
            return None
        return f"{self._base_url}/_sandbox/files/{name}", stored.content_type

    def _claim_id(self, message_id: str, prefix: str, claimed: set[str]) -> None:
        if message_id in self._messages or message_id in claimed:
            raise conflict(f"{prefix}id {message_id!r} is already taken")
        claimed.add(message_id)

    def _create_reply(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec["kind"] == "raw":
            raw = spec["raw"]
            record = MessageRecord(fields=raw, created=_time_or_none(raw.get("createdTime")),
                                   raw=True)
            if record.id is not None:
                self._messages[record.id] = record
                conversation = self._conversations.get(str(raw.get("conversationId")))
                if conversation is not None:
                    conversation.message_ids.append(record.id)
        elif spec["kind"] == "duplicate":
            record = self._messages[spec["id"]]
        else:
            conversation = spec["conversation"] or self._open_conversation(
                customer=spec["to"], business=spec["from"]
            )
            record = self._new_message(
                conversation, "OUTBOUND", spec["from"], spec["to"], spec["body"],
                status=spec["status"], created=spec["created"], message_id=spec["id"],
                extra={"attachments": spec["attachments"]} if spec["attachments"] else None,
            )
        self._publish(record, spec["delay"])
        return dict(record.fields)

    # --- conversations ----------------------------------------------------------------

    def _open_conversation(self, customer: str, business: str) -> Conversation:
        for conversation in reversed(self._by_pair.get((customer, business), [])):
            if conversation.status == "OPEN":
                return conversation
        return self._add_conversation(customer, business)

    def _add_conversation(self, customer: str, business: str) -> Conversation:
        conversation = Conversation(
            id=f"conv_{uuid.uuid4()}", customer_number=customer, business_number=business,
            created=self._now(),
        )
        self._conversations[conversation.id] = conversation
        self._by_pair.setdefault((customer, business), []).append(conversation)
        return conversation

    def create_conversation(self, body: Any) -> dict[str, Any]:
        """``POST /conversations``: always a new OPEN conversation."""
        customer, business = check_conversation(body)
        with self.lock:
            return self._add_conversation(customer, business).to_json()

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            return self._conversation(conversation_id).to_json()

    def _conversation(self, conversation_id: str) -> Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise not_found(f"no conversation {conversation_id!r}")
        return conversation

    def close_conversation(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            conversation = self._conversation(conversation_id)
            conversation.status = "CLOSED"
            return conversation.to_json()

    def list_conversations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {**conversation.to_json(),
                 "messages": [dict(self._messages[i].fields) for i in conversation.message_ids]}
                for conversation in self._conversations.values()
            ]

    def conversation_with_messages(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            conversation = self._conversation(conversation_id)
            return {**conversation.to_json(),
                    "messages": [dict(self._messages[i].fields) for i in conversation.message_ids]}

    def post_inbound(self, conversation_id: str, body: Any) -> Reply:
        """Inbound post: 404 unknown conversation, 400 invalid, 200 duplicate, 409 CLOSED.

        The duplicate check (``allowDuplicateMessages: false``) spans the whole
        tenant and comes before the CLOSED check: a retry of a post that went
        through before its conversation closed gets the first message back.
        """
        with self.lock:
            conversation = self._conversation(conversation_id)
            checked = check_inbound(body, conversation)
            external_id = checked["externalId"]
            if not checked["allowDuplicateMessages"] and external_id in self._by_external_id:
                first = self._messages[self._by_external_id[external_id]]
                return Reply(status=200, body=dict(first.fields), message_id=first.id,
                             duplicate=True)
            if conversation.status != "OPEN":
                raise conflict(
                    f"conversation {conversation_id} is CLOSED: create a new conversation"
                )
            record = self._new_message(
                conversation, "INBOUND", checked["from"], checked["to"], checked["body"],
                status=INBOUND_STATUS, created=self._whole_second(),
                extra={"externalId": external_id, "attachments": checked["attachments"]},
            )
            if external_id is not None:
                self._by_external_id.setdefault(external_id, str(record.id))
            self._publish(record)
            return Reply(status=201, body=dict(record.fields), message_id=record.id)


def _parse_poll_query(args: Mapping[str, str]) -> _PollQuery:
    def choice(name: str, choices: tuple[str, ...]) -> str | None:
        value = args.get(name) or None
        if value is not None and value not in choices:
            raise bad_request(f"{name} must be one of {', '.join(choices)}")
        return value

    created_before = None
    if args.get("createdBefore"):
        try:
            created_before = parse_time(args["createdBefore"])
        except ValueError:
            raise bad_request(
                "createdBefore must be an ISO 8601 timestamp (URL-encode a + offset)"
            ) from None
    page_size = DEFAULT_PAGE_SIZE
    if args.get("pageSize"):
        try:
            page_size = int(args["pageSize"])
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise bad_request(f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}")
    return _PollQuery(
        channel=choice("channel", CHANNELS),
        direction=choice("direction", DIRECTIONS),
        status=choice("status", STATUSES),
        created_before=created_before,
        page_size=page_size,
        cursor=args.get("cursor") or None,
    )


_PRUNE_MIN = 256


def _may_be_pending(record: MessageRecord) -> bool:
    # A raw test item without a status matches every status filter.
    return record.fields.get("status", "PENDING") == "PENDING"


def _optional_ms(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= MAX_LATENCY_MS):
        raise bad_request(f"{name} must be a number of milliseconds from 0 to "
                          f"{MAX_LATENCY_MS:.0f}")
    return float(value)


def _time_or_none(value: Any) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        return None
