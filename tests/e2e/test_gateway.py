"""End to end: gunicorn (gevent workers) + the worker + both simulators over HTTP."""

from __future__ import annotations

import psycopg
import pytest
import requests

from tests.harness import free_port, gateway_env, start_web, start_worker, wait_for

CUSTOMER = "+14155550100"
BUSINESS = "+18005550100"


@pytest.fixture
def gateway(database_url, cxone, twilio, processes):
    """A running gateway (web + worker) wired to the simulators; returns its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(database_url, cxone, twilio, public_base_url=url,
                      CXONE_WEBHOOK_TOKEN="push-secret", CONSENT_MODE="opt-out",
                      RETRY_30008_DELAY_S="0.5")
    twilio.configure(inbound_url=f"{url}/twilio/inbound")
    processes.append(start_web(env, port))
    processes.append(start_worker(env))
    return url


def test_reply_delivered_answer_threaded_and_stop_honoured(gateway, cxone, twilio):
    # An agent reply is sent, delivered, and shown DELIVERED in CXone.
    first = cxone.reply(CUSTOMER, "Your appointment is confirmed.", from_=BUSINESS)
    wait_for(lambda: cxone.statuses(first["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED")
    # The customer's answer lands in the same conversation.
    twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": BUSINESS,
                                      "body": "Can we move it to 11?"})

    def answer_posted():
        conversation = cxone.get(f"/_sandbox/conversations/{first['conversationId']}")
        return [m for m in conversation["messages"] if m["direction"] == "INBOUND"]

    [answer] = wait_for(answer_posted, timeout=20, message="the answer in CXone")
    assert answer["body"] == "Can we move it to 11?"
    # "STOP" blocks the next reply, which CXone sees FAILED.
    twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": BUSINESS, "body": "STOP"})
    wait_for(lambda: len(answer_posted()) == 2, timeout=20, message="STOP posted to CXone")
    blocked = cxone.reply(CUSTOMER, "Anything else?", conversationId=first["conversationId"])
    wait_for(lambda: cxone.statuses(blocked["id"]) == ["FAILED"], timeout=20, message="FAILED")
    assert [m["body"] for m in twilio.messages()] == ["Your appointment is confirmed."]


def test_callback_that_beats_the_commit_is_applied(gateway, cxone, twilio):
    # The create is answered 1.5 s late while the lifecycle callbacks arrive at once.
    twilio.configure(step_delay_s=0.01)
    twilio.fault(target="create", kind="slow", delay_ms=1500, count=1)
    reply = cxone.reply(CUSTOMER, "racing my own receipts", from_=BUSINESS)
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED")
    [message] = twilio.messages()
    callbacks = [c["status"] for c in message["callbacks"]]
    assert "delivered" in callbacks


def test_30008_is_sent_again_from_another_sender(gateway, cxone, twilio):
    twilio.destination(CUSTOMER, outcome="failed", error_code=30008)
    reply = cxone.reply(CUSTOMER, "carrier says no the first time", from_=BUSINESS)
    wait_for(lambda: len(twilio.messages()) >= 2, timeout=30, message="a second dispatch")
    twilio.delete("/_sandbox/destinations")
    wait_for(lambda: len(twilio.messages()) >= 3 or "DELIVERED" in cxone.statuses(reply["id"]),
             timeout=30, message="delivery")
    messages = twilio.messages()
    assert messages[0]["from"] == BUSINESS and messages[1]["from"] == "+18005550101"
    assert len({m["sid"] for m in messages}) == len(messages)


def test_push_and_poll_of_the_same_message_send_once(gateway, cxone, twilio):
    reply = cxone.reply(CUSTOMER, "pushed and polled", from_=BUSINESS)
    response = requests.post(f"{gateway}/cxone/outbound", json=reply, timeout=5,
                             headers={"Authorization": "Bearer push-secret"})
    assert response.status_code == 202
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="delivered once")
    assert len(twilio.messages()) == 1


def test_help_is_answered_with_help_reply(gateway, cxone, twilio, database_url):
    twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": BUSINESS, "body": "help"})
    [message] = wait_for(lambda: twilio.messages(), timeout=20, message="the HELP reply")
    assert message["to"] == CUSTOMER and "STOP" in message["body"]
    with psycopg.connect(database_url) as conn:
        purposes = conn.execute("SELECT purpose FROM twilio_messages").fetchall()
    assert purposes == [("help",)]
