"""The Twilio simulator's data and pure rules: no HTTP, no threads.

Everything here follows Twilio's published OpenAPI description of API v2010
(twilio/twilio-oai, ``spec/json/twilio_api_v2010.json``): the Message resource
(``api.v2010.account.message``), the legacy error body, segment counting and
the list filters of ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json``.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

API_VERSION = "2010-04-01"
ERRORS_URL = "https://www.twilio.com/docs/errors/"
PRICE_PER_SEGMENT = "0.00790"  # Twilio bills as a negative string, e.g. "-0.00790"
MAX_BODY_CHARS = 1600
MAX_MEDIA_URLS = 10
MAX_VALIDITY_PERIOD_S = 36_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# Final statuses of an outbound SMS; ``sent`` is left when no receipt comes back.
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled"})

# Texts from Twilio's Error and Warning Dictionary and from real API answers.
# The gateway must not depend on them (Twilio says so too); codes are what count.
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20422: "Invalid Parameter",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21266: "'To' and 'From' numbers cannot be the same",
    21408: "Permission to send an SMS has not been enabled for the region "
    "indicated by the 'To' number: {to}.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The From phone number {from_} is not a valid, SMS-capable inbound phone "
    "number or short code for your account.",
    21609: "The StatusCallback URL {url} is not a valid URL.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' "
    "phone number via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21620: "Invalid media URL(s)",
    21623: "Number of media files exceeds allowed limit",
    21624: "Invalid validity period value",
    21701: "The Messaging Service does not exist",
    21704: "The Messaging Service contains no phone numbers",
    21705: "The Messaging Service is invalid",
    30001: "Queue overflow",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30022: "US A2P 10DLC - Rate Limits Exceeded",
    30034: "US A2P 10DLC - Message from an Unregistered Number",
    30036: "Validity Period Expired",
}

# Twilio's magic destination numbers (test credentials) and the errors they raise.
MAGIC_TO_ERRORS: dict[str, int] = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the GSM-7 extension table take two septets (escape + char).
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


class TwilioError(Exception):
    """An API error answered with Twilio's legacy body and an HTTP status."""

    def __init__(self, code: int, status: int = 400, message: str | None = None, **facts: str):
        self.code = code
        self.status = status
        self.message = message or error_text(code, **facts)
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON body Twilio answers with (``TwilioRestException`` parses it)."""
        return error_body(self.code, self.status, self.message)


def error_text(code: int, **facts: str) -> str:
    """Twilio's message for ``code``, filled with ``facts`` (to, from_, path, url)."""
    template = ERROR_MESSAGES.get(code, "Error {code}")
    try:
        return template.format(code=code, **facts)
    except KeyError:
        return template


def error_body(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    """The legacy error body ``{code, message, more_info, status}``."""
    return {
        "code": code,
        "message": message or error_text(code),
        "more_info": f"{ERRORS_URL}{code}",
        "status": status,
    }


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: a two-letter prefix and 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def rfc2822(timestamp: float | None) -> str | None:
    """``Thu, 24 Aug 2023 05:01:45 +0000`` (whole seconds, GMT), or None."""
    if timestamp is None:
        return None
    return format_datetime(datetime.fromtimestamp(int(timestamp), UTC))


def count_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160/153, else UCS-2 70/67 (UTF-16 units).

    One character outside GSM-7 turns the whole body into UCS-2, as on a handset.
    """
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in body)
        single, per_part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, per_part = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / per_part)


def raw_dlr_done_date(timestamp: float) -> str:
    """The carrier receipt time as Twilio forwards it: ``YYMMDDHHMM`` (GMT)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%y%m%d%H%M")


def default_service_sid(account_sid: str) -> str:
    """The account's default Messaging Service SID.

    The spec says ``messaging_service_sid`` gets "a unique default value" when
    no Messaging Service is used; we derive one so it stays stable.
    """
    return "MG" + uuid.uuid5(uuid.NAMESPACE_URL, f"twilio-sim:{account_sid}").hex


@dataclass
class DeliveryPlan:
    """How the simulated carrier treats one message (set per destination)."""

    outcome: str = "delivered"  # delivered | undelivered | failed | no_receipt
    error_code: int | None = None
    callbacks: str = "normal"  # normal | duplicate | reorder | drop
    delay_ms: int = 0


@dataclass
class Message:
    """One Message resource, outbound (``outbound-api``) or inbound."""

    sid: str
    seq: int
    to: str
    body: str
    created_at: float
    status: str
    sender: str | None = None  # the resource's ``from``
    requested_from: str | None = None
    messaging_service_sid: str | None = None  # as requested (None: no service used)
    media_urls: list[str] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)  # what fetching each URL got
    requested_body: str | None = None  # as given, before Smart Encoding
    status_callback: str | None = None
    direction: str = "outbound-api"
    num_segments: int = 0
    error_code: int | None = None
    error_message: str | None = None
    price: str | None = None
    provide_feedback: bool = False
    updated_at: float = 0.0
    sent_at: float | None = None
    plan: DeliveryPlan = field(default_factory=DeliveryPlan)
    pending_steps: list[str] = field(default_factory=list)
    held_callbacks: list[dict[str, str]] = field(default_factory=list)
    status_history: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)


def message_uri(account_sid: str, sid: str) -> str:
    """The resource URI, relative to ``https://api.twilio.com``."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


def message_resource(msg: Message, account_sid: str) -> dict[str, Any]:
    """The Message resource exactly as the spec's ``api.v2010.account.message``."""
    base = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{msg.sid}"
    subresources = {"media": f"{base}/Media.json"}
    if msg.provide_feedback:
        subresources["feedback"] = f"{base}/Feedback.json"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": msg.body,
        "date_created": rfc2822(msg.created_at),
        "date_sent": rfc2822(msg.sent_at),
        "date_updated": rfc2822(msg.updated_at),
        "direction": msg.direction,
        "error_code": msg.error_code,
        "error_message": msg.error_message,
        "from": msg.sender,
        "messaging_service_sid": msg.messaging_service_sid or default_service_sid(account_sid),
        "num_media": str(len(msg.media_urls)),
        "num_segments": str(msg.num_segments),
        "price": msg.price,
        "price_unit": "USD",
        "sid": msg.sid,
        "status": msg.status,
        "subresource_uris": subresources,
        "to": msg.to,
        "uri": f"{base}.json",
    }


# --- list filters and paging -------------------------------------------------

FILTER_KEYS = ("To", "From", "DateSent", "DateSent<", "DateSent>")
_TZ_ABBREVIATIONS = {
    "UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip


@dataclass(frozen=True)
class DateBound:
    """A ``DateSent`` filter value: a whole GMT day, or an instant."""

    value: datetime
    whole_day: bool

    def day(self) -> date:
        return self.value.date()


@dataclass(frozen=True)
class ListQuery:
    """The query parameters of the Messages list, parsed."""

    filters: tuple[tuple[str, str], ...]  # as given, in FILTER_KEYS order, for the URIs
    to: str | None = None
    from_: str | None = None
    sent_on: DateBound | None = None
    sent_before: DateBound | None = None
    sent_after: DateBound | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 0
    page_token: str | None = None

    def matches(self, msg: Message) -> bool:
        """Whether ``msg`` passes the To/From/DateSent filters."""
        if self.to is not None and msg.to != self.to:
            return False
        if self.from_ is not None and msg.sender != self.from_:
            return False
        bounds = (self.sent_on, self.sent_before, self.sent_after)
        if all(bound is None for bound in bounds):
            return True
        if msg.sent_at is None:
            return False
        return _date_sent_matches(datetime.fromtimestamp(int(msg.sent_at), UTC), self)


def _date_sent_matches(sent: datetime, query: ListQuery) -> bool:
    # ``DateSent`` finds "a specific sent_date": always a whole GMT day (the twilio
    # package sends even a date as ``YYYY-MM-DDT00:00:00Z``). ``DateSent<``/``>``
    # with a bare date are "on and before/after" that day; with a time, instants.
    if query.sent_on and sent.date() != query.sent_on.day():
        return False
    if query.sent_before and not _within(sent, query.sent_before, before=True):
        return False
    return not (query.sent_after and not _within(sent, query.sent_after, before=False))


def _within(sent: datetime, bound: DateBound, before: bool) -> bool:
    if bound.whole_day:
        return sent.date() <= bound.day() if before else sent.date() >= bound.day()
    return sent <= bound.value if before else sent >= bound.value


def parse_date_sent(text: str) -> DateBound:
    """Parse a ``DateSent`` value in the formats the spec's examples use.

    ``YYYY-MM-DD``; ISO 8601 (``2024-01-02T10:00:00Z``, what the twilio package
    sends; ``2019-06-11 22:05:25.000``); RFC 2822; ``06/11/2019 22:05:25 MST``.
    Raises TwilioError 20422 otherwise.
    """
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return DateBound(datetime.fromisoformat(text).replace(tzinfo=UTC), whole_day=True)
    for parse in (_parse_iso, parsedate_to_datetime, _parse_us_with_zone):
        try:
            parsed = parse(text)
        except (ValueError, TypeError, IndexError):
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return DateBound(parsed.astimezone(UTC), whole_day=False)
    raise TwilioError(20422, message=f"Invalid DateSent value: {text}")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _parse_us_with_zone(text: str) -> datetime:
    stamp, _, zone = text.rpartition(" ")
    offset = _TZ_ABBREVIATIONS[zone.upper()] if zone.upper() in _TZ_ABBREVIATIONS else None
    if offset is None:
        raise ValueError(zone)
    parsed = datetime.strptime(stamp, "%m/%d/%Y %H:%M:%S")
    return parsed - timedelta(hours=offset)


def parse_list_query(args: Any) -> ListQuery:
    """Build a ListQuery from the request's query args (a MultiDict or dict)."""
    filters = tuple((key, args[key]) for key in FILTER_KEYS if args.get(key))

    def bound(key: str) -> DateBound | None:
        return parse_date_sent(args[key]) if args.get(key) else None

    return ListQuery(
        filters=filters,
        to=args.get("To") or None,
        from_=args.get("From") or None,
        sent_on=bound("DateSent"),
        sent_before=bound("DateSent<"),
        sent_after=bound("DateSent>"),
        page_size=_int_arg(args, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        page=_int_arg(args, "Page", 0, 0, None),
        page_token=args.get("PageToken") or None,
    )


def _int_arg(args: Any, key: str, default: int, low: int, high: int | None) -> int:
    raw = args.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TwilioError(20422, message=f"Invalid {key} value: {raw}") from None
    if value < low:
        raise TwilioError(20422, message=f"Invalid {key} value: {raw}")
    return min(value, high) if high is not None else value


def list_uri(account_sid: str, query: ListQuery, page: int, token: str | None) -> str:
    """A list URI with the query's filters, PageSize, Page and (maybe) PageToken."""
    params: list[tuple[str, Any]] = [*query.filters, ("PageSize", query.page_size), ("Page", page)]
    if token:
        params.append(("PageToken", token))
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages.json?{urlencode(params)}"


def list_page_body(
    account_sid: str, query: ListQuery, items: list[Message], has_next: bool
) -> dict[str, Any]:
    """The ListMessageResponse: one list key, ``messages``, plus the paging keys.

    Page tokens are ``PA`` + the last SID of this page (next) and ``PB`` + the
    first SID (previous), as in the spec's examples, so paging stays stable
    while new messages arrive.
    """
    start = query.page * query.page_size
    next_uri = None
    if has_next and items:
        next_uri = list_uri(account_sid, query, query.page + 1, "PA" + items[-1].sid)
    previous_uri = None
    if query.page > 0 and items:
        previous_uri = list_uri(account_sid, query, query.page - 1, "PB" + items[0].sid)
    return {
        "end": start + len(items) - 1 if items else start,
        "first_page_uri": list_uri(account_sid, query, 0, None),
        "messages": [message_resource(msg, account_sid) for msg in items],
        "next_page_uri": next_uri,
        "page": query.page,
        "page_size": query.page_size,
        "previous_page_uri": previous_uri,
        "start": start,
        "uri": list_uri(account_sid, query, query.page, query.page_token),
    }
