"""app.content: GSM-7 / UCS-2 counts against Twilio's rules, Smart Encoding, clean text, splits."""

from __future__ import annotations

import random

import pytest

from app.content import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    InvalidText,
    Segmentation,
    clean_text,
    clusters,
    decode_text,
    fits,
    normalise,
    segmentation,
    smart_encode,
    split_reply,
    split_spans,
    transliterate,
)
from app.smart_encoding import SMART_ENCODING

EMOJI = "\U0001F600"  # 😀, two UTF-16 units
FAMILY = "\U0001F469\u200d\U0001F469\u200d\U0001F467"  # 👩‍👩‍👧, one grapheme of 8 units
FLAG = "\U0001F1FA\U0001F1F8"  # 🇺🇸

# (why, body, smart, encoding, segments, units). Segments: GSM-7 160 / 153 per part,
# UCS-2 70 / 67 per part; extension characters cost two septets; nothing is cut in two.
TABLE = [
    ("empty body is one segment", "", True, "GSM-7", 1, 0),
    ("exactly 160 GSM-7", "a" * 160, True, "GSM-7", 1, 160),
    ("161 GSM-7 needs two parts", "a" * 161, True, "GSM-7", 2, 161),
    ("153 x 2 fills two parts", "a" * 306, True, "GSM-7", 2, 306),
    ("153 x 2 + 1", "a" * 307, True, "GSM-7", 3, 307),
    ("GSM-7 accents and Greek", "éèùìòÇØøÅåÆæßÉÄÖÑÜäöñüà¡¿§£¥¤ΔΦΓΛΩΠΨΣΘΞ", True, "GSM-7", 1, 39),
    ("every extension char costs 2", "^{}\\[~]|€", True, "GSM-7", 1, 18),
    ("80 braces are 160 septets", "{" * 80, True, "GSM-7", 1, 160),
    ("81 braces are 162 septets", "{" * 81, True, "GSM-7", 2, 162),
    ("159 + euro = 161 septets", "a" * 159 + "€", True, "GSM-7", 2, 161),
    ("escape pair never cut", "a" * 152 + "€" + "a" * 152, True, "GSM-7", 3, 306),
    ("exactly 70 UCS-2", "ç" * 70, True, "UCS-2", 1, 70),
    ("71 UCS-2", "ç" * 71, True, "UCS-2", 2, 71),
    ("67 x 2 UCS-2", "ç" * 134, True, "UCS-2", 2, 134),
    ("67 x 2 + 1 UCS-2", "ç" * 135, True, "UCS-2", 3, 135),
    ("extension char is one unit in UCS-2", "ç€" * 35, True, "UCS-2", 1, 70),
    ("one emoji turns 69 chars into UCS-2", "a" * 69 + EMOJI, True, "UCS-2", 2, 71),
    ("35 emoji are 70 units", EMOJI * 35, True, "UCS-2", 1, 70),
    ("36 emoji are 72 units", EMOJI * 36, True, "UCS-2", 2, 72),
    ("surrogate pair never cut", "a" * 66 + EMOJI + "a" * 66, True, "UCS-2", 3, 134),
    ("ZWJ family is one 8-unit grapheme", FAMILY, True, "UCS-2", 1, 8),
    ("ZWJ family never cut", "a" * 60 + FAMILY + "a" * 66, True, "UCS-2", 3, 134),
    ("flag is 4 units", FLAG, True, "UCS-2", 1, 4),
    ("combining mark without precomposed form", "x\u0301", True, "UCS-2", 1, 2),
    ("mark kept with its letter", "a" * 66 + "x\u0301" + "a" * 66, True, "UCS-2", 3, 134),
    ("CJK", "你好", True, "UCS-2", 1, 2),
    ("lower-case Greek is not GSM-7", "αβγ", True, "UCS-2", 1, 3),
    ("smart quotes become GSM-7", "\u201cHello\u201d it\u2019s", True, "GSM-7", 1, 12),
    ("smart quotes without Smart Encoding", "\u201cHello\u201d it\u2019s", False, "UCS-2", 1, 12),
    ("150 chars + smart quotes, smart", "\u201c" + "a" * 148 + "\u201d", True, "GSM-7", 1, 150),
    ("150 chars + smart quotes, not smart", "\u201c" + "a" * 148 + "\u201d", False,
     "UCS-2", 3, 150),
    ("ellipsis becomes three dots", "a" * 158 + "\u2026", True, "GSM-7", 2, 161),
    ("ellipsis without Smart Encoding", "a" * 158 + "\u2026", False, "UCS-2", 3, 159),
    ("em dash becomes a hyphen", "a \u2014 b", True, "GSM-7", 1, 5),
    ("no-break space becomes two spaces (Twilio's table)", "a\u00a0b", True, "GSM-7", 1, 4),
    ("an emoji keeps the smart quotes: counted the larger way", "\u201chi\u201d\u2026" + EMOJI,
     True, "UCS-2", 1, 9),
    ("UCS-2 count takes the larger of original and replaced", "\u2026" * 30 + EMOJI, True,
     "UCS-2", 2, 92),
]


@pytest.mark.parametrize(("why", "body", "smart", "encoding", "segments", "units"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_segmentation_table(why, body, smart, encoding, segments, units) -> None:
    assert segmentation(body, smart=smart) == Segmentation(encoding, segments, units)


def test_alphabets_have_gsm_03_38_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points minus ESC
    assert GSM7_EXTENSION == frozenset("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "`" not in GSM7_BASIC and "ç" not in GSM7_BASIC and "Ç" in GSM7_BASIC


def test_smart_encoding_table_rows_from_twilio_docs() -> None:
    # First rows of https://www.twilio.com/docs/messaging/services/smart-encoding-char-list
    assert SMART_ENCODING[0x00AB] == '"' and SMART_ENCODING[0x201D] == '"'
    assert SMART_ENCODING[0xFF02] == '"' and SMART_ENCODING[0x2019] == "'"
    assert SMART_ENCODING[0x0060] == "'" and SMART_ENCODING[0x02CA] == "'"
    assert len(SMART_ENCODING) == 270
    assert all(all(c in GSM7_BASIC | GSM7_EXTENSION for c in v) for v in SMART_ENCODING.values())


def test_smart_encode_is_all_or_nothing() -> None:
    assert smart_encode("\u201cHi\u201d \u2014 it\u2019s\u2026") == "\"Hi\" - it's..."
    with_emoji = "\u201cHi\u201d " + EMOJI
    assert smart_encode(with_emoji) == with_emoji
    assert transliterate(with_emoji) == "\"Hi\" " + EMOJI


def test_clusters_keep_graphemes_whole() -> None:
    assert clusters(FLAG + FLAG) == [FLAG, FLAG]
    assert clusters("e\u0301" + FAMILY + "a") == ["e\u0301", FAMILY, "a"]
    assert clusters("\U0001F44D\U0001F3FD!") == ["\U0001F44D\U0001F3FD", "!"]
    assert all(len(c) <= 16 for c in clusters("a" + "\u0301" * 100))


# -- clean text ---------------------------------------------------------------------------

def test_clean_text_normalises_to_nfc() -> None:
    decomposed = "Cafe\u0301 a\u0308"
    assert clean_text(decomposed) == "Café ä" == normalise(decomposed)
    assert clean_text("Café ä") == clean_text(decomposed)
    assert segmentation(clean_text("Cafe\u0301")) == Segmentation("GSM-7", 1, 4)


def test_clean_text_keeps_tabs_newlines_emoji() -> None:
    assert clean_text("a\tb\r\nc " + EMOJI) == "a\tb\r\nc " + EMOJI


@pytest.mark.parametrize("bad", ["\0", "\x07", "\x1b", "\x0c", "\x7f", "\x85", "\x9f"])
def test_clean_text_refuses_control_characters(bad: str) -> None:
    with pytest.raises(InvalidText) as info:
        clean_text(f"hello{bad}world", field="attachment name")
    assert info.value.field == "attachment name"
    assert ("NUL" if bad == "\0" else f"U+{ord(bad):04X}") in info.value.reason


def test_clean_text_refuses_lone_surrogates() -> None:
    with pytest.raises(InvalidText, match="unpaired surrogate U\\+D83D"):
        clean_text("broken \ud83d emoji")


def test_clean_text_bounds_length_and_type() -> None:
    assert clean_text("e\u0301" * 5, max_chars=5) == "é" * 5  # counted after NFC
    with pytest.raises(InvalidText, match="longer than 5"):
        clean_text("abcdef", max_chars=5)
    with pytest.raises(InvalidText, match="not text"):
        clean_text(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [b"\xff", b"ok \xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_decode_text_refuses_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(InvalidText, match="not valid UTF-8"):
        decode_text(raw)


def test_decode_text_accepts_utf8_and_cleans() -> None:
    assert decode_text("Cafe\u0301 😀".encode()) == "Café 😀"
    with pytest.raises(InvalidText, match="NUL"):
        decode_text(b"a\x00b")


# -- long replies -------------------------------------------------------------------------

def _check_split(body: str, **limits) -> list[str]:
    """Every part fits; parts are in order; what lies between them is whitespace only."""
    spans = split_spans(body, **limits)
    parts = split_reply(body, **limits)
    assert parts == [body[s:e] for s, e in spans]
    assert all(fits(p, **limits) for p in parts)
    cuts = [0] + [x for span in spans for x in span] + [len(body)]
    gaps = [body[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True)]
    assert all(g.strip() == "" for g in gaps)
    rebuilt = gaps[0] + "".join(p + g for p, g in zip(parts, gaps[1:], strict=True))
    assert rebuilt == body
    return parts


def test_short_reply_is_one_part() -> None:
    assert split_reply("hello there") == ["hello there"]
    assert split_spans("") == [(0, 0)]


def test_long_gsm_reply_splits_at_words() -> None:
    body = " ".join(f"word{i}" for i in range(400))  # 3,089 chars
    parts = _check_split(body)
    assert len(parts) == 3
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)
    assert parts[1].startswith("word") and parts[0].split(" ")[-1].startswith("word")
    assert segmentation(parts[0]).segments == 10


def test_ucs2_reply_is_limited_by_segments() -> None:
    body = " ".join(f"ça{EMOJI}" for _ in range(300))
    parts = _check_split(body)
    assert all(segmentation(p).units <= 670 for p in parts)
    assert len(parts) == 3


def test_a_word_longer_than_a_part_is_cut() -> None:
    body = "x" * 2000
    parts = _check_split(body, max_segments=1)
    assert [len(p) for p in parts] == [160] * 12 + [80]


def test_cut_never_splits_a_grapheme() -> None:
    body = (FAMILY + "e\u0301") * 100
    parts = _check_split(body, max_segments=2)
    assert all(clusters(p)[0][0] not in "\u200d\u0301" for p in parts)
    assert "".join(parts) == body


def test_no_break_space_is_not_a_split_point() -> None:
    body = "a\u00a0" * 200 + "b " * 10
    parts = _check_split(body, max_segments=1)
    assert len(parts) > 1


def test_max_chars_limits_smart_encoded_length() -> None:
    body = "\u2026 " * 300  # 600 chars, 1,200 once Smart Encoded
    parts = _check_split(body, max_chars=400, max_segments=100)
    assert all(len(smart_encode(p)) <= 400 for p in parts)


def test_one_segment_parts_with_newlines() -> None:
    body = "\n".join(["Line of text " * 5] * 6)
    parts = _check_split(body, max_segments=1)
    assert all(len(p) <= 160 for p in parts)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        split_reply("x", max_chars=10)
    with pytest.raises(ValueError):
        split_reply("x", max_segments=0)


def test_random_bodies_split_exactly() -> None:
    rng = random.Random(20240601)
    alphabet = ["a", "b", "é", "€", "{", " ", " ", "\n", "ç", EMOJI, FLAG, "e\u0301", "\u201c"]
    for _ in range(20):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 2000)))
        _check_split(body, max_segments=rng.choice([1, 2, 10]), smart=rng.random() < 0.5)
