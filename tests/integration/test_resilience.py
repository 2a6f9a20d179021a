"""Crashes, restarts, shutdown and failover: nothing lost, nothing sent twice."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.harness import gateway_env, start_worker, wait_for

CUSTOMER = "+14155550100"


def _env(database_url, cxone, twilio, **overrides):
    defaults = {"TWILIO_TIMEOUT_S": "1", "JOB_LEASE_S": "4", "LOG_LEVEL": "DEBUG"}
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                       **{**defaults, **overrides})


def _events(proc, name):
    out = []
    for line in proc.output().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("event") == name:
            out.append(data)
    return out


def test_kill_9_during_a_send_then_restart_sends_once(database_url, cxone, twilio, processes):
    twilio.fault(target="create", kind="slow", delay_ms=2500, count=1)
    reply = cxone.reply(CUSTOMER, "in flight when the worker dies")
    env = _env(database_url, cxone, twilio)
    first = start_worker(env)
    processes.append(first)
    wait_for(lambda: _events(first, "send.starting"), timeout=20, message="the create")
    time.sleep(0.3)
    first.kill9()  # the create is answered after the worker is gone
    time.sleep(3)
    assert len(twilio.messages()) == 1
    processes.append(start_worker(env))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=40,
             message="SENT")
    assert len(twilio.creates()) == 1
    sid = twilio.messages()[0]["sid"]
    assert cxone.message(reply["id"])["statusUpdates"][0]["body"]["externalId"] == sid


@pytest.mark.slow
def test_kill_9_mid_run_with_backlog_still_exactly_once(database_url, cxone, twilio, processes):
    items = [{"to": f"+1415555{n % 40:04d}", "from": "+18005550100" if n % 2 else "+18005550101",
              "body": f"backlog {n}"} for n in range(120)]
    created = cxone.replies(items)
    env = _env(database_url, cxone, twilio, SENDER_MPS="15")
    victim, other = start_worker(env), start_worker(env)
    processes.extend([victim, other])
    wait_for(lambda: len(twilio.creates()) >= 30, timeout=30, message="30 creates")
    victim.kill9()
    processes.append(start_worker(env))
    wait_for(lambda: len(twilio.messages()) >= 120, timeout=90, message="120 messages")
    ids = [m["id"] for m in created]
    # SENT once each; a message adopted after the kill may already show DELIVERED too.
    def unsettled():
        # A worker killed between a status PUT and its record repeats that PUT (PUT is
        # idempotent): CXone may see SENT twice in a row, never anything out of order.
        shown = {i: [s for s, _ in itertools.groupby(cxone.statuses(i))] for i in ids}
        return [(i, s) for i, s in shown.items() if s not in (["SENT"], ["SENT", "DELIVERED"])]

    deadline = time.monotonic() + 60
    while (left := unsettled()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], "not SENT (then DELIVERED), in order"
    time.sleep(1)
    bodies = [m["body"] for m in twilio.messages()]
    assert len(bodies) == 120 and len(set(bodies)) == 120


def test_sigterm_finishes_the_send_in_hand_and_exits_0(database_url, cxone, twilio, processes):
    twilio.fault(target="create", kind="slow", delay_ms=1500, count=1)
    reply = cxone.reply(CUSTOMER, "finish me before you go")
    worker = start_worker(_env(database_url, cxone, twilio, TWILIO_TIMEOUT_S="5",
                               JOB_LEASE_S="20"))
    processes.append(worker)
    wait_for(lambda: _events(worker, "send.starting"), timeout=20, message="the create")
    time.sleep(0.3)
    assert not twilio.creates()  # still in flight
    started = time.monotonic()
    assert worker.terminate(timeout=30) == 0
    assert time.monotonic() - started < 20
    assert _events(worker, "worker.stopped")[0]["clean"] is True
    # The SID was stored before exit: a new worker only pushes the queued CXone update.
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20, message="SENT")
    assert len(twilio.creates()) == 1


def test_second_sigterm_exits_at_once(database_url, cxone, twilio, processes):
    twilio.fault(target="create", kind="slow", delay_ms=8000, count=1)
    cxone.reply(CUSTOMER, "slow")
    worker = start_worker(_env(database_url, cxone, twilio, TWILIO_TIMEOUT_S="10",
                               JOB_LEASE_S="30"))
    processes.append(worker)
    wait_for(lambda: _events(worker, "send.starting"), timeout=20, message="the create")
    import signal

    worker.popen.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    worker.popen.wait(timeout=5)
    assert time.monotonic() - started < 3
    assert worker.popen.returncode != 0


def test_another_worker_takes_over_polling_when_the_poller_dies(database_url, cxone, twilio,
                                                                processes):
    env = _env(database_url, cxone, twilio)
    a = start_worker(env, name="a")
    processes.append(a)
    wait_for(lambda: _events(a, "leader.acquired"), timeout=20, message="a leads")
    b = start_worker(env, name="b")
    processes.append(b)
    time.sleep(1)
    assert not _events(b, "leader.acquired")  # one poller at a time
    a.kill9()
    wait_for(lambda: _events(b, "leader.acquired"), timeout=10, message="b takes over")
    reply = cxone.reply(CUSTOMER, "after the failover")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20, message="SENT")


def test_expired_cxone_token_is_refreshed_once(database_url, cxone, twilio, processes):
    processes.append(start_worker(_env(database_url, cxone, twilio)))
    first = cxone.reply(CUSTOMER, "first")
    wait_for(lambda: cxone.statuses(first["id"]) == ["SENT"], timeout=20, message="first SENT")
    tokens_before = cxone.get("/_sandbox/stats")["token"]
    cxone.post("/_sandbox/expire-tokens")
    second = cxone.reply(CUSTOMER, "second")
    wait_for(lambda: cxone.statuses(second["id"]) == ["SENT"], timeout=20, message="second SENT")
    assert cxone.get("/_sandbox/stats")["token"] == tokens_before + 1


def test_wrong_cxone_credentials_give_one_clear_error_and_no_crash(database_url, cxone, twilio,
                                                                   processes):
    worker = start_worker(_env(database_url, cxone, twilio, CXONE_CLIENT_SECRET="wrong"))
    processes.append(worker)
    wait_for(lambda: _events(worker, "poll.credentials_rejected"), timeout=20,
             message="the credentials error")
    time.sleep(2)
    assert worker.alive()
    errors = _events(worker, "poll.credentials_rejected")
    assert len(errors) == 1
    assert "CXONE_CLIENT_SECRET" in errors[0]["error"]
    assert "wrong" not in worker.output()  # the secret itself is never logged
    assert cxone.get("/_sandbox/stats")["token"] == 1  # a slow retry, not a loop
