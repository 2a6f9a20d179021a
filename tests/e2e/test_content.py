"""Message content end to end (gunicorn + worker + both simulators): long replies in parts,
pacing by segment, Smart Encoding, and attachments both ways through our /media/ URLs."""

from __future__ import annotations

import hashlib
import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import requests

from tests.harness import free_port, gateway_env, start_web, start_worker, wait_for

CUSTOMER = "+14155550100"
BUSINESS = "+18005550100"
WORDS = "parcel delivery window tomorrow morning between nine and eleven please reply "


@pytest.fixture
def redirector():
    """A server that answers every request with a redirect to 127.0.0.1:9 (a host not
    allowed): the gateway must not follow it."""

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere.jpg")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def gateway(database_url, cxone, twilio, processes, redirector):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hosts = ",".join(f"http://{h.split('://')[1]}" for h in (cxone.url, twilio.url, redirector))
    env = gateway_env(database_url, cxone, twilio, public_base_url=url, CONSENT_MODE="opt-out",
                      MEDIA_FETCH_ALLOWED_HOSTS=hosts, MEDIA_FETCH_ALLOW_PRIVATE="true")
    twilio.configure(inbound_url=f"{url}/twilio/inbound")
    processes.append(start_web(env, port))
    processes.append(start_worker(env))
    return url


def _ordered_bodies(twilio, to):
    return [m["body"] for m in sorted((m for m in twilio.messages() if m["to"] == to),
                                      key=lambda m: m["accepted_at"])]


def test_a_long_reply_goes_in_ordered_parts_and_cxone_hears_one_delivered(gateway, cxone,
                                                                         twilio):
    body = (WORDS * 30).strip()  # about 2,300 characters, GSM-7
    assert len(body) > 2000
    reply = cxone.reply(CUSTOMER, body, from_=BUSINESS)
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "DELIVERED"], timeout=40,
             message="one SENT, one DELIVERED")
    parts = _ordered_bodies(twilio, CUSTOMER)
    assert len(parts) >= 2
    assert " ".join(parts) == body  # in order, split at spaces, nothing lost
    for message in twilio.messages():
        assert len(message["body"]) <= 1600 and int(message["num_segments"]) <= 10
    assert {m["from"] for m in twilio.messages()} == {BUSINESS}  # all from the same sender


def test_a_failed_part_fails_the_reply_once(gateway, cxone, twilio):
    twilio.destination("+14155550111", outcome="undelivered", error_code=30003)
    reply = cxone.reply("+14155550111", (WORDS * 30).strip(), from_=BUSINESS)
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT", "UNDELIVERABLE"], timeout=40,
             message="one SENT, one UNDELIVERABLE")


def test_smart_encoding_keeps_curly_quotes_in_one_segment(gateway, cxone, twilio):
    body = "We\u2019ll call you \u201ctomorrow\u201d \u2014 thanks" + " ok" * 30
    reply = cxone.reply(CUSTOMER, body, from_=BUSINESS)
    wait_for(lambda: cxone.statuses(reply["id"])[:1] == ["SENT"], timeout=30, message="SENT")
    [message] = twilio.messages()
    assert int(message["num_segments"]) == 1  # UCS-2 would have needed 2
    assert "\u2019" not in message["body"]


def test_an_outbound_attachment_goes_through_our_media_url(gateway, cxone, twilio,
                                                           database_url):
    uploaded = cxone.upload_file("label.pdf", "application/pdf", size=20_000,
                                 require_token=True, ttl_s=60)
    reply = cxone.reply(CUSTOMER, "Your label", from_=BUSINESS,
                        attachments=[{"url": uploaded["url"], "contentType": "application/pdf"}])
    wait_for(lambda: cxone.statuses(reply["id"])[:1] == ["SENT"], timeout=30, message="SENT")
    [message] = twilio.messages()
    [media_url] = message["media_urls"]
    assert media_url.startswith(gateway + "/media/")

    def fetched():
        return twilio.messages()[0]["media"][0].get("status") == 200 and \
            twilio.messages()[0]["media"][0]

    seen = wait_for(fetched, timeout=20, message="Twilio fetched the media")
    assert seen["sha256"] == uploaded["sha256"] and seen["content_type"] == "application/pdf"
    served = requests.get(media_url, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/pdf"
    assert hashlib.sha256(served.content).hexdigest() == uploaded["sha256"]
    with psycopg.connect(database_url, autocommit=True) as conn:  # MEDIA_RETENTION_S later
        conn.execute("UPDATE media SET expires_at = now() - interval '1 second'")
    assert requests.get(media_url, timeout=10).status_code == 404


def test_refused_attachments_fail_the_reply_and_send_nothing(gateway, cxone, twilio,
                                                            redirector):
    big = cxone.upload_file("big.jpg", "image/jpeg", size=6 * 1024 * 1024)
    urls = ["http://127.0.0.1:9/not-allowed.jpg", big["url"], f"{redirector}/photo.jpg"]
    replies = [cxone.reply(f"+1415555020{n}", "see attached", from_=BUSINESS,
                           attachments=[{"url": url, "contentType": "image/jpeg"}])
               for n, url in enumerate(urls)]
    for reply in replies:
        wait_for(lambda r=reply: cxone.statuses(r["id"]) == ["FAILED"], timeout=30,
                 message="FAILED")
        put = cxone.message(reply["id"])["statusUpdates"][0]["body"]
        assert put["reason"]["code"] == "media_rejected"
    assert twilio.creates() == []


def test_an_inbound_photo_reaches_cxone_as_a_url_that_returns_it(gateway, cxone, twilio):
    sent = twilio.post("/_sandbox/inbound", {"from": CUSTOMER, "to": BUSINESS,
                                             "body": "damaged parcel",
                                             "media": [{"content_type": "image/jpeg",
                                                        "size": 5000}]})
    [original] = sent["media"]
    [attachment] = wait_for(lambda: cxone.get("/_sandbox/attachments")["items"], timeout=20,
                            message="the photo in CXone")
    assert attachment["url"].startswith(gateway + "/media/")
    photo = requests.get(attachment["url"], timeout=10)
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert hashlib.sha256(photo.content).hexdigest() == original["sha256"]


def test_three_segments_hold_the_sender_for_three_spacings(database_url, cxone, twilio,
                                                           processes):
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      CONSENT_MODE="opt-out", SENDER_MPS="2", SENDER_NUMBERS=BUSINESS)
    three = ("x" * 400)  # GSM-7: 3 segments (153 + 153 + 94)
    cxone.replies([{"to": "+14155550301", "from": BUSINESS, "body": three},
                   {"to": "+14155550302", "from": BUSINESS, "body": "short"}])
    processes.append(start_worker(env))
    wait_for(lambda: len(twilio.creates()) >= 2, timeout=30, message="two creates")
    first, second = sorted(twilio.creates(), key=lambda c: c["at"])
    assert first["to"] == "+14155550301"
    [long] = [m for m in twilio.messages() if m["to"] == "+14155550301"]
    assert int(long["num_segments"]) == 3
    # 3 segments at 2/s: the sender is taken for 1.5 s (less the start clock's
    # tolerance of a quarter second, had the first start been late).
    assert second["at"] - first["at"] >= 1.5 - 0.25
    assert list(itertools.chain([first["to"]], [second["to"]])) == \
        ["+14155550301", "+14155550302"]
