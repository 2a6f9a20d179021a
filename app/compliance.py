"""Keywords and consent rules (pure, no I/O).

Keywords follow CTIA and Twilio's defaults: one word, any case, surrounding
spaces ignored. "STOP please" is a message, not a keyword.
"""

from __future__ import annotations

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                           "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

# Twilio Advanced Opt-Out tells us what it recognised in OptOutType.
_OPT_OUT_TYPES = {"STOP": OPT_OUT, "START": OPT_IN, "HELP": HELP}

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


def classify_keyword(body: str | None, opt_out_type: str | None = None) -> str | None:
    """``opt_out``, ``opt_in``, ``help`` or None for an inbound text.

    Twilio's ``OptOutType`` counts too: when its Advanced Opt-Out recognised a
    (possibly custom) keyword, we follow it.
    """
    if opt_out_type:
        kind = _OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if kind:
            return kind
    word = (body or "").strip().upper()
    if not word or any(ch.isspace() for ch in word):
        return None
    if word in OPT_OUT_WORDS:
        return OPT_OUT
    if word in OPT_IN_WORDS:
        return OPT_IN
    if word in HELP_WORDS:
        return HELP
    return None


def consent_status_for(keyword: str) -> str | None:
    """The consent status a keyword sets (HELP sets none)."""
    return {OPT_OUT: OPTED_OUT, OPT_IN: OPTED_IN}.get(keyword)


def may_send(mode: str, status: str | None) -> tuple[bool, str | None]:
    """Whether a reply may go to a number whose consent is ``status`` under ``mode``.

    ``opt-in``: only to recorded opt-ins. ``opt-out``: unless opted out.
    Returns (allowed, reason when refused).
    """
    if status == OPTED_OUT:
        return False, "recipient opted out"
    if mode == "opt-in" and status != OPTED_IN:
        return False, "no recorded opt-in (CONSENT_MODE=opt-in)"
    return True, None
