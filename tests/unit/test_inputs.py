"""Exact, bounded input (issue "Hardening"): every pattern matches whole values."""

from __future__ import annotations

import json

import pytest

from app.inputs import (
    InvalidInput,
    canonical_phone,
    external_id,
    is_e164,
    is_twilio_sid,
    json_value,
    parse_json,
    text,
)


@pytest.mark.parametrize("raw", ["+14155553333\n", " +14155553333", "+1 415 555 3333",
                                 "+1 (415) 555-3333", "+1.415.555.3333", "\t+14155553333\r\n"])
def test_one_canonical_form_for_a_number(raw):
    assert canonical_phone(raw) == "+14155553333"


@pytest.mark.parametrize("raw", ["+1415555333\u0663", "+14155553333x", "14155553333", "+0123456",
                                 "+1234", "+1234567890123456", "", None, 14155553333,
                                 "+1415555\n3333\nX", "+" + "1" * 100])
def test_not_a_number(raw):
    with pytest.raises(InvalidInput):
        canonical_phone(raw)


def test_is_e164_matches_the_whole_value():
    assert is_e164("+14155553333")
    assert not is_e164("+14155553333\n")
    assert not is_e164("+1 4155553333")


def test_sid_matches_the_whole_value():
    sid = "SM" + "a" * 32
    assert is_twilio_sid(sid)
    assert not is_twilio_sid(sid + "\n")
    assert not is_twilio_sid(sid + "0")


@pytest.mark.parametrize("value", ["..", ".", "../x", "a/b", "a b", "x" * 201, "", "\u00e9t\u00e9",
                                   "id\n", "%2e%2e", None, 5])
def test_ids_are_bounded_and_url_safe(value):
    with pytest.raises(InvalidInput):
        external_id(value, "id")


@pytest.mark.parametrize("value", ["msg_8f3a2b1c-9d4e-4f5a", "18005551234_14155559876",
                                   "SM" + "0" * 32, "a.b", "x" * 200])
def test_ordinary_ids_pass(value):
    assert external_id(value, "id") == value


@pytest.mark.parametrize("value", ["a\x00b", "a\x07", "a\x7f", "\u0085", "\ud800"])
def test_text_refuses_controls_and_lone_surrogates(value):
    with pytest.raises(InvalidInput):
        text(value, "body", max_length=100)


def test_text_keeps_line_breaks_tabs_and_emoji():
    assert text("Hi\r\n\tthere \U0001f600", "body", max_length=100)


def test_text_is_bounded():
    with pytest.raises(InvalidInput):
        text("x" * 101, "body", max_length=100)


def test_deep_json_is_refused_before_decoding():
    with pytest.raises(InvalidInput, match="nested"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


def test_brackets_inside_strings_do_not_count():
    body = json.dumps({"text": "[" * 1000}).encode()
    assert parse_json(body) == {"text": "[" * 1000}


def test_json_values_postgres_cannot_store_are_refused():
    with pytest.raises(InvalidInput):
        json_value({"note": "a\x00b"}, "evidence")
    with pytest.raises(InvalidInput):
        json_value({"note": "\ud800"}, "evidence")
    with pytest.raises(InvalidInput):
        json_value({"note": "x" * 5000}, "evidence")
    assert json_value({"note": "ok"}, "evidence") == {"note": "ok"}


def test_signature_check_agrees_with_the_official_validator():
    import random

    from twilio.request_validator import RequestValidator
    from werkzeug.datastructures import MultiDict

    from app.twilio_client import SignatureChecker

    rng = random.Random(7)
    token = "5b" * 16
    official, ours = RequestValidator(token), SignatureChecker(token)
    for url in ("https://sms.example.com/twilio/receipts", "https://sms.example.com:443/t",
                "http://127.0.0.1:5000/twilio/inbound?x=1", "https://h.example/p?a=b&c=d"):
        for _ in range(50):
            params = MultiDict([(rng.choice("ABCab"), rng.choice(["1", "", "é", "+1 5", "x"]))
                                for _ in range(rng.randrange(0, 6))])
            signer = rng.choice([url, url.replace(".com/", ".com:443/")])
            good = official.compute_signature(signer, params)
            for signature in (good, good[:-2] + "AA", "", "x" * 300):
                assert ours.signature_is_valid(url, params, signature) == \
                    (bool(signature) and official.validate(url, params, signature)), \
                    (url, signer, params, signature)


def test_texts_are_normalised_to_one_form():
    decomposed = "Cafe\u0301"  # e + combining acute
    assert text(decomposed, "body", max_length=10) == "Caf\u00e9"
