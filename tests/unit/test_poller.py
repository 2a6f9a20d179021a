"""The poller's cadence: at once, soon, or after POLL_INTERVAL_S."""

from __future__ import annotations

from worker.poller import next_poll_in


def test_poll_cadence() -> None:
    assert next_poll_in(50, 50, 2.0) == 0.0  # full page: at once
    assert next_poll_in(3, 50, 2.0) == 0.25  # replies flowing: soon
    assert next_poll_in(0, 50, 2.0) == 2.0  # nothing: POLL_INTERVAL_S
    assert next_poll_in(3, 50, 0.1) == 0.1  # never slower than the interval
