"""The CXone simulators' API latency (p50 + jitter), and their feed staying cheap as it grows."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox import cxone_sim, defaults, dfo_sim
from sandbox.cxone_sim_state import CxoneSimState
from sandbox.server import RunningServer, serve_in_thread


@pytest.fixture(params=["cxone", "dfo"])
def sim(request: pytest.FixtureRequest) -> Iterator[tuple[str, RunningServer]]:
    app = cxone_sim.create_app() if request.param == "cxone" else dfo_sim.create_app()
    server = serve_in_thread(app)
    yield request.param, server
    server.stop()


def api_call(kind: str, url: str) -> requests.Response:
    """One request to the simulated API (not the control API); it needs no token."""
    if kind == "cxone":
        return requests.post(f"{url}/auth/token", data={"grant_type": "client_credentials"},
                             auth=(defaults.CXONE_CLIENT_ID, defaults.CXONE_CLIENT_SECRET),
                             timeout=10)
    return requests.get(f"{url}/.well-known/openid-configuration", timeout=10)


def configure(url: str, **config: Any) -> requests.Response:
    return requests.post(f"{url}/_sandbox/config", json=config, timeout=10)


def timed(fn: Any) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def logged_latencies(url: str) -> list[float]:
    items = requests.get(f"{url}/_sandbox/requests", timeout=10).json()["items"]
    return [item["latency_ms"] for item in items]


def test_api_requests_wait_the_latency_and_control_requests_do_not(sim) -> None:
    kind, server = sim
    assert timed(lambda: api_call(kind, server.url)) < 0.15  # no latency by default

    answer = configure(server.url, latency_ms=300)
    assert answer.status_code == 200 and answer.json()["latency_ms"] == 300

    assert api_call(kind, server.url).status_code == 200
    assert timed(lambda: api_call(kind, server.url)) >= 0.3
    assert timed(lambda: requests.get(f"{server.url}/_sandbox/config", timeout=10)) < 0.15
    assert logged_latencies(server.url)[-2:] == [300.0, 300.0]


def test_jitter_spreads_the_latency_around_its_p50_and_requests_wait_in_parallel(sim) -> None:
    kind, server = sim
    configure(server.url, latency_ms=80, latency_jitter_ms=30)

    with ThreadPoolExecutor(20) as pool:
        elapsed = timed(lambda: list(pool.map(lambda _: api_call(kind, server.url), range(40))))

    latencies = logged_latencies(server.url)
    assert len(latencies) == 40
    assert 60 <= statistics.median(latencies) <= 100
    assert len(set(latencies)) > 10 and 0 <= min(latencies) and max(latencies) <= 80 + 4 * 30
    assert elapsed < 2.0  # 40 requests of ~80 ms, 20 at a time: not one after the other


@pytest.mark.parametrize("bad", [-1, 600_001, "80", True, None])
def test_the_control_api_refuses_a_bad_latency(sim, bad) -> None:
    _, server = sim
    body = {"latency_ms": bad} if bad is not None else {"latency_jitter_ms": float("inf")}
    answer = requests.post(f"{server.url}/_sandbox/config", timeout=10,
                           data=json.dumps(body, allow_nan=True),
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "latency" in answer.json()["message"]


def test_the_latency_comes_from_the_environment() -> None:
    cx = cxone_sim.config_from_env({"CXONE_SIM_LATENCY_MS": "80",
                                    "CXONE_SIM_LATENCY_JITTER_MS": "30"})
    dfo = dfo_sim.config_from_env({"DFO_SIM_LATENCY_MS": "90", "DFO_SIM_LATENCY_JITTER_MS": ""})
    assert (cx.latency_ms, cx.latency_jitter_ms) == (80.0, 30.0)
    assert (dfo.latency_ms, dfo.latency_jitter_ms) == (90.0, 0.0)
    with pytest.raises(ValueError, match="CXONE_SIM_LATENCY_JITTER_MS"):
        cxone_sim.config_from_env({"CXONE_SIM_LATENCY_JITTER_MS": "fast"})
    with pytest.raises(ValueError, match="DFO_SIM_LATENCY_MS"):
        dfo_sim.config_from_env({"DFO_SIM_LATENCY_MS": "-5"})


# --- the feed stays cheap: the reconciler's PENDING query walks only what may be PENDING ---


def test_the_pending_query_finds_exactly_the_pending_messages_of_a_large_feed() -> None:
    clock = [1_700_000_000.0]
    state = CxoneSimState(cxone_sim.CxoneSimConfig(), clock=lambda: clock[0])
    created = state.add_replies({"items": [
        {"to": f"+1415{n:07d}", "from": "+18005550100", "body": f"r{n}"} for n in range(3000)]})
    stuck = {m["id"] for m in created[::97]}
    for message in created:
        if message["id"] not in stuck:
            state.update_status(message["id"], {"status": "SENT", "externalId": "SM1"})
            if int(message["body"][1:]) % 2:
                state.update_status(message["id"], {"status": "DELIVERED"})
    clock[0] += 60

    found: list[str] = []
    cursor = None
    for _ in range(100):
        page = state.poll({"status": "PENDING", "pageSize": "7", "createdBefore":
                           "2030-01-01T00:00:00Z", **({"cursor": cursor} if cursor else {})})
        found += [item["id"] for item in page["items"]]
        if len(page["items"]) < 7:
            break
        cursor = page["cursor"]

    assert found == [m["id"] for m in created if m["id"] in stuck]  # feed order, each once
    sent = state.poll({"status": "SENT", "pageSize": "100"})["items"]
    assert len(sent) == 100 and all(item["status"] == "SENT" for item in sent)


def test_a_reply_finds_the_open_conversation_of_its_numbers_among_thousands() -> None:
    state = CxoneSimState(cxone_sim.CxoneSimConfig())
    first = state.add_replies({"to": "+14155550001", "from": "+18005550100", "body": "a"})[0]
    state.add_replies({"items": [{"to": f"+1415{n:07d}", "from": "+18005550100", "body": "b"}
                                 for n in range(10, 5000)]})
    again = state.add_replies({"to": "+14155550001", "from": "+18005550100", "body": "c"})[0]
    other = state.add_replies({"to": "+14155550001", "from": "+18005550101", "body": "d"})[0]
    assert again["conversationId"] == first["conversationId"]
    assert other["conversationId"] != first["conversationId"]
    state.close_conversation(first["conversationId"])
    after = state.add_replies({"to": "+14155550001", "from": "+18005550100", "body": "e"})[0]
    assert after["conversationId"] not in (first["conversationId"], other["conversationId"])


def test_the_dfo_agent_log_keeps_only_the_last_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import dfo_sim_state
    from tests.sandbox.test_dfo_sim import CHANNEL, FakeGateway

    monkeypatch.setattr(dfo_sim_state, "AGENT_LOG_SIZE", 3)
    gateway = FakeGateway()
    gateway.reject_first = False
    gateway_server, server = serve_in_thread(gateway.app), serve_in_thread(dfo_sim.create_app())
    try:
        configure(server.url, gateway_url=gateway_server.url)
        for n in range(5):
            answer = requests.post(f"{server.url}/_sandbox/agent-replies", timeout=10, json={
                "channelId": CHANNEL, "customer": f"+1415555{n:04d}", "text": f"r{n}"})
            assert answer.json()["status"] == 200, answer.text
        log = requests.get(f"{server.url}/_sandbox/agent-replies", timeout=10).json()["items"]
        outbound = requests.get(f"{server.url}/_sandbox/outbound", timeout=10).json()["items"]
    finally:
        server.stop()
        gateway_server.stop()
    assert [item["request"]["messageContent"]["payload"]["text"] for item in log] == [
        "r2", "r3", "r4"]
    assert len(outbound) == 5  # what the soak checks is all kept
