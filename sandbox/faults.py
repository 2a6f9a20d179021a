"""Fault rules shared by every simulator: error statuses, slow answers, dropped connections.

One rule shape for all simulators, set with ``POST /_sandbox/faults``::

    {"target": "put", "status": 429, "retry_after": 2, "count": 3}
    {"target": "poll", "delay_ms": 300, "probability": 0.5}
    {"target": "create", "drop": true}                 # drop before answering
    {"target": "create", "drop": true, "after": true}  # handle it, then drop

``target`` names an endpoint (or a group such as ``any``) of the simulator.
A rule fires on a matching request with its ``probability``, at most ``count``
times (no count: until the rules are cleared). It acts before the request is
handled (nothing happens on the simulator's side) or, with ``after``, once it
was handled: the change is made but the client sees the fault (a lost answer).

The Twilio simulator's older ``{"kind": "429"|"500"|"503"|"slow"|"drop_after_accept"|
"timeout", ...}`` is translated; with neither count nor probability it fires once.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Response, request

from sandbox.server import SOCKET_KEY

T = TypeVar("T")

MAX_DELAY_MS = 600_000
MAX_RETRY_AFTER_S = 86_400
MAX_RULES = 1_000
_FIELDS = frozenset(
    {"target", "status", "count", "probability", "retry_after", "delay_ms", "drop", "after",
     "kind"}
)
# The Twilio simulator's older fault kinds, as rules of the shared shape.
LEGACY_KINDS: dict[str, dict[str, Any]] = {
    "429": {"status": 429},
    "500": {"status": 500},
    "503": {"status": 503},
    "slow": {},
    "drop_after_accept": {"drop": True, "after": True},
    "timeout": {"drop": True, "after": True},
}


class FaultRuleError(ValueError):
    """A rule body that cannot be used; the message says why (answered as a 400)."""


@dataclass(frozen=True)
class FaultAction:
    """What a fired rule does to the answer: an error status or a dropped connection."""

    rule_id: int
    kind: str
    status: int | None = None
    retry_after: int | None = None
    drop: bool = False

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass
class FaultRule:
    """One switch set with ``POST /_sandbox/faults``."""

    id: int
    target: str
    status: int | None = None
    count: int | None = None
    probability: float = 1.0
    retry_after: int | None = None
    delay_ms: int = 0
    drop: bool = False
    after: bool = False
    fired: int = 0
    created_at: str = ""

    @property
    def kind(self) -> str:
        """A short name of what the rule does (the Twilio simulator's ``kind``)."""
        if self.status is not None:
            return str(self.status)
        if self.drop and self.after:
            return "timeout" if self.delay_ms else "drop_after_accept"
        return "drop" if self.drop else "slow"

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def forces_answer(self) -> bool:  # else it only delays
        return self.status is not None or self.drop

    def action(self) -> FaultAction:
        return FaultAction(self.id, self.kind, self.status, self.retry_after, self.drop)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "target": self.target, "kind": self.kind, "status": self.status,
            "count": self.count, "probability": self.probability,
            "retry_after": self.retry_after, "delay_ms": self.delay_ms, "drop": self.drop,
            "after": self.after, "fired": self.fired,
            "remaining": None if self.count is None else self.count - self.fired,
            "created_at": self.created_at,
        }


@dataclass
class FaultPlan:
    """What the fired rules do to one request."""

    delay_before_s: float = 0.0
    before: FaultAction | None = None
    delay_after_s: float = 0.0
    after: FaultAction | None = None
    rule_ids: list[int] = field(default_factory=list)


class FaultSwitches:
    """The active rules of one simulator; thread-safe.

    ``targets`` maps each accepted ``target`` to the endpoint names it hits;
    the simulator asks for a plan with one endpoint name per request.
    """

    def __init__(self, targets: Mapping[str, frozenset[str]],
                 rng: random.Random | None = None) -> None:
        self.targets = dict(targets)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: Any) -> tuple[FaultRule, bool]:
        """Validate a rule body and activate it; also says whether it was the legacy shape.

        Raises FaultRuleError on a body that cannot be used.
        """
        rule, legacy = parse_rule(spec, self.targets)
        with self._lock:
            if len(self._rules) >= MAX_RULES:
                raise FaultRuleError(f"at most {MAX_RULES} rules: clear them first")
            rule.id, self._next_id = self._next_id, self._next_id + 1
            rule.created_at = stamp()
            self._rules.append(rule)
        return rule, legacy

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        with self._lock:
            removed = len(self._rules)
            self._rules.clear()
            return removed

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def plan(self, endpoint: str) -> FaultPlan:
        """Roll every rule that targets ``endpoint`` and combine those that fire.

        Delays add up; the first firing rule with a status (or drop) decides the
        answer for its phase, and later ones for that phase are not counted.
        """
        plan = FaultPlan()
        with self._lock:
            for rule in self._rules:
                if endpoint not in self.targets[rule.target] or rule.exhausted():
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                decided = plan.after if rule.after else plan.before
                if rule.forces_answer() and decided is not None:
                    continue
                rule.fired += 1
                plan.rule_ids.append(rule.id)
                if rule.after:
                    plan.delay_after_s += rule.delay_ms / 1000
                    plan.after = rule.action() if rule.forces_answer() else plan.after
                else:
                    plan.delay_before_s += rule.delay_ms / 1000
                    plan.before = rule.action() if rule.forces_answer() else plan.before
        return plan


def run_with_faults(
    plan: FaultPlan, handle: Callable[[], T], on_fault: Callable[[FaultAction], T]
) -> tuple[T | None, T]:
    """Serve one request through ``plan``: returns (what ``handle`` answered, the answer sent).

    A before-fault answers without calling ``handle`` (the first item is None);
    an after-fault replaces what ``handle`` answered.
    """
    time.sleep(plan.delay_before_s)
    if plan.before is not None:
        return None, on_fault(plan.before)
    handled = handle()
    time.sleep(plan.delay_after_s)
    return handled, on_fault(plan.after) if plan.after is not None else handled


def drop_connection() -> Response:
    """Close the client's connection without an answer (the client sees a reset).

    Uses the raw socket that :mod:`sandbox.server` puts in the environ; a server
    without one answers 503 instead.
    """
    sock = request.environ.get(SOCKET_KEY)
    if sock is None:
        return Response('{"error": "drop_unsupported", "message": "this server cannot drop '
                        'connections"}', status=503, mimetype="application/json")
    with contextlib.suppress(OSError):  # the client may already have gone
        sock.shutdown(socket.SHUT_RDWR)
    return Response(b"", status=500)  # never reaches the client: the socket is closed


# --- parsing ----------------------------------------------------------------------------


def parse_rule(spec: Any, targets: Mapping[str, frozenset[str]]) -> tuple[FaultRule, bool]:
    """A FaultRule (id unset) from a JSON body, and whether it used the legacy ``kind``."""
    if not isinstance(spec, dict):
        raise FaultRuleError("body must be a JSON object")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise FaultRuleError(f"unknown fields: {', '.join(sorted(unknown))}")
    legacy = "kind" in spec
    if legacy:
        spec = _from_legacy(spec)
    target = spec.get("target", "any")
    if not isinstance(target, str) or target not in targets:
        raise FaultRuleError(f"target must be one of {', '.join(targets)}")
    status = _optional_int(spec, "status", 400, 599)
    delay_ms = _optional_int(spec, "delay_ms", 0, MAX_DELAY_MS) or 0
    drop, after = spec.get("drop", False), spec.get("after", False)
    if not isinstance(drop, bool) or not isinstance(after, bool):
        raise FaultRuleError("drop and after must be booleans")
    if drop and status is not None:
        raise FaultRuleError("give status or drop, not both")
    if status is None and not drop and delay_ms == 0:
        raise FaultRuleError("a rule needs status, drop or delay_ms")
    count = _optional_int(spec, "count", 1, None)
    probability = _probability(spec.get("probability", 1.0))
    if legacy and "count" not in spec and "probability" not in spec:
        count = 1  # the legacy shape's default: the next matching request only
    rule = FaultRule(
        id=0, target=target, status=status, count=count, probability=probability,
        retry_after=_optional_int(spec, "retry_after", 0, MAX_RETRY_AFTER_S),
        delay_ms=delay_ms, drop=drop, after=after,
    )
    return rule, legacy


def _from_legacy(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["kind"]
    if not isinstance(kind, str) or kind not in LEGACY_KINDS:
        raise FaultRuleError(f"kind must be one of {', '.join(LEGACY_KINDS)}")
    clashing = {"status", "drop", "after"} & set(spec)
    if clashing:
        raise FaultRuleError(f"give kind or {', '.join(sorted(clashing))}, not both")
    if kind == "slow" and not spec.get("delay_ms"):
        raise FaultRuleError("kind slow needs delay_ms")
    rest = {key: value for key, value in spec.items() if key != "kind"}
    return {**rest, **LEGACY_KINDS[kind]}


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultRuleError("probability must be a number from 0 to 1")
    return float(value)


def _optional_int(spec: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    in_range = (
        isinstance(value, int) and not isinstance(value, bool) and value >= low
        and (high is None or value <= high)
    )
    if not in_range:
        limit = f"from {low} to {high}" if high is not None else f">= {low}"
        raise FaultRuleError(f"{name} must be an integer {limit}")
    return value


def stamp() -> str:
    """Now, ISO 8601 UTC with milliseconds."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
