"""DFO mode end to end: gunicorn + worker + the DFO and Twilio simulators over HTTP.

CXone (the DFO simulator playing the agent) calls the gateway's integration box;
the reply goes out through Twilio; delivery statuses come back as DFO status PUTs
on the id the gateway answered with; customer texts become DFO messages.
"""

from __future__ import annotations

import itertools
import time

import psycopg
import pytest
import requests

from sandbox import defaults
from tests.harness import (
    dfo_gateway_env,
    free_port,
    gateway_env,
    start_web,
    start_worker,
    wait_for,
    worst_windows,
)

CHANNEL, NUMBER = next(iter(defaults.DFO_CHANNELS.items()))
CUSTOMER = "+14155559876"


@pytest.fixture
def dfo_gateway(database_url, cxone, twilio, dfo, processes):
    """A gateway in CXONE_MODE=dfo; returns (url, env) with web and worker running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(database_url, cxone, twilio, public_base_url=url, CONSENT_MODE="opt-out",
                      **dfo_gateway_env(dfo))
    dfo.configure(gateway_url=url)
    twilio.configure(inbound_url=f"{url}/twilio/inbound")
    processes.append(start_web(env, port))
    processes.append(start_worker(env))
    return url, env


def _puts(dfo, message_id):
    return [(u["body"]["status"], u["body"].get("reason"), u["response_status"])
            for u in dfo.status_updates(message_id)]


def test_a_reply_is_accepted_sent_and_delivered_once(dfo_gateway, dfo, twilio):
    answer = dfo.agent_reply("Your parcel ships today.", customer=CUSTOMER,
                             bearer="a-token-the-gateway-never-issued")
    assert answer["status"] == 200
    # A token we do not know: the callback is refused (401), CXone fetches one, retries.
    assert [a["kind"] for a in answer["attempts"]] == ["callback", "token", "callback"]
    assert answer["attempts"][0]["status"] == 401
    message_id = answer["messageId"]
    wait_for(lambda: _puts(dfo, message_id) == [("delivered", None, 200)], timeout=30,
             message="one delivered PUT")
    [created] = twilio.messages()
    assert (created["to"], created["from"], created["body"]) == \
        (CUSTOMER, NUMBER, "Your parcel ships today.")
    time.sleep(1)
    assert len(_puts(dfo, message_id)) == 1  # never twice


def test_a_repeated_callback_sends_once(dfo_gateway, dfo, twilio):
    answer = dfo.agent_reply("Only once, please.", customer=CUSTOMER, repeat=3)
    ids = {send["messageId"] for send in answer["sends"]} | {answer["messageId"]}
    assert len(ids) == 1
    wait_for(lambda: _puts(dfo, answer["messageId"]), timeout=30, message="a status PUT")
    assert len(twilio.creates()) == 1


def test_undelivered_30003_is_failed_with_the_reason(dfo_gateway, dfo, twilio):
    twilio.destination(CUSTOMER, outcome="undelivered", error_code=30003)
    answer = dfo.agent_reply("Are you there?", customer=CUSTOMER)
    wait_for(lambda: _puts(dfo, answer["messageId"]) == [
        ("failed", "30003 Unreachable destination handset", 200)], timeout=30,
        message="one failed PUT")


def test_a_stopped_customer_gets_nothing_and_cxone_hears_opted_out(dfo_gateway, dfo, twilio):
    twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": NUMBER, "body": "STOP"})
    wait_for(lambda: [m for m in dfo.messages() if m["text"] == "STOP"], timeout=20,
             message="the STOP reaches CXone")
    answer = dfo.agent_reply("Anything else?", customer=CUSTOMER)
    wait_for(lambda: _puts(dfo, answer["messageId"]) == [("failed", "opted_out", 200)],
             timeout=20, message="failed opted_out")
    assert twilio.creates() == []


def test_customer_texts_become_dfo_messages_once(dfo_gateway, dfo, twilio):
    sent = twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": NUMBER,
                                             "body": "Where is my order?"})
    [created] = wait_for(lambda: dfo.messages(), timeout=20, message="the DFO message")
    assert created["channelId"] == CHANNEL
    assert created["threadId"] == f"{NUMBER.lstrip('+')}_{CUSTOMER.lstrip('+')}"
    assert created["idOnExternalPlatform"] == sent["sid"]
    time.sleep(1)
    assert len(dfo.messages()) == 1


def test_a_duplicate_create_409_counts_as_done(dfo_gateway, dfo, twilio, database_url):
    dfo.fault(target="create", status=409, count=1)
    twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": NUMBER, "body": "hello?"})

    def finished():
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT state FROM outbox WHERE kind = 'cxone_inbound'"
                                ).fetchall() == [("done",)]

    wait_for(finished, timeout=20, message="the inbound job done after a 409")


def test_an_expired_dfo_token_is_refreshed_mid_run(dfo_gateway, dfo, twilio):
    first = dfo.agent_reply("first", customer=CUSTOMER)
    wait_for(lambda: _puts(dfo, first["messageId"]), timeout=30, message="first PUT")
    dfo.post("/_sandbox/expire-tokens")
    second = dfo.agent_reply("second", customer="+14155559877")
    # The expired token is refused (401): a new one, the same PUT again, once accepted.
    wait_for(lambda: _puts(dfo, second["messageId"]) == [("delivered", None, 401),
                                                         ("delivered", None, 200)],
             timeout=30, message="second PUT after the refresh")


def test_senders_are_paced_in_dfo_mode(database_url, cxone, twilio, dfo, processes):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(database_url, cxone, twilio, public_base_url=url, CONSENT_MODE="opt-out",
                      SENDER_MPS="2", **dfo_gateway_env(dfo))
    dfo.configure(gateway_url=url)
    processes.append(start_web(env, port))
    for n in range(12):
        dfo.agent_reply(f"paced {n}", customer=f"+1415555{n:04d}")
    processes.append(start_worker(env))
    wait_for(lambda: len(twilio.creates()) >= 12, timeout=40, message="12 creates")
    times = sorted(c["at"] for c in twilio.creates() if c["from"] == NUMBER)
    for w, (worst, limit) in worst_windows(times, 2.0).items():
        assert worst <= limit, f"{worst} creates in {w} s (limit {limit})"


@pytest.mark.slow
def test_kill_9_after_ten_accepted_replies_loses_nothing(database_url, cxone, twilio, dfo,
                                                          processes):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(database_url, cxone, twilio, public_base_url=url, CONSENT_MODE="opt-out",
                      SENDER_MPS="0.5", **dfo_gateway_env(dfo))
    dfo.configure(gateway_url=url)
    twilio.configure(inbound_url=f"{url}/twilio/inbound")
    processes.append(start_web(env, port))
    worker = start_worker(env)
    processes.append(worker)
    ids = [dfo.agent_reply(f"reply {n}", customer=f"+1415556{n:04d}")["messageId"]
           for n in range(10)]
    assert len(set(ids)) == 10  # ten 200s, each with its id
    wait_for(lambda: twilio.creates(), timeout=20, message="the first create")
    worker.kill9()
    processes.append(start_worker(env))
    wait_for(lambda: all(_puts(dfo, i) == [("delivered", None, 200)] for i in ids),
             timeout=90, message="ten delivered PUTs")
    assert len(twilio.creates()) == 10
    bodies = sorted(m["body"] for m in twilio.messages())
    assert bodies == sorted(f"reply {n}" for n in range(10))


def test_the_add_action_connects_a_number_as_a_channel(dfo_gateway, dfo, database_url):
    url, _ = dfo_gateway
    ott = dfo.one_time_token()
    page = requests.get(ott["addUrl"], timeout=10)
    assert page.status_code == 200 and "Create channel" in page.text
    nonce = page.text.split('name="nonce" value="')[1].split('"')[0]
    done = requests.post(f"{url}/byoc/actions/add", data={
        "nonce": nonce, "number": defaults.SENDER_NUMBERS[1], "name": "Support SMS"},
        allow_redirects=False, timeout=10)
    assert done.status_code == 302 and done.headers["Location"] == ott["backUrl"]
    channels = dfo.get("/_sandbox/channels")["items"]
    added = [c for c in channels if c["source"] == "add-action"]
    assert [c["idOnExternalPlatform"] for c in added] == [defaults.SENDER_NUMBERS[1]]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT channel_id, number FROM dfo_channels").fetchall()
    assert stored == [(added[0]["id"], defaults.SENDER_NUMBERS[1])]
    # The same link again: CXone refuses the used token; nothing more is stored.
    again = requests.get(ott["addUrl"], timeout=10)
    assert again.status_code == 400 and "did not accept" in again.text
    assert list(itertools.chain(*[[1] for _ in stored])) == [1]
