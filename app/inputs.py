"""Exact, bounded input: phone numbers, ids, texts and JSON bodies from outside.

Every value from CXone, Twilio or an operator passes through here before it
reaches the database, a key or a URL. Patterns match whole values
(``re.fullmatch``, ASCII digits only), every id and text has a length bound,
and a phone number has one canonical form, so the consent ledger, the
idempotency key and every query see the same number for the same phone.
"""

from __future__ import annotations

import json
import re
from typing import Any

# E.164: "+", a non-zero country digit, 7 to 15 digits in all. ASCII digits only:
# "\d" would also match other scripts' digits.
E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
# Visual separators people and systems put in numbers (E.123): removed before the check.
_SEPARATORS = re.compile(r"[ \t().\-\u00a0]")
# Ids of CXone, DFO and Twilio resources: URL-safe, no path syntax. The first character
# is never a dot, so "." and ".." (dot segments a URL would collapse) cannot be ids.
ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:~@+=-]*", re.ASCII)
TWILIO_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}", re.ASCII)

MAX_ID = 200
MAX_PHONE_INPUT = 40
MAX_JSON_DEPTH = 32


class InvalidInput(ValueError):
    """A value from outside that the gateway refuses; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def canonical_phone(value: Any, field: str = "number") -> str:
    """The one form of a phone number the gateway stores and compares: ``+14155559876``.

    Surrounding whitespace and visual separators (spaces, dashes, dots,
    parentheses) are dropped; what remains must be E.164 as a whole.
    """
    if not isinstance(value, str) or len(value) > MAX_PHONE_INPUT:
        raise InvalidInput(field, "must be an E.164 number like +14155559876")
    candidate = _SEPARATORS.sub("", value.strip())
    if not E164.fullmatch(candidate):
        raise InvalidInput(field, "must be an E.164 number like +14155559876")
    return candidate


def phone_or_none(value: Any) -> str | None:
    """The canonical form of ``value``, or None when it is not a phone number."""
    try:
        return canonical_phone(value)
    except InvalidInput:
        return None


def is_e164(value: Any) -> bool:
    """True when ``value`` is exactly an E.164 number (no whitespace, no separators)."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


def external_id(value: Any, field: str, *, max_length: int = MAX_ID) -> str:
    """An id from outside, exactly as given: URL-safe characters, at most ``max_length``."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "is missing")
    if len(value) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    if not ID.fullmatch(value):
        raise InvalidInput(field, "may hold only letters, digits and . _ : ~ @ + = - "
                                  "(and not start with a dot)")
    return value


def is_twilio_sid(value: Any) -> bool:
    """True for a Twilio Message SID (``SM``/``MM`` + 32 hex digits), exactly."""
    return isinstance(value, str) and TWILIO_SID.fullmatch(value) is not None


def text(value: Any, field: str, *, max_length: int, allow_empty: bool = True) -> str:
    """A text from outside, in NFC (one form, so it hashes and counts the same however it
    was typed): no control characters (tab and line breaks are fine), valid Unicode (no
    lone surrogates), at most ``max_length`` characters (app/content.py clean_text)."""
    from app.content import InvalidText, clean_text

    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if len(value) > 4 * max_length:  # far too long even before normalising: no scan
        raise InvalidInput(field, f"is longer than {max_length} characters")
    try:
        cleaned = clean_text(value, field=field, max_chars=max_length)
    except InvalidText as exc:
        raise InvalidInput(field, exc.reason) from None
    if not allow_empty and not cleaned.strip():
        raise InvalidInput(field, "is empty")
    return cleaned


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON request body; :class:`InvalidInput` when it is not (or too deep).

    The depth is checked on the bytes first, so a deeply nested body never
    reaches the recursive decoder.
    """
    # Counting brackets runs at C speed; only a body with many is scanned properly.
    if raw.count(b"[") + raw.count(b"{") > max_depth and _nesting_depth(raw) > max_depth:
        raise InvalidInput("body", f"is nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("body", "is not valid JSON") from None


def _nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting outside JSON strings (a cheap scan, no decoding)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def json_value(value: Any, field: str, *, max_bytes: int = 4096) -> Any:
    """A JSON value from outside that Postgres can store as jsonb, at most ``max_bytes``."""
    try:
        encoded = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        raise InvalidInput(field, "is not storable JSON") from None
    if len(encoded) > max_bytes:
        raise InvalidInput(field, f"is larger than {max_bytes} bytes")
    if b"\\u0000" in encoded:  # jsonb refuses NUL
        raise InvalidInput(field, "contains a NUL character")
    return value
