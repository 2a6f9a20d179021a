"""Webhooks on a real Postgres through the Flask app: signatures, dedupe, order, keywords, push."""

from __future__ import annotations

import psycopg
import pytest
from twilio.request_validator import RequestValidator

from app import create_app
from app.services import Services
from db.pool import Database
from sandbox import defaults
from tests.webapp import (
    CUSTOMER,
    PUBLIC,
    cxone_updates,
    inbound,
    message_json,
    new_sid,
    post_signed,
    push,
    receipt,
    rows,
    sent_message,
    sign,
)

# -- signatures ----------------------------------------------------------------------------

def test_missing_or_forged_signature_is_403_and_changes_nothing(client, database_url):
    sid, _ = sent_message(database_url)
    params = receipt(sid, "delivered")
    assert client.post("/twilio/receipts", data=params).status_code == 403
    forged = RequestValidator("not-the-token").compute_signature(PUBLIC + "/twilio/receipts",
                                                                 params)
    assert client.post("/twilio/receipts", data=params,
                       headers={"X-Twilio-Signature": forged}).status_code == 403
    assert rows(database_url, "SELECT * FROM twilio_receipts") == []
    assert rows(database_url, "SELECT twilio_status FROM sms_gateway_state") == [("accepted",)]


def test_signature_replayed_onto_another_body_is_refused(client, database_url):
    sid, _ = sent_message(database_url)
    signature = sign("/twilio/receipts", receipt(sid, "sent"))
    response = client.post("/twilio/receipts", data=receipt(sid, "delivered"),
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_signature_uses_public_url_not_the_proxied_host(client, database_url):
    sid, _ = sent_message(database_url)
    params = receipt(sid, "sent")
    response = client.post("/twilio/receipts?attempt=1", data=params,
                           base_url="http://10.0.0.7:8080",
                           headers={"X-Twilio-Signature": RequestValidator(
                               defaults.TWILIO_AUTH_TOKEN).compute_signature(
                               PUBLIC + "/twilio/receipts?attempt=1", params)})
    assert response.status_code == 200


def test_extra_fields_twilio_adds_are_signed_and_accepted(client, database_url):
    sid, _ = sent_message(database_url)
    params = {**receipt(sid, "sent"), "RawDlrDoneDate": "2611281201", "NewField": "x"}
    assert post_signed(client, "/twilio/receipts", params).status_code == 200


# -- receipts ------------------------------------------------------------------------------

def test_delivered_receipt_queues_cxone_delivered(client, database_url):
    sid, message_id = sent_message(database_url)
    for status in ("queued", "sending", "sent", "delivered"):
        assert post_signed(client, "/twilio/receipts", receipt(sid, status)).status_code == 200
    assert cxone_updates(database_url, message_id) == [("DELIVERED", None)]
    assert rows(database_url, "SELECT twilio_status, outcome FROM sms_gateway_state") == \
        [("delivered", "delivered")]
    history = rows(database_url, "SELECT message_status FROM twilio_receipts ORDER BY id")
    assert [h[0] for h in history] == ["queued", "sending", "sent", "delivered"]


def test_intermediate_statuses_do_not_reach_cxone(client, database_url):
    sid, message_id = sent_message(database_url)
    for status in ("queued", "sending", "sent"):
        post_signed(client, "/twilio/receipts", receipt(sid, status))
    assert cxone_updates(database_url, message_id) == []


def test_duplicate_and_out_of_order_receipts_never_move_backwards(client, database_url):
    sid, message_id = sent_message(database_url)
    for status in ("delivered", "sent", "delivered", "queued", "sent"):
        assert post_signed(client, "/twilio/receipts", receipt(sid, status)).status_code == 200
    assert rows(database_url, "SELECT twilio_status FROM sms_gateway_state") == [("delivered",)]
    assert cxone_updates(database_url, message_id) == [("DELIVERED", None)]
    assert len(rows(database_url, "SELECT * FROM twilio_receipts")) == 3  # one per status


def test_a_late_intermediate_status_does_not_move_back(client, database_url):
    sid, _ = sent_message(database_url)
    post_signed(client, "/twilio/receipts", receipt(sid, "sent"))
    post_signed(client, "/twilio/receipts", receipt(sid, "queued"))
    assert rows(database_url, "SELECT twilio_status FROM sms_gateway_state") == [("sent",)]
    assert rows(database_url, "SELECT status FROM twilio_messages") == [("sent",)]


@pytest.mark.parametrize(("status", "code", "cxone"), [
    ("undelivered", "30003", ("UNDELIVERABLE", "30003")),
    ("failed", "30007", ("FAILED", "30007")),
    ("canceled", None, ("FAILED", "canceled")),
])
def test_final_failures_map_to_cxone_with_the_code(client, database_url, status, code, cxone):
    sid, message_id = sent_message(database_url)
    post_signed(client, "/twilio/receipts", receipt(sid, status, code))
    assert cxone_updates(database_url, message_id) == [cxone]


def test_21610_in_a_callback_records_an_opt_out(client, database_url):
    sid, message_id = sent_message(database_url)
    post_signed(client, "/twilio/receipts", receipt(sid, "failed", "21610"))
    assert rows(database_url, "SELECT status, source FROM consent WHERE phone_number = %s",
                CUSTOMER) == [("opted_out", "twilio_21610")]
    assert cxone_updates(database_url, message_id) == [("FAILED", "21610")]


def test_30008_is_redispatched_from_another_sender_not_reported(client, database_url):
    sid, message_id = sent_message(database_url)
    post_signed(client, "/twilio/receipts", receipt(sid, "failed", "30008"))
    assert cxone_updates(database_url, message_id) == []
    [(state, attempts, payload, delay)] = rows(
        database_url, "SELECT state, attempts, payload, EXTRACT(EPOCH FROM run_at - now()) "
                      "FROM outbox WHERE dedupe_key = %s", message_id)
    assert state == "queued" and attempts == 1
    assert payload["dispatch"] == 2 and payload["sender"] == "+18005550101"
    assert 25 < delay < 45  # RETRY_30008_DELAY_S=30 plus jitter
    events = [r[0] for r in rows(database_url, "SELECT event FROM audit_log")]
    assert "send.redispatch_scheduled" in events


def test_30008_after_the_attempt_cap_is_final(client, database_url):
    sid, message_id = sent_message(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE outbox SET attempts = 4 WHERE dedupe_key = %s", (message_id,))
    post_signed(client, "/twilio/receipts", receipt(sid, "failed", "30008"))
    assert cxone_updates(database_url, message_id) == [("FAILED", "30008")]


def test_receipt_for_an_unknown_sid_is_kept_and_answered_200(client, database_url):
    sid = new_sid()
    assert post_signed(client, "/twilio/receipts", receipt(sid, "delivered")).status_code == 200
    assert rows(database_url, "SELECT message_status, applied_at FROM twilio_receipts") == \
        [("delivered", None)]


@pytest.mark.parametrize("params", [
    {"MessageStatus": "delivered"},
    {"MessageSid": "SMnothex", "MessageStatus": "delivered"},
    {"MessageSid": "SM" + "a" * 32, "MessageStatus": "exploded"},
])
def test_malformed_receipts_get_400_with_a_reason(client, params):
    response = post_signed(client, "/twilio/receipts", params)
    assert response.status_code == 400
    assert response.get_json()["message"]


# -- inbound -------------------------------------------------------------------------------

def test_inbound_answers_empty_twiml_and_queues_the_cxone_post(client, database_url):
    params = inbound("Can we move it to 11?")
    response = post_signed(client, "/twilio/inbound", params)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == \
        '<?xml version="1.0" encoding="UTF-8"?><Response />'
    [(kind, payload)] = rows(database_url, "SELECT kind, payload FROM outbox")
    assert kind == "cxone_inbound"
    assert payload["sid"] == params["MessageSid"] and payload["body"] == "Can we move it to 11?"


def test_inbound_is_deduped_on_message_sid(client, database_url):
    params = inbound("hello")
    for _ in range(3):
        assert post_signed(client, "/twilio/inbound", params).status_code == 200
    assert len(rows(database_url, "SELECT * FROM outbox")) == 1


def test_inbound_media_becomes_attachments(client, database_url):
    params = inbound("", NumMedia="2", MediaUrl0="https://api.twilio.com/m/0",
                     MediaContentType0="image/jpeg", MediaUrl1="https://api.twilio.com/m/1",
                     MediaContentType1="image/png")
    post_signed(client, "/twilio/inbound", params)
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox")
    assert payload["media"] == [
        {"url": "https://api.twilio.com/m/0", "content_type": "image/jpeg"},
        {"url": "https://api.twilio.com/m/1", "content_type": "image/png"}]


@pytest.mark.parametrize(("body", "status"), [
    ("STOP", "opted_out"), ("stop", "opted_out"), (" Stop ", "opted_out"),
    ("unsubscribe", "opted_out"), ("START", "opted_in"), ("yes", "opted_in"),
    ("STOP please", None), ("HELP", None),
])
def test_keywords_update_the_consent_ledger(client, database_url, body, status):
    post_signed(client, "/twilio/inbound", inbound(body))
    ledger = rows(database_url, "SELECT status, source FROM consent WHERE phone_number = %s",
                  CUSTOMER)
    assert ledger == ([(status, "keyword")] if status else [])
    history = rows(database_url, "SELECT status FROM consent_history")
    assert history == ([(status,)] if status else [])


def test_twilio_opt_out_type_counts_as_a_keyword(client, database_url):
    post_signed(client, "/twilio/inbound", inbound("arret", OptOutType="STOP"))
    assert rows(database_url, "SELECT status, source FROM consent") == \
        [("opted_out", "opt_out_type")]


def test_help_gets_help_reply_through_the_outbound_path(client, database_url, settings):
    params = inbound("help")
    post_signed(client, "/twilio/inbound", params)
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox WHERE kind = 'send_sms'")
    assert payload["purpose"] == "help" and payload["to"] == CUSTOMER
    assert payload["body"] == settings.help_reply


def test_help_already_answered_by_advanced_opt_out_is_not_answered_again(client, database_url):
    post_signed(client, "/twilio/inbound", inbound("HELP", OptOutType="HELP"))
    assert rows(database_url, "SELECT * FROM outbox WHERE kind = 'send_sms'") == []


def test_inbound_with_a_bad_number_is_400(client):
    response = post_signed(client, "/twilio/inbound", inbound("hi", From="not-a-number"))
    assert response.status_code == 400 and "From" in response.get_json()["message"]


# -- push mode -----------------------------------------------------------------------------

def test_push_enqueues_with_the_poll_dedupe_key(client, database_url):
    body = message_json()
    first, second = push(client, body), push(client, body)
    assert first.status_code == 202 and second.status_code == 202
    assert second.get_json()["duplicate"] is True
    assert rows(database_url, "SELECT dedupe_key, kind FROM outbox") == [(body["id"], "send_sms")]


@pytest.mark.parametrize("token", [None, "wrong", "push-secret-and-more"])
def test_push_without_the_token_is_401(client, database_url, token):
    assert push(client, message_json(), token=token).status_code == 401
    assert rows(database_url, "SELECT * FROM outbox") == []


@pytest.mark.parametrize(("overrides", "field"), [
    ({"to": "4155550100"}, "to"), ({"body": ""}, "body"), ({"id": None}, "id"),
    ({"conversationId": ""}, "conversationId"), ({"direction": "INBOUND"}, "direction"),
    ({"status": "DELIVERED"}, "status"),
])
def test_push_validation_names_the_bad_field(client, overrides, field):
    response = push(client, message_json(**overrides))
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_push_with_a_non_json_body_is_400(client):
    response = client.post("/cxone/outbound", data="not json", content_type="text/plain",
                           headers={"Authorization": "Bearer push-secret"})
    assert response.status_code == 400


def test_push_is_404_when_the_token_is_unset(settings, database_url):
    services = Services(settings=settings.with_overrides(cxone_webhook_token=None),
                        db=Database(database_url, max_size=2))
    client = create_app(services=services).test_client()
    assert push(client, message_json()).status_code == 404
    services.close()


# -- hardening -----------------------------------------------------------------------------

def test_oversized_bodies_get_413(client):
    big = {"Body": "x" * 100_000}
    assert client.post("/twilio/inbound", data=big).status_code == 413
    response = client.post("/cxone/outbound", data="{" + " " * 100_000 + "}",
                           content_type="application/json",
                           headers={"Authorization": "Bearer push-secret"})
    assert response.status_code == 413


def test_unknown_paths_and_methods_answer_json(client):
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong = client.get("/twilio/receipts")
    assert wrong.status_code == 405 and wrong.is_json


def test_no_body_or_full_number_in_logs(client, database_url, caplog):
    import logging

    with caplog.at_level(logging.DEBUG):
        post_signed(client, "/twilio/inbound", inbound("my secret plan"))
    from app.logs import JsonFormatter

    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "my secret plan" not in text
    assert CUSTOMER not in text
