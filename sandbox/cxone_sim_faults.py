"""Fault switches of the CXone simulator: error statuses, slow answers, dropped connections.

A rule targets one endpoint group and fires on a request with its probability,
at most ``count`` times (no count: until the rules are deleted). A rule acts
before the request is handled (the default: nothing happens on the simulator's
side) or, with ``after``, once it has been handled (the change is made but the
client sees the fault: the "lost response" case).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.cxone_sim_model import ApiError, Reply, format_time

# Endpoint names as counted in /_sandbox/stats.
ENDPOINTS = ("token", "poll", "put", "conversation_get", "conversation_create", "inbound")

TARGETS: dict[str, frozenset[str]] = {
    "token": frozenset({"token"}),
    "poll": frozenset({"poll"}),
    "put": frozenset({"put"}),
    "conversations": frozenset({"conversation_get", "conversation_create"}),
    "conversation_get": frozenset({"conversation_get"}),
    "conversation_create": frozenset({"conversation_create"}),
    "inbound": frozenset({"inbound"}),
    "any": frozenset(ENDPOINTS),
}

_ERROR_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


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

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_json(self) -> dict[str, Any]:
        remaining = None if self.count is None else self.count - self.fired
        return {
            "id": self.id,
            "target": self.target,
            "status": self.status,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "delay_ms": self.delay_ms,
            "drop": self.drop,
            "after": self.after,
            "fired": self.fired,
            "remaining": remaining,
            "created_at": self.created_at,
        }

    def reply(self, endpoint: str) -> Reply:
        """The answer this rule forces (a dropped connection or an error status)."""
        if self.drop:
            return Reply(status=0, body=None, drop=True)
        assert self.status is not None
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        code = _ERROR_CODES.get(self.status, "sandbox_fault")
        if self.status == 401:
            code = "invalid_client" if endpoint == "token" else "invalid_token"
            headers.setdefault("WWW-Authenticate", f'Bearer error="{code}"')
        body = {"error": code, "message": f"injected by sandbox fault rule {self.id}"}
        return Reply(status=self.status, body=body, headers=headers)


@dataclass
class FaultPlan:
    """What the fired rules do to one request."""

    delay_before_s: float = 0.0
    before: Reply | None = None
    delay_after_s: float = 0.0
    after: Reply | None = None
    rule_ids: list[int] = field(default_factory=list)


class FaultSwitches:
    """The active rules. Not locked itself: the simulator state's lock guards it."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: Any, now: float) -> FaultRule:
        """Validate a rule from its JSON body and activate it (400 on bad input)."""
        rule = _parse_rule(spec, self._next_id)
        rule.created_at = format_time(now, millis=True)
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self) -> int:
        removed = len(self._rules)
        self._rules.clear()
        return removed

    def list(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self._rules]

    def plan(self, endpoint: str) -> FaultPlan:
        """Roll every rule that targets ``endpoint`` and combine those that fire.

        Delays add up; the first firing rule with a status (or drop) decides the
        answer for its phase.
        """
        plan = FaultPlan()
        for rule in self._rules:
            if endpoint not in TARGETS[rule.target] or rule.exhausted():
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            forces_reply = rule.status is not None or rule.drop
            if forces_reply and (plan.after if rule.after else plan.before) is not None:
                continue  # that phase is already decided; leave this rule's count alone
            rule.fired += 1
            plan.rule_ids.append(rule.id)
            if rule.after:
                plan.delay_after_s += rule.delay_ms / 1000
                if forces_reply:
                    plan.after = rule.reply(endpoint)
            else:
                plan.delay_before_s += rule.delay_ms / 1000
                if forces_reply:
                    plan.before = rule.reply(endpoint)
        return plan


def _parse_rule(spec: Any, rule_id: int) -> FaultRule:
    if not isinstance(spec, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    unknown = set(spec) - {
        "target", "status", "count", "probability", "retry_after", "delay_ms", "drop", "after",
    }
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown fields: {', '.join(sorted(unknown))}")
    target = spec.get("target")
    if target not in TARGETS:
        raise ApiError(400, "invalid_request", f"target must be one of {', '.join(TARGETS)}")
    status = _optional_int(spec, "status", 400, 599)
    count = _optional_int(spec, "count", 1, None)
    retry_after = _optional_int(spec, "retry_after", 0, None)
    delay_ms = _optional_int(spec, "delay_ms", 0, 600_000) or 0
    probability = spec.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0 <= probability <= 1
    ):
        raise ApiError(400, "invalid_request", "probability must be a number from 0 to 1")
    drop, after = spec.get("drop", False), spec.get("after", False)
    if not isinstance(drop, bool) or not isinstance(after, bool):
        raise ApiError(400, "invalid_request", "drop and after must be booleans")
    if drop and status is not None:
        raise ApiError(400, "invalid_request", "give status or drop, not both")
    if status is None and not drop and delay_ms == 0:
        raise ApiError(400, "invalid_request", "a rule needs status, drop or delay_ms")
    return FaultRule(
        id=rule_id,
        target=target,
        status=status,
        count=count,
        probability=float(probability),
        retry_after=retry_after,
        delay_ms=delay_ms,
        drop=drop,
        after=after,
    )


def _optional_int(spec: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    in_range = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )
    if not in_range:
        limit = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ApiError(400, "invalid_request", f"{name} must be an integer {limit}")
    return value
