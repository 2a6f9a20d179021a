"""Outbound through the worker process: CXone poll → Twilio create → CXone SENT, exactly once."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from tests.harness import gateway_env, start_worker, wait_for

CUSTOMER = "+14155550100"


def _env(database_url, cxone, twilio, **overrides):
    # No web process here: callbacks go nowhere, which is fine for these tests.
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                       **overrides)


def test_agent_reply_is_sent_once_and_marked_sent(database_url, cxone, twilio, processes):
    reply = cxone.reply(CUSTOMER, "Your appointment is confirmed.")
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20,
             message="CXone SENT")
    [created] = twilio.messages()
    assert created["to"] == CUSTOMER and created["body"] == "Your appointment is confirmed."
    put = cxone.message(reply["id"])["statusUpdates"][0]["body"]
    assert put == {"status": "SENT", "externalId": created["sid"]}
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT twilio_message_sid, direction, cxone_conversation_id "
                           "FROM sms_gateway_state").fetchone()
    assert row == (created["sid"], "OUTBOUND", reply["conversationId"])


@pytest.mark.slow
def test_many_replies_many_workers_exactly_once(database_url, cxone, twilio, processes):
    items = [{"to": f"+1415555{c:04d}", "from": "+18005550100" if c % 2 else "+18005550101",
              "body": f"reply {n} in conversation {c}"}
             for n in range(10) for c in range(20)]
    created = cxone.replies(items)
    env = _env(database_url, cxone, twilio, SENDER_MPS="200")
    for _ in range(4):
        processes.append(start_worker(env))
    wait_for(lambda: len(twilio.messages()) >= 200, timeout=60, message="200 creates")
    ids = [m["id"] for m in created]
    wait_for(lambda: all(cxone.statuses(i) == ["SENT"] for i in ids), timeout=60,
             message="every reply SENT")
    messages = twilio.messages()
    assert len(messages) == 200
    assert sorted(m["body"] for m in messages) == sorted(i["body"] for i in items)


def _at(entry):
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))


def _creates_to(twilio, number):
    return [c for c in twilio.creates() if c["to"] == number]


def test_accept_then_drop_is_looked_up_not_resent(database_url, cxone, twilio, processes):
    twilio.fault(target="create", kind="drop_after_accept", count=1)
    reply = cxone.reply(CUSTOMER, "Dropped on the way back")
    env = _env(database_url, cxone, twilio, TWILIO_TIMEOUT_S="1", JOB_LEASE_S="5")
    processes.append(start_worker(env))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="CXone SENT after the lookup")
    [message] = twilio.messages()
    assert cxone.message(reply["id"])["statusUpdates"][0]["body"]["externalId"] == message["sid"]
    assert len(_creates_to(twilio, CUSTOMER)) == 1  # looked up, never sent again
    assert '"send.lookup_found"' in processes[0].output()


@pytest.mark.parametrize("kind", ["429", "500", "503"])
def test_twilio_throttling_and_errors_are_retried_once_sent(database_url, cxone, twilio,
                                                           processes, kind):
    twilio.fault(target="create", kind=kind, count=2)
    reply = cxone.reply(CUSTOMER, f"after {kind}")
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=30, message="SENT")
    assert len(twilio.messages()) == 1
    assert len(_creates_to(twilio, CUSTOMER)) == 3  # two refused, one created


def test_cxone_update_failures_retry_the_update_alone(database_url, cxone, twilio, processes):
    cxone.fault(target="put", status=500, count=3)
    reply = cxone.reply(CUSTOMER, "the PUT fails three times")
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=30, message="SENT")
    attempts = cxone.message(reply["id"])["statusUpdates"]
    assert [a["response_status"] for a in attempts] == [500, 500, 500, 200]
    assert len(twilio.messages()) == 1


def test_poll_429_backs_off_honouring_retry_after(database_url, cxone, twilio, processes):
    cxone.fault(target="poll", status=429, retry_after=1, count=2)
    replies = [cxone.reply(f"+1415555{n:04d}", f"message {n}") for n in range(5)]
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: all(cxone.statuses(r["id"]) == ["SENT"] for r in replies), timeout=30,
             message="all SENT")
    polls = cxone.get("/_sandbox/requests", params={"endpoint": "poll"})["items"]
    limited = [p for p in polls if p["response_status"] == 429]
    assert len(limited) == 2
    after_first = polls[polls.index(limited[0]) + 1]
    gap = _at(after_first) - _at(limited[0])
    assert gap.total_seconds() >= 1.0
    assert sorted(m["body"] for m in twilio.messages()) == sorted(r["body"] for r in replies)


def test_opt_in_mode_without_consent_sends_nothing(database_url, cxone, twilio, processes):
    reply = cxone.reply(CUSTOMER, "no consent on record")
    processes.append(start_worker(_env(database_url, cxone, twilio, CONSENT_MODE="opt-in")))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["FAILED"], timeout=20, message="FAILED")
    body = cxone.message(reply["id"])["statusUpdates"][0]["body"]
    assert body["reason"]["code"] == "no_consent"
    assert twilio.creates() == []
    with psycopg.connect(database_url) as conn:
        events = [r[0] for r in conn.execute(
            "SELECT event FROM audit_log WHERE cxone_message_id = %s ORDER BY id",
            (reply["id"],))]
    assert "send.refused" in events


def test_opt_in_mode_with_consent_sends(database_url, cxone, twilio, processes):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO consent (phone_number, status, source) "
                     "VALUES (%s, 'opted_in', 'api')", (CUSTOMER,))
    reply = cxone.reply(CUSTOMER, "consent on record")
    processes.append(start_worker(_env(database_url, cxone, twilio, CONSENT_MODE="opt-in")))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20, message="SENT")


@pytest.mark.parametrize(("number", "code"), [("+15005550001", "21211"),
                                              ("+15005550009", "21614"),
                                              ("+15005550004", "21610")])
def test_permanent_twilio_errors_fail_with_the_code(database_url, cxone, twilio, processes,
                                                   number, code):
    reply = cxone.reply(number, "cannot be delivered")
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["FAILED"], timeout=20, message="FAILED")
    body = cxone.message(reply["id"])["statusUpdates"][0]["body"]
    assert body["reason"]["code"] == code
    assert len(twilio.creates()) == 1  # permanent: never retried
    with psycopg.connect(database_url) as conn:
        consent = conn.execute("SELECT status, source FROM consent WHERE phone_number = %s",
                               (number,)).fetchone()
    assert consent == (("opted_out", "twilio_21610") if code == "21610" else None)


def test_malformed_poll_items_are_failed_and_skipped(database_url, cxone, twilio, processes):
    conversation = cxone.post("/_sandbox/conversations",
                              {"customerNumber": CUSTOMER, "businessNumber": "+18005550100"})
    bad_to = cxone.post("/_sandbox/replies", {"raw": {
        "id": "msg_bad_to", "conversationId": conversation["id"], "direction": "OUTBOUND",
        "channel": "SMS", "from": "+18005550100", "to": "4155550100", "body": "hi",
        "status": "PENDING", "createdTime": "2026-01-01T00:00:00Z"}})
    empty = cxone.post("/_sandbox/replies", {"raw": {
        "id": "msg_empty", "conversationId": conversation["id"], "direction": "OUTBOUND",
        "channel": "SMS", "from": "+18005550100", "to": CUSTOMER, "body": "  ",
        "status": "PENDING", "createdTime": "2026-01-01T00:00:00Z"}})
    no_id = cxone.post("/_sandbox/replies", {"raw": {
        "conversationId": conversation["id"], "direction": "OUTBOUND", "channel": "SMS",
        "to": CUSTOMER, "body": "no id", "status": "PENDING"}})
    good = cxone.reply(CUSTOMER, "the good one")
    assert bad_to and empty and no_id
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(good["id"]) == ["SENT"], timeout=20, message="good SENT")
    wait_for(lambda: cxone.statuses("msg_bad_to") == ["FAILED"], timeout=10, message="bad FAILED")
    assert cxone.statuses("msg_empty") == ["FAILED"]
    reason = cxone.message("msg_bad_to")["statusUpdates"][0]["body"]["reason"]
    assert reason["code"] == "invalid_message" and "to" in reason["message"]
    assert [m["body"] for m in twilio.messages()] == ["the good one"]


def test_transient_failures_end_in_the_dead_letter_state(database_url, cxone, twilio,
                                                         processes):
    twilio.fault(target="create", kind="429", count=10)
    reply = cxone.reply(CUSTOMER, "never gets through")
    processes.append(start_worker(_env(database_url, cxone, twilio, RETRY_MAX_S="0.5")))

    def dead():
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT attempts, last_error FROM outbox WHERE state = 'dead' "
                                "AND dedupe_key = %s", (reply["id"],)).fetchone()

    attempts, last_error = wait_for(dead, timeout=30, message="dead letter")
    assert attempts == 5 and "20429" in last_error
    assert len(_creates_to(twilio, CUSTOMER)) == 5
    assert cxone.statuses(reply["id"]) == []


def test_adopting_a_message_twilio_already_delivered_reports_delivered(database_url, cxone,
                                                                       twilio, processes):
    # The answer to the create is lost and no callback ever comes: by the time the
    # lookup finds the message it is delivered; CXone must hear SENT, then DELIVERED.
    twilio.fault(target="create", kind="drop_after_accept", count=1)
    twilio.destination(CUSTOMER, callbacks="drop")
    reply = cxone.reply(CUSTOMER, "delivered before we knew it")
    env = _env(database_url, cxone, twilio, TWILIO_TIMEOUT_S="1", JOB_LEASE_S="5",
               RECONCILE_SENT_AFTER_S="3600")
    processes.append(start_worker(env))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED after adoption")
    assert len(twilio.creates()) == 1
