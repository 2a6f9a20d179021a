"""The console against a running gateway: gunicorn (gevent) + the worker + both simulators.

One gateway for the module (starting one takes seconds); each test uses its own numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.browser.conftest import ADMIN_TOKEN, accept_dialogs, figure, heading, sign_in
from tests.conftest import _drop, create_database, url_for
from tests.harness import free_port, gateway_env, start_web, start_worker, wait_for

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests (fails them under CI=true)
    expect = None

DOOMED = "+14155550142"  # Twilio answers 500 to every create for it, until told otherwise
TRACED = "+14155550143"


@pytest.fixture(scope="module")
def gateway(pg_server_url: str, template_db: str, _simulators: Any) -> Iterator[dict[str, Any]]:
    cxone, twilio = _simulators
    cxone.reset()
    twilio.reset()
    twilio.configure(step_delay_s=0.02, inbound_url=None)
    name = create_database(pg_server_url, template_db)
    database_url = url_for(pg_server_url, name)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(database_url, cxone, twilio, public_base_url=url, ADMIN_TOKEN=ADMIN_TOKEN,
                      RETRY_BASE_S="0.1", RETRY_MAX_S="0.5")
    processes = [start_web(env, port, workers=1), start_worker(env)]
    try:
        yield {"url": url, "database_url": database_url, "cxone": cxone, "twilio": twilio}
    finally:
        for proc in processes:
            proc.terminate(timeout=15)
        _drop(pg_server_url, name)


def _job_state(database_url: str, dedupe_key: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT state FROM outbox WHERE dedupe_key = %s", (dedupe_key,)
                           ).fetchone()
    return None if row is None else str(row[0])


def test_replay_a_dead_letter_and_the_sms_reaches_twilio_once(page, gateway):
    cxone, twilio, database_url = gateway["cxone"], gateway["twilio"], gateway["database_url"]
    twilio.destination(DOOMED, outcome="create_error", create_error={"code": 20500,
                                                                     "status": 500})
    reply = cxone.reply(DOOMED, "This one dies first.")
    wait_for(lambda: _job_state(database_url, reply["id"]) == "dead", timeout=30,
             message="the send to become a dead letter")
    assert [m for m in twilio.messages() if m["to"] == DOOMED] == []
    twilio.destination(DOOMED, outcome="delivered")  # Twilio is well again
    sign_in(page, gateway["url"])
    page.get_by_role("link", name="Dead letters", exact=True).click()
    expect(heading(page, "Dead letters")).to_be_visible()
    row = page.locator("tr", has_text=reply["id"])
    expect(row).to_contain_text("+1415***0142")
    expect(row.locator("td").nth(5)).to_have_text("5")  # attempts
    asked = accept_dialogs(page)
    row.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_have_text("Replayed 1 dead letter.")
    assert asked and asked[0].startswith("Replay dead letter")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED after the replay")
    time.sleep(1.0)  # a second create would have happened by now
    sent = [m for m in twilio.messages() if m["to"] == DOOMED]
    assert len(sent) == 1 and sent[0]["body"] == "This one dies first."
    page.reload()
    expect(page.locator("tr", has_text=reply["id"])).to_have_count(0)


def test_trace_a_message_by_its_sid(page, gateway):
    cxone, twilio = gateway["cxone"], gateway["twilio"]
    reply = cxone.reply(TRACED, "Trace me, please.")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED")
    [message] = [m for m in twilio.messages() if m["to"] == TRACED]
    sign_in(page, gateway["url"])
    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_label("Search messages").fill(message["sid"])
    page.get_by_label("Search messages").press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text(reply["id"])
    expect(page.locator('[data-fact="to"]')).to_have_text(TRACED)  # whole on its own page
    timeline = page.locator('[data-table="timeline"]')
    for step in ("Received by poll", "Claimed by a worker", "Sent: Twilio created it",
                 "Receipt by status callback: delivered", "CXone updated: DELIVERED"):
        expect(timeline).to_contain_text(step)
    steps = page.locator('[data-table="timeline"] li').evaluate_all(
        "items => items.map(li => li.getAttribute('data-what'))")
    assert steps.index("message.enqueued") < steps.index("send.claimed") \
        < steps.index("send.created") < steps.index("receipt.callback")


def test_overview_of_the_running_gateway_matches_the_database(page, gateway):
    cxone, database_url = gateway["cxone"], gateway["database_url"]
    reply = cxone.reply("+14155550144", "Count me.")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=30,
             message="SENT then DELIVERED")
    sign_in(page, gateway["url"])
    expect(heading(page, "Overview")).to_be_visible()
    with psycopg.connect(database_url) as conn:
        sent = conn.execute("SELECT count(*) FROM audit_log WHERE event = 'send.created' "
                            "AND at > now() - interval '1 hour'").fetchone()[0]
        delivered = conn.execute("SELECT count(*) FROM twilio_receipts WHERE message_status = "
                                 "'delivered' AND received_at > now() - interval '1 hour'"
                                 ).fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
    assert sent >= 1 and delivered >= 1
    assert figure(page, "workers") == "1"
    assert figure(page, "sends.sent") == str(sent)
    assert figure(page, "receipts.delivered") == str(delivered)
    assert figure(page, "dead_letters") == str(dead)
    assert figure(page, "chart.sends") == str(sent)
