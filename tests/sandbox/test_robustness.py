"""No simulator endpoint answers 500 (or a traceback) to malformed input: always a clear 4xx.

Every route of every simulator gets bad JSON, NUL bytes, deep nesting, huge
numbers and wrong types, as a JSON body, as a form and in the query string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from sandbox import cxone_sim, defaults, dfo_sim, twilio_sim
from sandbox.server import RunningServer, serve_in_thread

DEEP = "[" * 50_000 + "]" * 50_000
HUGE_INT = "1" + "0" * 5_000
BODIES: list[bytes] = [
    b"{not json", b"\x00\x01\x02", b"\xff\xfe\xfa", DEEP.encode(), HUGE_INT.encode(),
    b'{"a": 1e999}', b"[]", b'"text"', b"null", b"123",
    b'{"to": "\\u0000", "from": "\\u0000", "body": "\\u0000", "status": "\\u0000"}',
    b'{"target": "any", "status": 1e308, "count": -1, "delay_ms": 1e999}',
    b'{"channelId": [], "customer": {}, "text": 5, "repeat": 1e10, "attachments": [1, "x"]}',
    b'{"name": "\\u0000", "size": -5, "text": 1, "content_type": "a/b\\u0000"}',
    ('{"items": [' + ",".join(["{}"] * 50) + "]}").encode(),
    ('{"id": "' + "x" * 100_000 + '"}').encode(),
]
FORMS: list[dict[str, str]] = [
    {"To": "\x00", "From": "\x00", "Body": "\x00", "MediaUrl": "http://[::1"},
    {"To": "+14155550100", "From": defaults.SENDER_NUMBERS[0], "Body": "x" * 100_000,
     "StatusCallback": "http://[bad", "ValidityPeriod": HUGE_INT, "SmartEncoded": "\x00"},
    {"grant_type": "password", "username": "\x00", "password": "\x00", "refresh_token": "\x00"},
    {"Status": "\x00", "Body": "\x00"},
]
QUERIES = [
    {"pageSize": HUGE_INT, "cursor": "\x00" * 10, "createdBefore": "\x00", "status": "x"},
    {"PageSize": HUGE_INT, "Page": "-1", "DateSent": "\x00", "DateSent<": "1e999",
     "PageToken": "PA\x00"},
    {"tenantId": "\x00" * 1000, "endpoint": "\x00", "id": "\x00", "channelId": "\x00"},
]
AUTHS = [None, "Basic !!!", "Basic " + "A" * 10_000, "Bearer " + "\x7f" * 100, "Bearer"]


def _apps() -> dict[str, Flask]:
    return {
        "cxone": cxone_sim.create_app(cxone_sim.CxoneSimConfig()),
        "twilio": twilio_sim.create_app(twilio_sim.TwilioSimConfig(step_delay_s=0)),
        "dfo": dfo_sim.create_app(dfo_sim.DfoSimConfig()),
    }


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[Flask, RunningServer]]]:
    running = {name: (app, serve_in_thread(app)) for name, app in _apps().items()}
    yield running
    for _, server in running.values():
        server.stop()


def _paths(app: Flask, ids: dict[str, str]) -> list[tuple[str, str]]:
    """Every route, its path arguments filled with ``ids`` (else a NUL), per method."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids.get(m.group(1), "%00x"), rule.rule)
        routes.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return routes


def _known_ids(simulator: str, url: str) -> dict[str, str]:
    """Ids that exist, so that bad bodies reach the checks behind the 404s."""
    ids = {"account_sid": defaults.TWILIO_ACCOUNT_SID,
           "channel_id": next(iter(defaults.DFO_CHANNELS))}
    if simulator == "cxone":
        reply = requests.post(f"{url}/_sandbox/replies", timeout=5, json={
            "from": defaults.SENDER_NUMBERS[0], "to": "+14155550100", "body": "x"}).json()
        ids |= {"conversation_id": reply["items"][0]["conversationId"],
                "message_id": reply["items"][0]["id"]}
    return ids


def _valid_auth(simulator: str, url: str) -> dict[str, str]:
    """Credentials the API accepts, so that bad bodies get past authentication."""
    if simulator == "twilio":
        return {}  # sent as HTTP Basic with the forms below
    client = (defaults.CXONE_CLIENT_ID, defaults.CXONE_CLIENT_SECRET)
    data = {"grant_type": "client_credentials"}
    if simulator == "dfo":
        data = {"grant_type": "password", "username": defaults.DFO_ACCESS_KEY_ID,
                "password": defaults.DFO_ACCESS_KEY_SECRET}
    token = requests.post(f"{url}/auth/token", auth=client, data=data, timeout=5).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _send(url: str, method: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, url, timeout=30, **kwargs)


@pytest.mark.parametrize("simulator", ["cxone", "twilio", "dfo"])
def test_no_route_answers_500_to_malformed_input(
    servers: dict[str, tuple[Flask, RunningServer]], simulator: str
) -> None:
    app, server = servers[simulator]
    auth = _valid_auth(simulator, server.url)
    twilio_basic = (defaults.TWILIO_ACCOUNT_SID, defaults.TWILIO_AUTH_TOKEN)
    basic = {"auth": twilio_basic} if simulator == "twilio" else {}
    failures = []
    for method, path in _paths(app, _known_ids(simulator, server.url)):
        url = server.url + path
        attempts: list[dict[str, Any]] = [
            *({"data": body, "headers": {"Content-Type": "application/json", **auth},
               **basic} for body in BODIES),
            *({"params": query, "headers": auth} for query in QUERIES),
            *({"data": form, "auth": twilio_basic} for form in FORMS),
            *({"params": query} for query in QUERIES),
            *({"headers": {"Authorization": value}} if value else {} for value in AUTHS),
        ]
        for attempt in attempts:
            response = _send(url, method, **attempt)
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append((method, path, response.status_code, response.text[:200],
                                 str(attempt)[:120]))
    assert failures == []


def test_oversized_bodies_are_413(servers: dict[str, tuple[Flask, RunningServer]]) -> None:
    _, server = servers["cxone"]
    response = requests.post(f"{server.url}/_sandbox/replies", data=b"x" * (33 * 1024 * 1024),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413 and response.json()["error"]


@pytest.mark.parametrize("simulator", ["cxone", "twilio", "dfo"])
def test_bad_control_json_is_a_clear_400(servers: dict[str, tuple[Flask, RunningServer]],
                                         simulator: str) -> None:
    _, server = servers[simulator]
    for body in (b"{not json", DEEP.encode(), HUGE_INT.encode()):
        response = requests.post(f"{server.url}/_sandbox/faults", data=body, timeout=10,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["message"]
