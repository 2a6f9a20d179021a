"""The Open Messaging wire format (app/cxone/open_messaging.py), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.cxone import InboundPost, InvalidReply, StatusReport
from app.cxone.open_messaging import inbound_body, parse_message, put_body

MESSAGE = {"id": "msg_1", "conversationId": "conv_1", "direction": "OUTBOUND", "channel": "SMS",
           "from": "+18005551234", "to": "+14155559876", "body": "Hi", "status": "PENDING"}


def test_a_message_becomes_a_reply():
    reply = parse_message({**MESSAGE, "attachments": [{"url": "https://x.example/a.jpg"}]})
    assert (reply.message_id, reply.conversation_id, reply.to, reply.from_, reply.body) == \
        ("msg_1", "conv_1", "+14155559876", "+18005551234", "Hi")
    assert reply.media_urls == ("https://x.example/a.jpg",)


@pytest.mark.parametrize(("change", "field", "has_id"), [
    ({"id": ".."}, "id", False), ({"id": None}, "id", False),
    ({"to": "+1415\n"}, "to", True), ({"body": ""}, "body", True),
    ({"body": "x" * 16_001}, "body", True), ({"direction": "INBOUND"}, "direction", True),
    ({"attachments": [{"url": "file:///etc/passwd"}]}, "attachments", True),
    ({"conversationId": "a/b"}, "conversationId", True),
])
def test_a_bad_message_names_the_field_and_keeps_a_usable_id(change, field, has_id):
    with pytest.raises(InvalidReply) as caught:
        parse_message({**MESSAGE, **change})
    assert caught.value.field == field
    assert (caught.value.message_id == "msg_1") is has_id


def test_the_to_number_is_made_canonical():
    assert parse_message({**MESSAGE, "to": " +1 (415) 555-9876\n"}).to == "+14155559876"


def test_put_bodies_follow_the_contract():
    at = datetime(2026, 12, 1, 14, 3, 40, tzinfo=UTC)
    assert put_body(StatusReport("SENT", external_id="SM1")) == {"status": "SENT",
                                                               "externalId": "SM1"}
    assert put_body(StatusReport("DELIVERED", at=at)) == {
        "status": "DELIVERED",
        "deliveryReceipt": {"status": "DELIVERED", "timestamp": "2026-12-01T14:03:40Z"}}
    failed = put_body(StatusReport("UNDELIVERABLE", "30003", "Unreachable", at=at))
    assert failed["reason"] == {"code": "30003", "message": "Unreachable"}


def test_inbound_body_dedupes_on_the_message_sid():
    body = inbound_body(InboundPost(sid="SM9", from_="+14155559876", to="+18005551234",
                                    body="Hi", media=({"url": "https://m/1",
                                                       "content_type": "image/png"},)))
    assert body["externalId"] == "SM9" and body["allowDuplicateMessages"] is False
    assert body["attachments"] == [{"url": "https://m/1", "contentType": "image/png"}]
