"""CXone's published limits, as the DFO simulator counts them.

- Updates of one contact (inbound posts and status updates of one thread):
  burst 250, refill 17 per minute.
- Stored inbound messages of the tenant: 360,000 per hour.

Requests over a limit are always counted (``exceeded``), so a test can assert
the gateway never went over; they are refused with 429 and ``Retry-After`` only
when the limits are enforced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class TokenBucket:
    """A bucket of ``burst`` tokens refilled at ``refill_per_s``; counts what exceeded it."""

    burst: float
    refill_per_s: float
    tokens: float
    updated: float
    requests: int = 0
    exceeded: int = 0
    lowest: float = math.inf

    def take(self, now: float) -> float:
        """Take one token; returns 0 when there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now
        self.requests += 1
        if self.tokens >= 1:
            self.tokens -= 1
            self.lowest = min(self.lowest, self.tokens)
            return 0.0
        self.exceeded += 1
        if self.refill_per_s <= 0:
            return 3600.0
        return (1 - self.tokens) / self.refill_per_s

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "exceeded": self.exceeded,
                "tokens_left": round(self.tokens, 3),
                "lowest_tokens_left": None if self.lowest == math.inf else round(self.lowest, 3)}


class Limits:
    """The per-contact buckets (one per thread) and the tenant's store bucket. Not locked."""

    def __init__(self, contact_burst: int, contact_refill_per_min: float,
                 tenant_per_hour: int, now: float) -> None:
        self.contact_burst = contact_burst
        self.contact_refill_per_min = contact_refill_per_min
        self.tenant_per_hour = tenant_per_hour
        self.threads: dict[str, TokenBucket] = {}
        self.tenant = TokenBucket(tenant_per_hour, tenant_per_hour / 3600, tenant_per_hour, now)

    def take(self, thread_id: str, now: float, *, store: bool) -> tuple[str, float] | None:
        """Count one update of ``thread_id`` (and one stored message when ``store``).

        Returns None within the limits, else which limit ("contact" or "tenant")
        and the seconds to wait.
        """
        bucket = self.threads.get(thread_id)
        if bucket is None:
            bucket = TokenBucket(self.contact_burst, self.contact_refill_per_min / 60,
                                 self.contact_burst, now)
            self.threads[thread_id] = bucket
        contact_wait = bucket.take(now)
        tenant_wait = self.tenant.take(now) if store else 0.0
        if contact_wait:
            return "contact", contact_wait
        return ("tenant", tenant_wait) if tenant_wait else None

    def to_json(self, enforced: bool) -> dict[str, Any]:
        threads = {thread: bucket.to_json() for thread, bucket in self.threads.items()}
        return {
            "enforced": enforced,
            "contact": {"burst": self.contact_burst,
                        "refill_per_min": self.contact_refill_per_min},
            "tenant": {"per_hour": self.tenant_per_hour, **self.tenant.to_json()},
            "threads": threads,
            "exceeded": sum(b["exceeded"] for b in threads.values()) + self.tenant.exceeded,
        }
