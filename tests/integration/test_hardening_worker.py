"""Hardening findings on the worker's side, through the worker process and the simulators."""

from __future__ import annotations

import psycopg

from tests.harness import gateway_env, start_worker, wait_for

OPTED_OUT = "+14155553333"


def _env(database_url, cxone, twilio, **overrides):
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                       **overrides)


def _raw(message_id: str, to: str, conversation: str = "conv_raw", body: str = "hi") -> dict:
    return {"raw": {"id": message_id, "conversationId": conversation, "direction": "OUTBOUND",
                    "channel": "SMS", "from": "+18005550100", "to": to, "body": body,
                    "status": "PENDING", "createdTime": "2026-12-01T10:00:00Z"}}


def test_a_trailing_newline_does_not_bypass_an_opt_out(database_url, cxone, twilio, processes):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO consent (phone_number, status, source) "
                     "VALUES (%s, 'opted_out', 'keyword')", (OPTED_OUT,))
    cxone.replies([_raw("msg_newline", OPTED_OUT + "\n")])
    processes.append(start_worker(_env(database_url, cxone, twilio, CONSENT_MODE="opt-out")))
    wait_for(lambda: cxone.statuses("msg_newline") == ["FAILED"], timeout=20,
             message="CXone FAILED")
    body = cxone.message("msg_newline")["statusUpdates"][0]["body"]
    assert body["reason"]["code"] == "opted_out"
    assert twilio.creates() == []


def test_one_bad_id_never_stops_the_page(database_url, cxone, twilio, processes):
    cxone.replies([_raw("m" * 6000, "+14155550101"), _raw("..", "+14155550102")])
    good = [cxone.reply(f"+1415555{n:04d}", f"good {n}") for n in range(3)]
    worker = start_worker(_env(database_url, cxone, twilio))
    processes.append(worker)
    wait_for(lambda: all(cxone.statuses(r["id"]) == ["SENT"] for r in good), timeout=30,
             message="the good replies SENT")
    output = worker.output()
    assert "worker.role_crashed" not in output
    assert output.count('"message.rejected"') == 2
    puts = cxone.get("/_sandbox/requests", params={"endpoint": "put"})["items"]
    assert all(p["path"].rstrip("/") != "/api/v2/open-messaging/messages" for p in puts)
    assert len(twilio.messages()) == 3
