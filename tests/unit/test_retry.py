"""Retry policy: exponential with jitter, honours Retry-After, gives up after 5."""

from __future__ import annotations

import random

from app.errors import PermanentError, TransientError
from app.retry import RetryPolicy


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_s=2, max_s=60, max_attempts=10)
    rand = random.Random(1)
    delays = [policy.decide(TransientError("x"), n, rand) for n in range(1, 9)]
    assert all(d is not None for d in delays)
    assert 1 <= delays[0] <= 2
    assert 4 <= delays[2] <= 8
    assert all(d <= 60 for d in delays)  # type: ignore[operator]
    assert delays[-1] >= 30  # type: ignore[operator]


def test_jitter_spreads_retries() -> None:
    policy = RetryPolicy(base_s=2, max_s=60)
    samples = {round(policy.backoff(3, random.Random(seed)), 3) for seed in range(20)}
    assert len(samples) > 10


def test_retry_after_is_honoured_when_longer() -> None:
    policy = RetryPolicy(base_s=0.1, max_s=1)
    assert policy.decide(TransientError("429", retry_after=7), 1) == 7


def test_gives_up_after_max_attempts_and_on_permanent_errors() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert policy.decide(TransientError("x"), 4) is not None
    assert policy.decide(TransientError("x"), 5) is None
    assert policy.decide(PermanentError("x"), 1) is None
    assert policy.decide(ValueError("bug"), 1) is None

