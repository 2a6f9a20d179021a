"""Message text: Unicode safety, GSM-7 / UCS-2 segment counts, splitting long replies.

Pure, no I/O. Callers clean a body once (:func:`clean_text`) and count or split
the cleaned text; nothing here normalises behind their back, so the offsets of
:func:`split_spans` index the text given. Counts follow GSM 03.38 and Twilio's
rules: GSM-7 160 septets, 153 per part (extension characters cost two); one
other character makes it UCS-2, 70 UTF-16 units, 67 per part. As in Twilio's
calculator (TwilioDevEd/message-segment-calculator, ``SegmentedMessage.ts``)
nothing is cut across two segments: not an escape pair, a surrogate pair, or
(approximately) a grapheme.
"""

from __future__ import annotations

import bisect
import itertools
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from app.smart_encoding import SMART_ENCODING

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (ESC 0x1B left out: it is not a character one can send).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# The extension table: each costs two septets (ESC + the character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7 = GSM7_BASIC | GSM7_EXTENSION

SINGLE = {"GSM-7": 160, "UCS-2": 70}
MULTI = {"GSM-7": 153, "UCS-2": 67}

# Whitespace a reply is never split at (it is there to keep two words together).
_NO_BREAK = frozenset("\u00a0\u2007\u202f\u2060\ufeff")
# Controls a text may carry; every other Cc (C0, DEL, C1) is refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
# A pathological cluster (a letter with 200 combining marks) is cut at this size.
_MAX_CLUSTER = 16


class InvalidText(ValueError):
    """Text that must not be sent or stored; ``field`` says which, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Segmentation:
    """How Twilio will encode a body: ``units`` are septets (GSM-7) or UTF-16 units (UCS-2)."""

    encoding: Encoding
    segments: int
    units: int


# -- Unicode safety ----------------------------------------------------------------------

def normalise(text: str) -> str:
    """NFC: one canonical form, so the same words always hash and count the same."""
    return unicodedata.normalize("NFC", text)


def clean_text(text: str, *, field: str = "body", max_chars: int | None = None) -> str:
    """``text`` in NFC; raises :class:`InvalidText` for what cannot be sent.

    Refused: NUL and every other control character (C0, DEL, C1) except tab,
    line feed and carriage return; unpaired surrogates (what a JSON ``\\ud800``
    escape or a broken decoder leaves), i.e. anything UTF-8 cannot encode; and,
    when ``max_chars`` is given, a longer text (counted after normalisation).
    """
    if not isinstance(text, str):
        raise InvalidText(field, "is not text")
    for char in text:
        if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS:
            what = "a NUL character" if char == "\0" else f"control character U+{ord(char):04X}"
            raise InvalidText(field, f"contains {what}")
        if "\ud800" <= char <= "\udfff":
            raise InvalidText(field, f"contains an unpaired surrogate U+{ord(char):04X} "
                                     "(not valid UTF-8)")
    cleaned = normalise(text)
    if max_chars is not None and len(cleaned) > max_chars:
        raise InvalidText(field, f"is longer than {max_chars} characters")
    return cleaned


def decode_text(raw: bytes, *, field: str = "body", max_chars: int | None = None) -> str:
    """Strict UTF-8 bytes → :func:`clean_text`; invalid UTF-8 raises :class:`InvalidText`."""
    try:
        return clean_text(raw.decode("utf-8"), field=field, max_chars=max_chars)
    except UnicodeDecodeError as exc:
        raise InvalidText(field, f"is not valid UTF-8 (byte {exc.start})") from None


# -- Smart Encoding and segments ----------------------------------------------------------

def transliterate(body: str) -> str:
    """Every character of Twilio's Smart Encoding table replaced, whatever else is there."""
    return body.translate(SMART_ENCODING)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet or its extension."""
    return all(char in GSM7 for char in text)


def smart_encode(body: str) -> str:
    """The body Twilio sends when Smart Encoding is on.

    Twilio replaces the characters of its table only when that makes the whole
    message GSM-7; a message that keeps an emoji or a CJK character goes out
    unchanged as UCS-2 (Twilio's announcement of Smart Encoding, 2017, and
    Messaging Services docs). See :func:`segmentation` for how UCS-2 is counted.
    """
    replaced = transliterate(body)
    return replaced if is_gsm7(replaced) else body


def segmentation(body: str, *, smart: bool = True) -> Segmentation:
    """Encoding, segment count and units of ``body`` as Twilio will send it.

    With ``smart`` and a body that stays UCS-2, Twilio's docs say the original
    goes out while its own calculator counts the replaced text; the larger of
    the two counts is returned, so a limit checked against it holds either way.
    An empty body counts as one segment, as in Twilio's calculator.
    """
    if smart:
        replaced = transliterate(body)
        if is_gsm7(replaced):
            return _count(replaced)
        if replaced != body:
            return max(_count(body), _count(replaced), key=lambda s: (s.segments, s.units))
    return _count(body)


def _count(text: str) -> Segmentation:
    if is_gsm7(text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        encoding: Encoding = "GSM-7"
    else:
        sizes = [_utf16_units(cluster) for cluster in clusters(text)]
        encoding = "UCS-2"
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return Segmentation(encoding, 1, units)
    return Segmentation(encoding, _pack(sizes, MULTI[encoding]), units)


def _pack(sizes: list[int], capacity: int) -> int:
    """Parts needed when no unit group is cut (a group larger than a part spills over)."""
    parts, fill = 1, 0
    for size in sizes:
        if fill + size > capacity and fill > 0:
            parts, fill = parts + 1, 0
        fill += size
        while fill > capacity:
            parts, fill = parts + 1, fill - capacity
    return parts


def _utf16_units(text: str) -> int:
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def clusters(text: str) -> list[str]:
    """``text`` cut into user-perceived characters, approximately (no table of UAX #29).

    Joined to the character before: combining marks (Mn, Mc, Me, which include
    variation selectors), emoji skin-tone modifiers, tag characters, a zero
    width joiner and the character after it, and the second regional indicator
    of a flag. A cluster stops growing at 16 code points (at most 32 units).
    """
    out: list[str] = []
    for char in text:
        # Nothing below U+0300 joins anything, unless it follows a joiner.
        if out and (char >= "\u0300" or out[-1][-1] == "\u200d") \
                and len(out[-1]) < _MAX_CLUSTER and _joins(out[-1], char):
            out[-1] += char
        else:
            out.append(char)
    return out


def _joins(cluster: str, char: str) -> bool:
    code = ord(char)
    if unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    if code == 0x200D or cluster[-1] == "\u200d":
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    if _is_regional(char):
        run = 0  # a flag is a pair: join the second of each pair
        for prev in reversed(cluster):
            if not _is_regional(prev):
                break
            run += 1
        return run % 2 == 1
    return False


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


# -- Long replies ------------------------------------------------------------------------

def fits(text: str, *, max_chars: int = 1600, max_segments: int = 10,
         smart: bool = True) -> bool:
    """True when ``text`` is within both limits as Twilio will count it.

    Characters are UTF-16 units (the larger reading of Twilio's 1,600) of the
    body or its Smart Encoded form, whichever is longer ("…" becomes "...").
    """
    length = _utf16_units(text)
    if smart:
        length = max(length, _utf16_units(smart_encode(text)))
    return length <= max_chars and segmentation(text, smart=smart).segments <= max_segments


def split_reply(body: str, *, max_chars: int = 1600, max_segments: int = 10,
                smart: bool = True) -> list[str]:
    """``body`` as ordered parts, each within ``max_chars`` and ``max_segments``.

    Parts end at word boundaries; a word longer than a part is cut (never inside
    a character, see :func:`clusters`). At each split the whitespace run between
    the two parts is dropped; ``split_spans`` gives the offsets, so
    ``body == "".join(part + body[end:next_start])`` over the parts. A body that
    fits comes back as ``[body]``.
    """
    return [body[start:end] for start, end in
            split_spans(body, max_chars=max_chars, max_segments=max_segments, smart=smart)]


def split_spans(body: str, *, max_chars: int = 1600, max_segments: int = 10,
                smart: bool = True) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of the parts :func:`split_reply` returns.

    Between two spans lies only whitespace (empty where a long word was cut);
    the first starts at 0; the last ends at ``len(body)`` unless trailing
    whitespace was dropped at the last split.
    """
    if max_chars < 70 or max_segments < 1:
        raise ValueError("max_chars must be at least 70 and max_segments at least 1")
    limits: dict[str, Any] = {"max_chars": max_chars, "max_segments": max_segments,
                              "smart": smart}
    if fits(body, **limits):
        return [(0, len(body))]
    bounds = _boundaries(body)
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(body):
        end = _longest_fit(body, start, bounds, limits)
        if end < len(body):
            end, next_start = _word_break(body, start, end)
        else:
            next_start = end
        if end > start:
            spans.append((start, end))
        start = next_start
    return spans


def _boundaries(body: str) -> list[int]:
    """Offsets where a part may end: between clusters."""
    return list(itertools.accumulate(len(cluster) for cluster in clusters(body)))


def _longest_fit(body: str, start: int, bounds: list[int], limits: dict[str, Any]) -> int:
    """The furthest cluster boundary after ``start`` such that body[start:end] fits.

    Galloping then bisecting keeps short parts cheap; nothing past ``max_chars``
    characters is tried (each character counts at least one unit).
    """
    good = bisect.bisect_right(bounds, start)  # one cluster always fits (<= 32 units)
    bad = bisect.bisect_right(bounds, start + limits["max_chars"])
    step = 64
    while good + step < bad:
        if fits(body[start:bounds[good + step]], **limits):
            good, step = good + step, step * 2
        else:
            bad = good + step
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(body[start:bounds[mid]], **limits):
            good = mid
        else:
            bad = mid
    return bounds[good]


def _word_break(body: str, start: int, end: int) -> tuple[int, int]:
    """(end of this part, start of the next): around the last whitespace run in reach.

    Without one after the part's first word, the word is cut at ``end``.
    """
    at = end  # body[end] exists: only a body that goes on is split
    while at > start and not _breaks(body[at]):
        at -= 1
    run_start, run_end = at, at
    while run_start > start and _breaks(body[run_start - 1]):
        run_start -= 1
    while run_end < len(body) and _breaks(body[run_end]):
        run_end += 1
    return (end, end) if run_start <= start else (run_start, run_end)


def _breaks(char: str) -> bool:
    return char.isspace() and char not in _NO_BREAK
