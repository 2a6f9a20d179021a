"""Keywords (one word, any case, trimmed) and the consent rule."""

from __future__ import annotations

import pytest

from app.compliance import HELP, OPT_IN, OPT_OUT, classify_keyword, may_send


@pytest.mark.parametrize(("body", "expected"), [
    ("STOP", OPT_OUT), ("stop", OPT_OUT), (" Stop ", OPT_OUT), ("\tSTOPALL\n", OPT_OUT),
    ("unsubscribe", OPT_OUT), ("Cancel", OPT_OUT), ("END", OPT_OUT), ("quit", OPT_OUT),
    ("REVOKE", OPT_OUT), ("optout", OPT_OUT),
    ("START", OPT_IN), ("yes", OPT_IN), ("Unstop", OPT_IN),
    ("HELP", HELP), ("info", HELP),
    ("STOP please", None), ("please stop", None), ("", None), (None, None), ("STOPP", None),
    ("Can we move it to 11?", None),
])
def test_keywords(body, expected) -> None:
    assert classify_keyword(body) == expected


def test_twilio_opt_out_type_counts_too() -> None:
    assert classify_keyword("arret", "STOP") == OPT_OUT
    assert classify_keyword("hello", "START") == OPT_IN
    assert classify_keyword("aide", "HELP") == HELP


@pytest.mark.parametrize(("mode", "status", "allowed"), [
    ("opt-in", None, False), ("opt-in", "opted_in", True), ("opt-in", "opted_out", False),
    ("opt-out", None, True), ("opt-out", "opted_in", True), ("opt-out", "opted_out", False),
])
def test_consent_rule(mode, status, allowed) -> None:
    ok, reason = may_send(mode, status)
    assert ok is allowed
    assert (reason is None) is allowed
