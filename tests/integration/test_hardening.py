"""The security review's findings, each as a regression test (issue "Hardening").

Through the Flask app on a real Postgres; the worker-side findings (a long id
in a poll page, the opt-out bypass end to end) are in test_hardening_worker.py.
"""

from __future__ import annotations

import json
import logging

from app.webhooks import BAD_SIGNATURES
from tests.webapp import (
    CUSTOMER,
    inbound,
    message_json,
    new_sid,
    post_signed,
    push,
    receipt,
    rows,
    sent_message,
)

ADMIN = {"Authorization": "Bearer admin-secret"}


def _admin_client(database_url):
    from app import create_app
    from app.services import Services
    from db.pool import Database
    from tests.webapp import gateway_settings

    services = Services(settings=gateway_settings(ADMIN_TOKEN="admin-secret"),
                        db=Database(database_url, max_size=2))
    return create_app(services=services).test_client(), services


# 1. A trailing newline must not make a second number --------------------------------------

def test_admin_consent_with_a_trailing_newline_is_the_same_number(database_url):
    client, services = _admin_client(database_url)
    try:
        answer = client.put("/admin/consent/%2B14155553333%0A", headers=ADMIN,
                            json={"status": "opted_out"})
        assert answer.status_code == 200
        assert answer.get_json()["phone_number"] == "+14155553333"
        got = client.get("/admin/consent/+14155553333", headers=ADMIN).get_json()
        assert got["status"] == "opted_out"
    finally:
        services.close()
    assert rows(database_url, "SELECT phone_number FROM consent") == [("+14155553333",)]


def test_push_to_a_number_with_a_newline_is_stored_canonical(client, database_url):
    body = message_json(to=CUSTOMER + "\n")
    assert push(client, body).status_code == 202
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox WHERE kind = 'send_sms'")
    assert payload["to"] == CUSTOMER


# 2. and 9. Ids: bounded, no dot segments, never "database unavailable" ---------------------

def test_push_with_a_huge_id_is_400_not_503(client, database_url):
    response = push(client, message_json(id="m" * 6000))
    assert response.status_code == 400
    assert "id" in response.get_json()["message"]
    assert rows(database_url, "SELECT * FROM outbox") == []


def test_push_with_a_dot_segment_id_is_400(client, database_url):
    for bad in ("..", ".", "a/b"):
        assert push(client, message_json(id=bad)).status_code == 400
    assert rows(database_url, "SELECT * FROM outbox") == []


# 8. Odd but signed or authenticated input: 4xx or handled, never 500 -----------------------

def test_error_code_beyond_32_bits_is_ignored_not_500(client, database_url):
    sid, _ = sent_message(database_url)
    response = post_signed(client, "/twilio/receipts", receipt(sid, "failed", str(2 ** 31)))
    assert response.status_code == 200
    assert rows(database_url, "SELECT error_code FROM twilio_receipts") == [(None,)]


def test_nul_and_control_characters_in_an_inbound_body_are_400(client, database_url):
    for body in ("a\x00b", "bell\x07"):
        response = post_signed(client, "/twilio/inbound", inbound(body))
        assert response.status_code == 400 and "Body" in response.get_json()["message"]
    assert rows(database_url, "SELECT * FROM inbound_messages") == []


def test_lone_surrogates_and_nul_in_a_push_are_400(client, database_url):
    for raw in ('"\\ud800 x"', '"a\\u0000b"'):
        body = json.dumps(message_json()).replace('"pushed"', raw)
        response = client.post("/cxone/outbound", data=body, content_type="application/json",
                               headers={"Authorization": "Bearer push-secret"})
        assert response.status_code == 400, raw
    assert rows(database_url, "SELECT * FROM outbox") == []


def test_deeply_nested_json_is_400(client):
    body = "[" * 30_000 + "]" * 30_000  # under the 64 kB cap: it reaches the decoder
    response = client.post("/cxone/outbound", data=body, content_type="application/json",
                           headers={"Authorization": "Bearer push-secret"})
    assert response.status_code == 400


def test_admin_limit_out_of_range_is_400(database_url):
    client, services = _admin_client(database_url)
    try:
        for limit in ("99999999999999999999", "0", "-1", "\u0663"):
            response = client.get(f"/admin/dead-letters?limit={limit}", headers=ADMIN)
            assert response.status_code == 400, limit
        nested = client.post("/admin/dead-letters/replay", headers=ADMIN,
                             data="[" * 5000 + "]" * 5000, content_type="application/json")
        assert nested.status_code == 400
        evidence = client.put("/admin/consent/+14155553333", headers=ADMIN,
                              json={"status": "opted_in", "evidence": {"note": "a\x00b"}})
        assert evidence.status_code == 400
    finally:
        services.close()


# 10. Unchecked inbound fields -------------------------------------------------------------

def test_inbound_to_a_number_not_ours_is_not_posted_to_cxone(client, database_url):
    response = post_signed(client, "/twilio/inbound", inbound("hello", To="+19995550000"))
    assert response.status_code == 200
    assert rows(database_url, "SELECT * FROM outbox") == []


def test_a_stop_to_a_number_not_ours_still_opts_out(client, database_url):
    post_signed(client, "/twilio/inbound", inbound("STOP", To="+19995550000"))
    assert rows(database_url, "SELECT status FROM consent WHERE phone_number = %s",
                CUSTOMER) == [("opted_out",)]


def test_non_http_media_urls_are_not_forwarded(client, database_url):
    params = inbound("photo", NumMedia="2", MediaUrl0="file:///etc/passwd",
                     MediaContentType0="image/jpeg", MediaUrl1="https://api.twilio.com/m/1",
                     MediaContentType1="image/png\x00")
    assert post_signed(client, "/twilio/inbound", params).status_code == 200
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox")
    assert payload["media"] == [{"url": "https://api.twilio.com/m/1",
                                 "content_type": "application/octet-stream"}]


# 7. A keyword counts once ever --------------------------------------------------------------

def test_a_replayed_start_after_dedupe_expiry_does_not_opt_in_again(client, database_url):
    start = inbound("START", sid=new_sid())
    assert post_signed(client, "/twilio/inbound", start).status_code == 200
    assert post_signed(client, "/twilio/inbound", inbound("STOP")).status_code == 200
    # Housekeeping trims inbound dedupe rows after DEDUPE_RETENTION_S (30 days).
    with __import__("psycopg").connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM inbound_messages")
    assert post_signed(client, "/twilio/inbound", start).status_code == 200
    assert rows(database_url, "SELECT status FROM consent WHERE phone_number = %s",
                CUSTOMER) == [("opted_out",)]
    assert len(rows(database_url, "SELECT * FROM consent_history")) == 2


# 6. A flood of forged signatures logs an aggregate, not a line per request -----------------

def test_forged_signatures_log_one_aggregated_line(client, database_url, caplog):
    BAD_SIGNATURES._last_logged = 0.0
    with caplog.at_level(logging.WARNING, logger="app.webhooks"):
        for _ in range(200):
            response = client.post("/twilio/receipts", data=receipt(new_sid(), "sent"),
                                   headers={"X-Twilio-Signature": "forged"})
            assert response.status_code == 403
    lines = [r for r in caplog.records if r.getMessage() == "webhook.bad_signature"]
    assert len(lines) == 1
    assert rows(database_url, "SELECT * FROM twilio_receipts") == []

