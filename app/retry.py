"""Retry policy: a pure function of (error, attempts) → wait or give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.errors import TransientError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, at most ``max_attempts`` tries in all."""

    base_s: float = 2.0
    max_s: float = 300.0
    max_attempts: int = 5

    def backoff(self, attempts: int, rand: random.Random | None = None) -> float:
        """Delay after the ``attempts``-th failure: half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_s, self.base_s * (2 ** max(0, attempts - 1)))
        r = (rand or random).random()
        return ceiling / 2 + r * ceiling / 2

    def decide(self, error: Exception, attempts: int,
               rand: random.Random | None = None) -> float | None:
        """Seconds to wait before the next try, or None to give up (dead-letter).

        ``attempts`` counts failed tries including this one. A ``Retry-After``
        the other side sent is honoured when longer than our own backoff.
        """
        if not isinstance(error, TransientError):
            return None
        if attempts >= self.max_attempts:
            return None
        delay = self.backoff(attempts, rand)
        if error.retry_after is not None:
            delay = max(delay, float(error.retry_after))
        return delay
