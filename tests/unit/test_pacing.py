"""The pacing rules (app/pacing.py), pure: keys, weights and the window rule's tolerance."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from app.jobs import SendJob
from app.pacing import WINDOWS_S, Pace, pace_for, tolerance
from tests.webapp import gateway_settings


@pytest.mark.parametrize("rate", [0.8, 1.0, 2.0, 3.0, 10.0, 30.0, 100.0, 0.25])
def test_starts_the_start_clock_allows_never_break_a_window(rate):
    """Starts as early as the start clock (GCRA with the tolerance) allows, some of them
    late by up to two spacings: no window of W seconds holds more than ⌊1 + r·W⌋."""
    rng = random.Random(rate)
    spacing, tau = 1 / rate, tolerance(rate)
    assert 0 < tau < spacing
    for _ in range(20):
        starts, start_tat = [], 0.0
        for _ in range(int(rate * 150) + 3):
            late = rng.uniform(0, 2 * spacing) if rng.random() < 0.3 else 0.0
            t = max(start_tat - tau, starts[-1] if starts else 0.0) + late
            starts.append(t)
            start_tat = max(start_tat, t) + spacing
        for w in WINDOWS_S:
            limit = math.floor(1 + rate * w + 1e-9)
            worst = max(bisect.bisect_right(starts, s + w) - i for i, s in enumerate(starts))
            assert worst <= limit, (rate, w, worst, limit)


def test_without_the_tolerance_a_late_start_would_cost_rate():
    # Why the tolerance exists: with it, a start late by less than it loses nothing.
    assert tolerance(0.8) == pytest.approx(0.125)
    assert tolerance(30.0) == pytest.approx(0.5 / 30)


def test_numbers_of_the_pool_pace_alone_others_under_the_service():
    settings = gateway_settings(SENDER_MPS="0.8", SERVICE_MPS="5")
    ours = pace_for(settings, SendJob(to="+14155550100", body="x", from_="+18005550100"))
    assert ours == Pace("+18005550100", "sender:+18005550100", 0.8)
    other = pace_for(settings, SendJob(to="+14155550100", body="x", from_="+19995550000"))
    assert other.sender is None and other.key.startswith("service:") and other.rate == 5.0


def test_a_redispatch_uses_the_sender_it_chose():
    settings = gateway_settings()
    job = SendJob(to="+14155550100", body="x", from_="+18005550100", message_id="m",
                  conversation_id="c")
    again = job.redispatched(sender="+18005550101", after_sid="SM" + "0" * 32)
    assert pace_for(settings, again).sender == "+18005550101"
    assert pace_for(settings, job.redispatched(sender=None, after_sid="x")).sender is None


def test_segments_weigh_spacings():
    pace = Pace(None, "k", 2.0)
    assert pace.weight_s(3) == 1.5 and pace.weight_s(0) == 0.5
