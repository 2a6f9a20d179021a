"""The soak under faults, short: the full one is tests/bench/soak.py (see docs/PERFORMANCE.md)."""

from __future__ import annotations

import pytest

from tests.bench.soak import run_soak


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["open-messaging", "dfo"])
def test_short_soak_loses_nothing_sends_nothing_twice(mode):
    report = run_soak(replies=120, texts=15, feed_seconds=30, kill_every_s=(3.0, 6.0),
                      settle_timeout_s=150, log=lambda _line: None, mode=mode)
    assert report.postgres_restarts == 1 and report.kills >= 3
    assert (report.lost, report.duplicated, report.wrong_final_status) == (0, 0, 0), \
        report.examples
    assert (report.texts_lost, report.texts_duplicated) == (0, 0), report.examples
