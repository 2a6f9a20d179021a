"""Response latency of the CXone simulators' APIs: a p50 and a jitter, as a real API answers.

The law is the Twilio simulator's create latency (``sandbox.twilio_sim_state``):
a normal law around the p50, clipped at 0 and at p50 + 4x jitter, so no
request waits absurdly long. Both settings are milliseconds; 0 and 0 (the
default) answer at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

MAX_LATENCY_MS = 600_000.0
_rng = random.Random()


def draw_s(p50_ms: float, jitter_ms: float, rng: random.Random = _rng) -> float:
    """How long one request waits, in seconds."""
    if jitter_ms <= 0:
        return max(p50_ms, 0.0) / 1000
    return min(max(rng.gauss(p50_ms, jitter_ms), 0.0), p50_ms + 4 * jitter_ms) / 1000


def pause(p50_ms: float, jitter_ms: float) -> float:
    """Wait as one request would (a greenlet switch under gevent); the seconds waited."""
    seconds = draw_s(p50_ms, jitter_ms)
    if seconds > 0:
        time.sleep(seconds)
    return seconds


def from_env(environ: Mapping[str, str], prefix: str) -> tuple[float, float]:
    """``{prefix}_LATENCY_MS`` and ``{prefix}_LATENCY_JITTER_MS`` (empty = 0).

    A value that is not a number from 0 to 600000 is a ValueError naming the variable.
    """
    values = []
    for name in (f"{prefix}_LATENCY_MS", f"{prefix}_LATENCY_JITTER_MS"):
        raw = (environ.get(name) or "").strip() or "0"
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 <= value <= MAX_LATENCY_MS:  # NaN fails this too
            raise ValueError(f"{name} must be a number of milliseconds from 0 to "
                             f"{MAX_LATENCY_MS:.0f}, got {raw!r}")
        values.append(value)
    return values[0], values[1]
