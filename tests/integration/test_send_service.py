"""The branches of the send job (worker/send.py) on a real Postgres, with in-memory fakes of
Twilio and CXone (tests/fakes.py): consent, idempotency, lookups, the turn, create errors."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from app.cxone import OutboundReply
from app.errors import PermanentError, TransientError
from app.jobs import SendJob
from app.outbound import enqueue_replies
from app.services import Services
from db import outbox
from db.pool import Database
from tests.fakes import FakeCxone, FakeTwilio
from tests.webapp import BUSINESS, CUSTOMER, gateway_settings
from worker.jobs import Done, Handled, JobContext, Reschedule
from worker.send import handle_send


@pytest.fixture
def world(database_url):
    twilio, cxone = FakeTwilio(), FakeCxone()
    services = Services(settings=gateway_settings(CONSENT_MODE="opt-out", SENDER_MPS="50"),
                        db=Database(database_url, max_size=4), cxone_adapter=cxone,
                        twilio_adapter=twilio)
    yield JobContext(services=services, worker_id="test"), twilio
    services.close()


def _reply(ctx, message_id="msg_1", to=CUSTOMER):
    with ctx.db.transaction() as conn:
        enqueue_replies(conn, ctx.settings, [OutboundReply(
            message_id=message_id, conversation_id=f"conv_{to}", to=to, from_=BUSINESS,
            body="hello")], source="poll")


def _claim(ctx):
    with ctx.db.connection() as conn:
        conn.execute("UPDATE outbox SET run_at = now()")  # its slot has come
        [job] = outbox.claim(conn, worker="test", limit=1, lease_s=60)
    return job


def _rows(ctx, sql, *args):
    with ctx.db.connection() as conn:
        return [tuple(r.values()) for r in conn.execute(sql, args).fetchall()]


def test_a_reply_is_created_once_and_recorded(world):
    ctx, twilio = world
    _reply(ctx)
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)
    [created] = twilio.created
    assert _rows(ctx, "SELECT twilio_message_sid FROM sms_gateway_state") == [(created.sid,)]
    assert _rows(ctx, "SELECT status, external_id FROM cxone_status_updates") == \
        [("SENT", created.sid)]


def test_an_opted_out_number_is_refused_without_a_create(world):
    ctx, twilio = world
    with ctx.db.connection() as conn:
        conn.execute("INSERT INTO consent (phone_number, status, source) "
                     "VALUES (%s, 'opted_out', 'keyword')", (CUSTOMER,))
    _reply(ctx)
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)
    assert twilio.created == []
    assert _rows(ctx, "SELECT status, reason_code FROM cxone_status_updates") == \
        [("FAILED", "opted_out")]


def test_a_mapped_message_is_never_sent_again(world):
    ctx, twilio = world
    _reply(ctx)
    job = _claim(ctx)
    handle_send(ctx, job)
    with ctx.db.connection() as conn:  # the job runs again (its lease ran out, say)
        conn.execute("UPDATE outbox SET state = 'queued', run_at = now()")
    assert isinstance(handle_send(ctx, _claim(ctx)), Done)
    assert len(twilio.created) == 1


def test_an_unanswered_create_is_looked_up_not_resent(world):
    ctx, twilio = world
    _reply(ctx)
    twilio.fail_next.append(TransientError("timeout", ambiguous=True))
    with pytest.raises(TransientError):
        handle_send(ctx, _claim(ctx))
    # The retry first waits out the ambiguity window, then asks Twilio and adopts.
    retry = _claim(ctx)
    outcome = handle_send(ctx, retry)
    assert isinstance(outcome, Reschedule)
    later = retry.__class__(**{**retry.__dict__, "db_now": outcome.run_at + timedelta(seconds=1)})
    assert isinstance(handle_send(ctx, later), Handled)
    assert twilio.lookups == 1 and len(twilio.created) == 1
    assert _rows(ctx, "SELECT twilio_message_sid FROM sms_gateway_state") == \
        [(twilio.created[0].sid,)]


def test_a_5xx_is_looked_up_at_once(world):
    ctx, twilio = world
    _reply(ctx)
    twilio.fail_next.append(TransientError("500", ambiguous=True, status=500))
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)  # found and adopted
    assert twilio.lookups == 1 and len(twilio.created) == 1


def test_21610_on_create_fails_the_reply_and_opts_the_number_out(world):
    ctx, twilio = world
    _reply(ctx)
    twilio.fail_next.append(PermanentError("unsubscribed", code="21610", status=400))
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)
    assert _rows(ctx, "SELECT status, reason_code FROM cxone_status_updates") == \
        [("FAILED", "21610")]
    assert _rows(ctx, "SELECT status FROM consent WHERE phone_number = %s", CUSTOMER) == \
        [("opted_out",)]


def test_a_busy_sender_sends_the_job_back_to_its_turn(world):
    ctx, twilio = world
    slow = ctx.settings.with_overrides(sender_mps=0.1)  # one every 10 s
    ctx.services.settings = slow
    _reply(ctx, "msg_1", "+14155550101")
    _reply(ctx, "msg_2", "+14155550102")
    with ctx.db.connection() as conn:
        jobs = outbox.claim(conn, worker="test", limit=2, lease_s=60, lookahead_s=30)
    first, second = sorted(jobs, key=lambda j: j.due_at)
    assert isinstance(handle_send(ctx, first), Handled)
    later = second.__class__(**{**second.__dict__, "due_at": second.db_now})  # run it early
    outcome = handle_send(ctx, later)
    assert isinstance(outcome, Reschedule) and outcome.reason == "throttled"
    assert len(twilio.created) == 1


def test_a_replayed_dead_letter_asks_twilio_first(world):
    ctx, twilio = world
    _reply(ctx)
    handle_send(ctx, _claim(ctx))
    with ctx.db.connection() as conn:  # as if the SID had been lost with the mapping
        conn.execute("DELETE FROM sms_gateway_state")
        conn.execute("DELETE FROM idempotency_keys")
        conn.execute("DELETE FROM twilio_messages")
        conn.execute("UPDATE outbox SET state = 'queued', run_at = now(), payload = payload "
                     "|| '{\"lookup_first\": true}'")
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)
    assert twilio.lookups == 1 and len(twilio.created) == 1  # adopted, not sent twice


def test_help_answers_report_to_no_one(world):
    ctx, twilio = world
    job = SendJob(purpose="help", to=CUSTOMER, from_=BUSINESS, body="help text",
                  in_reply_to="SM" + "1" * 32, source="help")
    with ctx.db.connection() as conn:
        outbox.enqueue(conn, job)
    assert isinstance(handle_send(ctx, _claim(ctx)), Handled)
    assert len(twilio.created) == 1
    assert _rows(ctx, "SELECT count(*) FROM cxone_status_updates") == [(0,)]
    with psycopg.connect(ctx.db.url) as conn:
        assert conn.execute("SELECT report_to FROM twilio_messages").fetchall() == [(None,)]
