"""Twilio's Smart Encoding (``SmartEncoded=true`` on a create), as the simulator applies it.

Source: Twilio's "List of characters replaced by Smart Encoding"
(twilio.com/docs/messaging/services/smart-encoding-char-list), cross-checked
against the map in Twilio's own segment calculator (TwilioDevEd/
message-segment-calculator). Written out here grouped by replacement. Left out
on purpose: entries whose documented replacement looked garbled in the sources
(U+2017, U+2039, U+203A, C0/C1 control characters and TAB).

Characters are replaced whatever else the body holds (an emoji stays, and keeps
the body UCS-2).
"""

from __future__ import annotations

# replacement -> the characters that become it
_GROUPS: dict[str, str] = {
    '"': "\u00ab\u00bb\u201c\u201d\u201e\u201f\u02ba\u02ee\u275d\u275e\u301d\u301e\uff02",
    "'": ("\u2018\u2019\u201b\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb\u00b4\u0060"
          "\u275b\u275c\u0313\u0314\ufe10\ufe11\uff07"),
    "-": "\u2010\u2013\u2014\u2015\u2043\u2022\u23bc\u23bd\ufe63\uff0d",
    "...": "\u2026",
    " ": ("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
          "\u2028\u2029\u202f\u205f\u3000"),
    "": "\u200b\u2060\ufeff",
    "/": "\u00f7\u29f8\u0337\u0338\u2044\u2215\uff0f",
    "\\": "\u29f9\u29f5\u20e5\ufe68\uff3c",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    "_": "\u0332\uff3f",
    "|": "\u20d2\u20d3\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f",
    "@": "\ufe6b\uff20",
    "$": "\ufe69\uff04",
    "!": "\u01c3\ufe15\ufe57\uff01",
    "!!": "\u203c",
    "#": "\ufe5f\uff03",
    "%": "\ufe6a\uff05",
    "&": "\ufe60\uff06",
    ",": "\u201a\u0326\ufe50\ufe51\uff0c\uff64\u3001",
    "(": "\u2768\u276a\ufe59\uff08\u27ee\u2985",
    ")": "\u2769\u276b\ufe5a\uff09\u27ef\u2986",
    "*": ("\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b"
          "\u273c\u273d\u2743\u2749\u274a\u274b\u29c6\ufe61\uff0a"),
    "+": "\u02d6\ufe62\uff0b",
    ".": "\u3002\ufe52\uff0e\uff61",
    ":": "\u02d0\u02f8\u2982\ua789\ufe13\uff1a",
    ";": "\u204f\ufe14\ufe54\uff1b",
    "<": "\ufe64\uff1c",
    "=": "\u0347\ua78a\ufe66\uff1d",
    ">": "\ufe65\uff1e",
    "?": "\ufe16\ufe56\uff1f",
    "^": "\u02c6\u0302\uff3e\u1dcd",
    "{": "\u2774\ufe5b\uff5b",
    "}": "\u2775\ufe5c\uff5d",
    "[": "\uff3b",
    "]": "\uff3d",
    "~": "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e",
}
# Latin small capitals (no Q or X in the list) and fullwidth digits and capitals.
_SMALL_CAPITALS = dict(zip(
    "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
    "\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",
    "ABCDEFGHIJKLMNOPRSTUVWYZ", strict=True))
_FULLWIDTH = {chr(0xFF10 + n): str(n) for n in range(10)} | {
    chr(0xFF21 + n): chr(ord("A") + n) for n in range(26)}

SMART_ENCODING: dict[int, str] = {
    **{ord(ch): replacement for replacement, chars in _GROUPS.items() for ch in chars},
    **{ord(ch): letter for ch, letter in (_SMALL_CAPITALS | _FULLWIDTH).items()},
}


def smart_encode(body: str) -> str:
    """``body`` with every character of Twilio's Smart Encoding list replaced."""
    return body.translate(SMART_ENCODING)
