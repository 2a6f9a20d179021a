"""The reconciler's branches, driven through the simulators and the worker process."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import requests

from sandbox import defaults
from tests.harness import gateway_env, run_dir, start_worker, wait_for

CUSTOMER = "+14155550100"
BUSINESS = "+18005550100"


def _env(database_url, cxone, twilio, **overrides):
    base = {"RECONCILE_SENT_AFTER_S": "1", "RECONCILE_PENDING_AFTER_S": "1",
            "TWILIO_TIMEOUT_S": "1", "JOB_LEASE_S": "4"}
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                       **{**base, **overrides})


def _rows(url, sql, *args):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def test_lost_callbacks_are_recovered_from_twilio(database_url, cxone, twilio, processes):
    # No web process and no callbacks at all: only the reconciler can learn the outcome.
    twilio.destination(CUSTOMER, outcome="delivered", callbacks="drop")
    reply = cxone.reply(CUSTOMER, "nobody will tell you I arrived")
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="DELIVERED via the reconciler")
    assert _rows(database_url, "SELECT source FROM twilio_receipts WHERE message_status = "
                               "'delivered'") == [("reconcile",)]


def test_a_message_the_poller_never_saw_is_enqueued(database_url, cxone, twilio, processes):
    missed = cxone.reply(CUSTOMER, "lost between two polls",
                         createdTime="2026-01-01T00:00:00Z")
    # Move the poller's cursor past it, as if a poll had lost it.
    token = requests.post(cxone.url + "/auth/token", data={"grant_type": "client_credentials"},
                          auth=(defaults.CXONE_CLIENT_ID, defaults.CXONE_CLIENT_SECRET),
                          timeout=5).json()["access_token"]
    page = requests.get(cxone.url + "/api/v2/open-messaging/messages",
                        params={"channel": "SMS", "direction": "OUTBOUND", "pageSize": 100},
                        headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO poll_cursors (name, cursor) VALUES ('outbound', %s)",
                     (page["cursor"],))
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(missed["id"]) == ["SENT"], timeout=30,
             message="SENT via the reconciler")
    assert _rows(database_url, "SELECT source FROM audit_log WHERE event = 'message.enqueued'") \
        == [("reconcile",)]
    assert len(twilio.messages()) == 1


def test_a_message_that_never_gets_a_receipt_ends_as_no_receipt(database_url, cxone, twilio,
                                                                 processes):
    twilio.destination(CUSTOMER, outcome="no_receipt")
    reply = cxone.reply(CUSTOMER, "into the void")
    processes.append(start_worker(_env(database_url, cxone, twilio, RECEIPT_MAX_AGE_S="3")))

    def outcome():
        rows = _rows(database_url, "SELECT outcome, twilio_status FROM sms_gateway_state")
        return rows if rows and rows[0][0] else None

    assert wait_for(outcome, timeout=30, message="an outcome") == [("no_receipt", "sent")]
    assert cxone.statuses(reply["id"]) == ["SENT"]  # CXone keeps SENT: delivery is unknown
    events = [r[0] for r in _rows(database_url, "SELECT event FROM audit_log")]
    assert "message.no_receipt" in events


def test_cxone_still_pending_after_we_sent_gets_the_truth_again(database_url, cxone, twilio,
                                                               processes):
    reply = cxone.reply(CUSTOMER, "CXone lost our update", createdTime="2026-01-01T00:00:00Z")
    processes.append(start_worker(_env(database_url, cxone, twilio,
                                       RECONCILE_PENDING_AFTER_S="3600")))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT and DELIVERED")
    processes[0].terminate()
    # CXone forgets (a network partition ate it): the message shows PENDING again.
    fresh = cxone.reply(CUSTOMER, "CXone lost our update", createdTime="2026-01-01T00:00:00Z",
                        id=reply["id"] + "-again")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE outbox SET dedupe_key = %s WHERE dedupe_key = %s",
                     (fresh["id"], reply["id"]))
        conn.execute("UPDATE sms_gateway_state SET cxone_message_id = %s", (fresh["id"],))
        conn.execute("UPDATE cxone_status_updates SET cxone_message_id = %s", (fresh["id"],))
        conn.execute("UPDATE cxone_message_status SET cxone_message_id = %s", (fresh["id"],))
    env = _env(database_url, cxone, twilio)
    result = subprocess.run([sys.executable, "-m", "app.cli", "reconcile"], env=env, cwd=run_dir(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pending_repushed=1" in result.stdout
    processes.append(start_worker(env))
    wait_for(lambda: cxone.statuses(fresh["id"]) == ["SENT", "DELIVERED"], timeout=20,
             message="the truth pushed again")
    sid = twilio.messages()[0]["sid"]
    assert cxone.message(fresh["id"])["statusUpdates"][0]["body"]["externalId"] == sid
    assert len(twilio.messages()) == 1


def test_replayed_dead_letter_that_twilio_has_is_not_sent_twice(database_url, cxone, twilio,
                                                              processes):
    # The create is accepted but the answer is lost; every lookup fails: dead letter.
    twilio.fault(target="create", kind="drop_after_accept", count=1)
    twilio.fault(target="list", kind="500", count=50)
    reply = cxone.reply(CUSTOMER, "Twilio has me, you do not know it")
    env = _env(database_url, cxone, twilio, RETRY_MAX_S="0.5")
    processes.append(start_worker(env))

    def dead():
        return _rows(database_url, "SELECT id FROM outbox WHERE state = 'dead'")

    [(job_id,)] = wait_for(dead, timeout=60, message="the dead letter")
    assert len(twilio.messages()) == 1
    twilio.delete("/_sandbox/faults")
    # Even with the in-flight record gone (e.g. expired), replay looks Twilio up first.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM idempotency_keys")
    listed = subprocess.run([sys.executable, "-m", "app.cli", "dead-letters", "list"], env=env,
                            cwd=run_dir(), capture_output=True, text=True, timeout=60)
    assert str(job_id) in listed.stdout and reply["id"] in listed.stdout
    replay = subprocess.run([sys.executable, "-m", "app.cli", "dead-letters", "replay",
                             str(job_id)], env=env, cwd=run_dir(), capture_output=True, text=True,
                            timeout=60)
    assert replay.returncode == 0, replay.stderr
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT")
    time.sleep(1)
    assert len(twilio.messages()) == 1
    assert [c["result"] for c in twilio.creates()] == ["created"]
