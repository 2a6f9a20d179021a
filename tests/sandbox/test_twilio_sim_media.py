"""Twilio simulator: create latency, Smart Encoding and segments, outbound and inbound media."""

from __future__ import annotations

import base64
import hashlib
import re
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask, Response, request

from sandbox import defaults
from sandbox.server import RunningServer, serve_in_thread
from sandbox.twilio_sim import TwilioSimConfig, config_from_env, create_app

SID, TOKEN = defaults.TWILIO_ACCOUNT_SID, defaults.TWILIO_AUTH_TOKEN
SENDER = defaults.SENDER_NUMBERS[0]
PICTURE = bytes(range(256)) * 40
MEDIA_URL = re.compile(rf"http://127\.0\.0\.1:\d+/2010-04-01/Accounts/{SID}/Messages/"
                       r"MM[0-9a-f]{32}/Media/ME[0-9a-f]{32}")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningServer]:
    server = serve_in_thread(create_app(TwilioSimConfig(step_delay_s=0)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[RunningServer, list[dict[str, Any]]]]:
    """A web server with a picture, a redirect and a webhook receiver."""
    hooks: list[dict[str, Any]] = []
    app = Flask("site")
    app.add_url_rule("/pic.jpg", "pic", lambda: Response(PICTURE, mimetype="image/jpeg"))
    app.add_url_rule("/moved.jpg", "moved",
                     lambda: Response(status=302, headers={"Location": "/pic.jpg"}))

    def hook() -> Response:
        hooks.append(request.form.to_dict())
        return Response("<Response/>", mimetype="text/xml")

    app.add_url_rule("/hook", "hook", hook, methods=["POST"])
    server = serve_in_thread(app)
    yield server, hooks
    server.stop()


@pytest.fixture(autouse=True)
def clean(sim: RunningServer) -> None:
    requests.post(f"{sim.url}/_sandbox/reset", timeout=5).raise_for_status()


def create(sim: RunningServer, **form: Any) -> requests.Response:
    data = {"To": "+14155550142", "From": SENDER, "Body": "hi", **form}
    return requests.post(f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json", data=data,
                         auth=(SID, TOKEN), timeout=10)


def control(sim: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{sim.url}/_sandbox{path}", timeout=10, **kwargs)
    assert response.ok, response.text
    return response.json()


# --- latency ------------------------------------------------------------------------------


def test_create_latency_is_added_after_the_arrival_the_log_keeps(sim: RunningServer) -> None:
    control(sim, "post", "/config", json={"create_latency_ms": 300})

    sent_at = time.time()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: create(sim), range(3)))
    answered_at = time.time()

    assert [a.status_code for a in answers] == [201] * 3
    assert answered_at - sent_at >= 0.3
    arrivals = [c["at"] for c in control(sim, "get", "/creates")["creates"]]
    assert max(arrivals) - sent_at < 0.2  # all arrived together, before the latency
    assert all(c["latency_ms"] == 300 for c in control(sim, "get", "/creates")["creates"])


def test_jitter_spreads_latency_around_its_p50(sim: RunningServer) -> None:
    control(sim, "post", "/config", json={"create_latency_ms": 150, "latency_jitter_ms": 40})
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(lambda _: create(sim), range(40)))

    latencies = [c["latency_ms"] for c in control(sim, "get", "/creates")["creates"]]
    assert 120 <= statistics.median(latencies) <= 180
    assert len(set(latencies)) > 10 and min(latencies) >= 0


def test_latency_comes_from_the_environment() -> None:
    config = config_from_env({"TWILIO_SIM_CREATE_LATENCY_MS": "150",
                              "TWILIO_SIM_LATENCY_JITTER_MS": "30",
                              "PUBLIC_BASE_URL": "http://gw.test:8000"})
    assert (config.create_latency_ms, config.latency_jitter_ms) == (150.0, 30.0)
    assert "gw.test" in config.media_fetch_hosts


# --- Smart Encoding and segments ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "smart", "sent", "segments"),
    [
        ("\u201cHi\u201d \u2014 it\u2019s ready\u2026", "true", '"Hi" - it\'s ready...', "1"),
        ("\u201cHi\u201d \u2014 it\u2019s ready\u2026", None,
         "\u201cHi\u201d \u2014 it\u2019s ready\u2026", "1"),
        ("\u2019" + "a" * 150, "true", "'" + "a" * 150, "1"),
        ("\u2019" + "a" * 150, "false", "\u2019" + "a" * 150, "3"),  # UCS-2: 67 per part
        ("a\u00a0b\uff21\u00bd", "true", "a bA1/2", "1"),
        ("\U0001f44d \u201cok\u201d" + "a" * 60, "true", '\U0001f44d "ok"' + "a" * 60, "1"),
        ("\U0001f44d \u201cok\u201d" + "a" * 70, "true", '\U0001f44d "ok"' + "a" * 70, "2"),
        ("{" * 80, None, "{" * 80, "1"),  # GSM-7 extension: two septets each
        ("{" * 81, None, "{" * 81, "2"),
    ],
)
def test_smart_encoding_replaces_then_segments_count(sim: RunningServer, body: str,
                                                     smart: str | None, sent: str,
                                                     segments: str) -> None:
    form = {"Body": body} if smart is None else {"Body": body, "SmartEncoded": smart}
    created = create(sim, **form).json()

    assert (created["body"], created["num_segments"]) == (sent, segments)
    [message] = control(sim, "get", "/messages")["messages"]
    assert (message["body"], message["requested_body"]) == (sent, body)


def test_a_body_over_1600_characters_is_21617(sim: RunningServer) -> None:
    refused = create(sim, Body="\u2026" * 534, SmartEncoded="true")  # 1,602 once encoded

    assert refused.status_code == 400
    assert refused.json() == {"code": 21617, "message": refused.json()["message"],
                              "more_info": "https://www.twilio.com/docs/errors/21617",
                              "status": 400}
    assert create(sim, Body="\u2026" * 534).status_code == 201  # 534 characters as they are


# --- media --------------------------------------------------------------------------------


def test_media_urls_are_fetched_as_twilio_would(
    sim: RunningServer, site: tuple[RunningServer, list[dict[str, Any]]]
) -> None:
    base = site[0].url
    created = requests.post(
        f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json", auth=(SID, TOKEN), timeout=10,
        data=[("To", "+14155550143"), ("From", SENDER), ("MediaUrl", f"{base}/pic.jpg"),
              ("MediaUrl", f"{base}/moved.jpg"), ("MediaUrl", f"{base}/missing.jpg")])
    assert created.status_code == 201 and created.json()["num_media"] == "3"

    def fetched() -> list[dict[str, Any]]:
        media = control(sim, "get", "/messages")["messages"][0]["media"]
        return media if not any(item.get("pending") for item in media) else []

    deadline = time.monotonic() + 5
    while not (media := fetched()) and time.monotonic() < deadline:
        time.sleep(0.02)

    picture, moved, missing = media
    assert (picture["status"], picture["content_type"], picture["size"]) == (
        200, "image/jpeg", len(PICTURE))
    assert picture["sha256"] == hashlib.sha256(PICTURE).hexdigest()
    assert (moved["status"], moved["location"]) == (302, "/pic.jpg")  # not followed
    assert missing["status"] == 404


def test_a_media_url_that_is_not_http_is_21620(sim: RunningServer) -> None:
    refused = create(sim, MediaUrl="ftp://127.0.0.1/a.jpg")
    assert (refused.status_code, refused.json()["code"]) == (400, 21620)


def test_inbound_media_is_hosted_behind_basic_auth(
    sim: RunningServer, site: tuple[RunningServer, list[dict[str, Any]]]
) -> None:
    server, hooks = site
    answer = control(sim, "post", "/inbound", json={
        "from": "+14155550144", "to": SENDER, "body": "", "url": f"{server.url}/hook",
        "media": [{"content_type": "image/png", "data_base64": base64.b64encode(PICTURE).decode()},
                  {"content_type": "text/plain", "text": "hello"}],
    })

    form = next(hook for hook in hooks if hook["MessageSid"] == answer["sid"])
    assert form["NumMedia"] == "2" and form["MediaContentType0"] == "image/png"
    assert MEDIA_URL.fullmatch(form["MediaUrl0"]) and answer["sid"] in form["MediaUrl0"]
    assert requests.get(form["MediaUrl0"], timeout=5).status_code == 401
    fetched = requests.get(form["MediaUrl0"], auth=(SID, TOKEN), timeout=5)
    assert fetched.status_code == 200 and fetched.content == PICTURE
    assert fetched.headers["Content-Type"] == "image/png"
    assert requests.get(form["MediaUrl1"], auth=(SID, TOKEN), timeout=5).text == "hello"
    assert answer["media"][0]["sha256"] == hashlib.sha256(PICTURE).hexdigest()
    other = form["MediaUrl0"].replace(answer["sid"], "MM" + "0" * 32)
    assert requests.get(other, auth=(SID, TOKEN), timeout=5).status_code == 404


def test_inbound_media_can_redirect_like_twilio(
    sim: RunningServer, site: tuple[RunningServer, list[dict[str, Any]]]
) -> None:
    server = site[0]
    control(sim, "post", "/config", json={"media_redirect": True})
    answer = control(sim, "post", "/inbound", json={
        "from": "+14155550145", "to": SENDER, "url": f"{server.url}/hook",
        "media": [{"content_type": "image/jpeg", "size": 1000}]})

    url = answer["media"][0]["url"]
    first = requests.get(url, auth=(SID, TOKEN), timeout=5, allow_redirects=False)
    followed = requests.get(url, auth=(SID, TOKEN), timeout=5)

    assert first.status_code == 307 and "/_sandbox/media/ME" in first.headers["Location"]
    assert followed.status_code == 200 and len(followed.content) == 1000


def test_fetch_threads_do_not_pile_up(sim: RunningServer) -> None:
    before = threading.active_count()
    create(sim, MediaUrl="http://unlisted.invalid/a.jpg")  # not an allowed host: skipped
    time.sleep(0.1)
    media = control(sim, "get", "/messages")["messages"][0]["media"]
    assert "skipped" in media[0] and threading.active_count() <= before + 1
