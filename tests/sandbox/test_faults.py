"""The shared fault rules: one shape for every simulator, the Twilio legacy shape translated."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox import defaults
from sandbox.faults import FaultRuleError, FaultSwitches, parse_rule
from sandbox.server import RunningServer, serve_in_thread
from sandbox.twilio_sim import TwilioSimConfig, create_app

TARGETS = {"create": frozenset({"create"}), "list": frozenset({"list"}),
           "any": frozenset({"create", "list"})}


@pytest.mark.parametrize(
    ("legacy", "shared"),
    [
        ({"kind": "429"}, {"status": 429, "drop": False, "after": False, "count": 1}),
        ({"kind": "503", "probability": 0.5}, {"status": 503, "count": None}),
        ({"kind": "slow", "delay_ms": 300}, {"status": None, "delay_ms": 300, "after": False}),
        ({"kind": "drop_after_accept"}, {"drop": True, "after": True, "delay_ms": 0}),
        ({"kind": "timeout", "delay_ms": 900}, {"drop": True, "after": True, "delay_ms": 900}),
    ],
)
def test_the_legacy_kinds_are_rules_of_the_shared_shape(legacy: dict[str, Any],
                                                        shared: dict[str, Any]) -> None:
    rule, was_legacy = parse_rule({"target": "create", **legacy}, TARGETS)
    assert was_legacy
    assert {name: rule.to_json()[name] for name in shared} == shared
    assert rule.kind == legacy["kind"]


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "418"},
        {"kind": "slow"},
        {"kind": "429", "status": 500},
        {"target": "create", "status": 500, "retry_after": 10**9},
        {"target": "create", "status": 500, "probability": float("nan")},
        {"target": "create", "delay_ms": True},
        [],
    ],
)
def test_unusable_rules_are_refused(spec: Any) -> None:
    with pytest.raises(FaultRuleError):
        parse_rule(spec, TARGETS)


def test_a_plan_combines_delays_and_takes_the_first_answer_per_phase() -> None:
    switches = FaultSwitches(TARGETS, rng=random.Random(1))
    switches.add({"target": "any", "delay_ms": 100})
    switches.add({"target": "create", "status": 429, "retry_after": 2, "count": 1})
    switches.add({"target": "create", "status": 500})
    switches.add({"target": "create", "drop": True, "after": True, "delay_ms": 50, "count": 1})

    first, second = switches.plan("create"), switches.plan("create")

    assert (first.delay_before_s, first.delay_after_s) == (0.1, 0.05)
    assert first.before is not None and (first.before.status, first.before.headers()) == (
        429, {"Retry-After": "2"})
    assert first.after is not None and first.after.drop
    assert second.before is not None and second.before.status == 500 and second.after is None
    assert [rule["fired"] for rule in switches.list()] == [2, 1, 1, 1]
    assert switches.plan("list").before is None


@pytest.fixture(scope="module")
def twilio() -> Iterator[RunningServer]:
    server = serve_in_thread(create_app(TwilioSimConfig(step_delay_s=0)))
    yield server
    server.stop()


def _create(url: str) -> requests.Response:
    return requests.post(
        f"{url}/2010-04-01/Accounts/{defaults.TWILIO_ACCOUNT_SID}/Messages.json",
        data={"To": "+14155550100", "From": defaults.SENDER_NUMBERS[0], "Body": "hi"},
        auth=(defaults.TWILIO_ACCOUNT_SID, defaults.TWILIO_AUTH_TOKEN), timeout=5)


def test_the_twilio_simulator_takes_the_shared_shape(twilio: RunningServer) -> None:
    control = f"{twilio.url}/_sandbox"
    requests.post(f"{control}/reset", timeout=5)
    added = requests.post(f"{control}/faults", json={"target": "create", "status": 429,
                                                     "retry_after": 3, "count": 1}, timeout=5)
    dropped = requests.post(f"{control}/faults", json={"target": "create", "drop": True,
                                                       "count": 1}, timeout=5)

    refused = _create(twilio.url)
    with pytest.raises(requests.ConnectionError):
        _create(twilio.url)
    created = _create(twilio.url)

    assert (added.status_code, dropped.status_code) == (201, 201)
    assert (refused.status_code, refused.json()["code"]) == (429, 20429)
    assert refused.headers["Retry-After"] == "3"
    assert created.status_code == 201
    creates = requests.get(f"{control}/creates", timeout=5).json()["creates"]
    assert [(c["result"], c["fault"]) for c in creates] == [
        ("fault", "429"), ("fault", "drop"), ("created", None)]
    assert len(requests.get(f"{control}/messages", timeout=5).json()["messages"]) == 1
    log = requests.get(f"{control}/requests", timeout=5).json()["items"]
    assert [item["response_status"] for item in log] == [429, None, 201]
    assert requests.delete(f"{control}/faults", timeout=5).json() == {"removed": 2}
