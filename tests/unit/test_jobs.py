"""Typed job payloads (app/jobs.py) and the next sender of a re-dispatch."""

from __future__ import annotations

from app.jobs import InboundJob, Kind, SendJob, StatusJob
from app.receipts import next_sender


def test_payloads_round_trip():
    send = SendJob(to="+14155550100", body="hi", message_id="m1", conversation_id="c1",
                   from_="+18005550100", media_urls=("https://x/1",), channel_id="ch")
    assert SendJob.from_payload(send.payload()) == send
    assert send.payload()["from"] == "+18005550100"  # the JSON key, not from_
    inbound = InboundJob(sid="SM1", from_="+14155550100", to="+18005550100", body="x",
                         media=({"url": "u", "content_type": "image/png"},))
    assert InboundJob.from_payload(inbound.payload()) == inbound
    assert StatusJob.from_payload(StatusJob("m1").payload()) == StatusJob("m1")


def test_keys_of_older_releases_are_ignored():
    job = SendJob.from_payload({"to": "+1", "body": "b", "slot": "2026-01-01", "taken": True})
    assert job == SendJob(to="+1", body="b")


def test_dedupe_and_ordering_keys():
    reply = SendJob(to="+1", body="b", message_id="m1", conversation_id="c1")
    assert (reply.kind, reply.dedupe_key, reply.ordering_key) == (Kind.SEND, "m1", "conv:c1")
    help_ = SendJob(to="+1", body="b", purpose="help", in_reply_to="SM1")
    assert (help_.dedupe_key, help_.ordering_key) == ("help:SM1", "help:+1")
    assert StatusJob("m1").dedupe_key == "cxone_status:m1"


def test_a_redispatch_is_the_next_dispatch_from_the_chosen_sender():
    job = SendJob(to="+1", body="b", message_id="m1", conversation_id="c1", from_="+18005550100",
                  lookup_first=True)
    again = job.redispatched(sender="+18005550101", after_sid="SM1")
    assert (again.dispatch, again.wanted_sender, again.redispatch_of, again.lookup_first) == \
        (2, "+18005550101", "SM1", False)


def test_next_sender_cycles_through_the_pool():
    pool = ("+1800555010", "+1800555011", "+1800555012")
    assert next_sender(pool, "+1800555011") == "+1800555012"
    assert next_sender(pool, "+1800555012") == "+1800555010"
    assert next_sender(pool, None) == "+1800555010"
    assert next_sender((), "+1800555010") is None
