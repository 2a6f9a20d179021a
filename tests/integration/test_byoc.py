"""The BYOC integration box (CXONE_MODE=dfo) through the Flask app on a real Postgres:
tokens, the callbacks, retries, and what a bad request gets."""

from __future__ import annotations

import pytest

from app import create_app
from app.services import Services
from db.pool import Database
from sandbox import defaults
from tests.webapp import gateway_settings, rows

CHANNEL, NUMBER = next(iter(defaults.DFO_CHANNELS.items()))
CUSTOMER = "+14155559876"
THREAD = f"{NUMBER.lstrip('+')}_{CUSTOMER.lstrip('+')}"


def dfo_settings(**overrides: str):
    return gateway_settings(
        CXONE_MODE="dfo", BYOC_CLIENT_ID=defaults.BYOC_CLIENT_ID,
        BYOC_CLIENT_SECRET=defaults.BYOC_CLIENT_SECRET,
        CXONE_ACCESS_KEY_ID=defaults.DFO_ACCESS_KEY_ID,
        CXONE_ACCESS_KEY_SECRET=defaults.DFO_ACCESS_KEY_SECRET,
        CXONE_DFO_BASE_URL="http://127.0.0.1:9",
        DFO_CHANNELS=",".join(f"{c}={n}" for c, n in defaults.DFO_CHANNELS.items()),
        **overrides)


@pytest.fixture
def box(database_url):
    services = Services(settings=dfo_settings(), db=Database(database_url, max_size=4))
    yield create_app(services=services).test_client()
    services.close()


def token(box) -> str:
    answer = box.post("/byoc/1.0/token", data={
        "grant_type": "client_credentials", "client_id": defaults.BYOC_CLIENT_ID,
        "client_secret": defaults.BYOC_CLIENT_SECRET})
    assert answer.status_code == 200
    return answer.get_json()["access_token"]


def reply(text="Hi, this is Dana from Acme.", **extra):
    return {"brand": {"id": 1234, "friendlyName": "Acme"},
            "thread": {"idOnExternalPlatform": THREAD},
            "messageContent": {"type": "TEXT", "payload": {"text": text}},
            "endUserRecipients": [{"idOnExternalPlatform": CUSTOMER, "name": CUSTOMER,
                                   "isPrimary": True, "isPrivate": False}],
            "createdAtWithMilliseconds": "2026-12-01T14:03:22.481Z", **extra}


def post(box, body, *, bearer: str | None, channel=CHANNEL):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return box.post(f"/byoc/2.0/channel/{channel}/outbound", json=body, headers=headers)


# -- the token endpoint ----------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["form", "json"])
def test_tokens_from_form_or_json_bodies(box, encoding):
    fields = {"grant_type": "client_credentials", "client_id": defaults.BYOC_CLIENT_ID,
              "client_secret": defaults.BYOC_CLIENT_SECRET, "expires_in": 60}
    answer = box.post("/byoc/1.0/token", **({"data": fields} if encoding == "form"
                                            else {"json": fields}))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert len(body["access_token"]) >= 40


def test_tokens_are_stored_hashed(box, database_url):
    issued = token(box)
    [(stored,)] = rows(database_url, "SELECT token_hash FROM byoc_tokens")
    assert issued not in stored and len(stored) == 64


@pytest.mark.parametrize(("fields", "status", "error"), [
    ({"grant_type": "client_credentials", "client_id": defaults.BYOC_CLIENT_ID,
      "client_secret": "wrong"}, 401, "invalid_client"),
    ({"grant_type": "password", "client_id": "x", "client_secret": "y"}, 400,
     "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, 400, "invalid_request"),
])
def test_token_errors(box, fields, status, error):
    answer = box.post("/byoc/1.0/token", data=fields)
    assert (answer.status_code, answer.get_json()["error"]) == (status, error)


# -- the outbound callback -------------------------------------------------------------------

def test_no_or_unknown_token_is_401_with_www_authenticate_never_403(box):
    for bearer in (None, "not-a-token-we-issued"):
        answer = post(box, reply(), bearer=bearer)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_reply_is_accepted_with_the_send_job_committed(box, database_url):
    answer = post(box, reply(), bearer=token(box))
    assert answer.status_code == 200
    body = answer.get_json()
    message_id = body["message"]["idOnExternalPlatform"]
    assert body["thread"] == {"idOnExternalPlatform": THREAD}
    assert body["recipients"] == [{"idOnExternalPlatform": CUSTOMER, "isPrimary": True}]
    [(kind, payload)] = rows(database_url, "SELECT kind, payload FROM outbox")
    assert kind == "send_sms" and payload["message_id"] == message_id
    assert payload["from"] == NUMBER and payload["channel_id"] == CHANNEL
    assert payload["source"] == "callback"


def test_a_repeated_callback_gets_the_same_id_and_sends_nothing_new(box, database_url):
    bearer = token(box)
    first = post(box, reply(), bearer=bearer).get_json()["message"]["idOnExternalPlatform"]
    again = post(box, reply(), bearer=bearer).get_json()["message"]["idOnExternalPlatform"]
    other = post(box, reply("Something else"), bearer=bearer).get_json()
    assert again == first != other["message"]["idOnExternalPlatform"]
    assert len(rows(database_url, "SELECT * FROM outbox")) == 2


def test_cxones_own_message_id_recognises_a_retry(box, database_url):
    bearer = token(box)
    first = post(box, reply(messageId="cx-77"), bearer=bearer).get_json()
    again = post(box, reply(messageId="cx-77"), bearer=bearer).get_json()
    assert first["message"]["idOnExternalPlatform"] == again["message"]["idOnExternalPlatform"]
    assert len(rows(database_url, "SELECT * FROM outbox")) == 1


def test_a_repeat_after_the_window_is_a_new_reply(database_url):
    services = Services(settings=dfo_settings(DFO_DUPLICATE_WINDOW_S="1"),
                        db=Database(database_url, max_size=2))
    box = create_app(services=services).test_client()
    try:
        bearer = token(box)
        first = post(box, reply(), bearer=bearer).get_json()
        with __import__("psycopg").connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE dfo_replies SET created_at = now() - interval '2 seconds'")
        later = post(box, reply(), bearer=bearer).get_json()
        assert first["message"]["idOnExternalPlatform"] != \
            later["message"]["idOnExternalPlatform"]
    finally:
        services.close()


def test_unknown_channel_is_404_naming_the_field(box):
    answer = post(box, reply(), bearer=token(box), channel="chat_not_ours")
    assert answer.status_code == 404
    assert answer.get_json()["errors"][0]["field"] == "channelId"


@pytest.mark.parametrize(("change", "field"), [
    ({"endUserRecipients": [{"idOnExternalPlatform": "not-a-number", "isPrimary": True}]},
     "endUserRecipients"),
    ({"messageContent": {"type": "TEXT", "payload": {"text": ""}}}, "messageContent"),
    ({"thread": {}}, "thread"),
])
def test_an_invalid_body_is_400_naming_the_field(box, database_url, change, field):
    answer = post(box, reply(**change), bearer=token(box))
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == field
    assert rows(database_url, "SELECT * FROM outbox") == []


def test_recipient_falls_back_to_the_thread_and_text_to_message_content(box, database_url):
    body = reply()
    del body["endUserRecipients"]
    body["messageContent"] = {"type": "TEXT", "text": "legacy text field"}
    answer = post(box, body, bearer=token(box))
    assert answer.status_code == 200
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox")
    assert payload["to"] == CUSTOMER and payload["body"] == "legacy text field"


def test_legacy_reply_path(box, database_url):
    body = {"post": {"idOnExternalPlatform": THREAD},
            "messageContent": {"type": "TEXT", "text": "via the legacy path"},
            "recipients": [{"idOnExternalPlatform": CUSTOMER, "isPrimary": True}]}
    answer = box.post(f"/byoc/1.0/posts/{THREAD}/messages", json=body,
                      headers={"Authorization": f"Bearer {token(box)}"})
    assert answer.status_code == 200
    message_id = answer.get_json()["idOnExternalPlatform"]
    [(payload,)] = rows(database_url, "SELECT payload FROM outbox")
    assert payload["message_id"] == message_id and payload["channel_id"] == CHANNEL


def test_sender_action_is_204(box):
    answer = box.post(f"/byoc/1.0/channel/{CHANNEL}/thread/{THREAD}/sender-action",
                      json={"senderAction": "typing"},
                      headers={"Authorization": f"Bearer {token(box)}"})
    assert answer.status_code == 204


def test_the_box_is_404_in_open_messaging_mode(client):
    assert client.post("/byoc/1.0/token", data={}).status_code == 404
