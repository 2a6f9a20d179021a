"""Pacing: per-sender spacing holds across worker processes, and the limit is used."""

from __future__ import annotations

import itertools

from tests.harness import gateway_env, start_worker, wait_for, worst_windows

SENDER = "+18005550100"


def test_two_workers_one_sender_at_two_per_second(database_url, cxone, twilio, processes):
    count = 30
    cxone.replies([{"to": f"+1415555{n:04d}", "from": SENDER, "body": f"paced {n}"}
                   for n in range(count)])
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      SENDER_MPS="2", SENDER_NUMBERS=SENDER)
    processes.extend([start_worker(env), start_worker(env)])
    wait_for(lambda: len(twilio.creates()) >= count, timeout=60, message=f"{count} creates")
    times = sorted(c["at"] for c in twilio.creates() if c["from"] == SENDER)
    assert len(times) == count
    # Measured where Twilio measures it, on arrivals: no window of W seconds holds more
    # than ⌊1 + 2·W⌋ creates, and the rate is used.
    for w, (worst, limit) in worst_windows(times, 2.0).items():
        assert worst <= limit, f"{worst} creates in {w} s (limit {limit})"
    rate = (count - 1) / (times[-1] - times[0])
    assert rate >= 0.95 * 2, f"achieved {rate:.3f} msg/s"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"pacing: min gap {min(gaps):.4f}s, mean gap {sum(gaps) / len(gaps):.4f}s, "
          f"rate {rate:.3f}/s")


def test_service_key_paces_messages_twilio_routes(database_url, cxone, twilio, processes):
    count = 12
    # `from` not in SENDER_NUMBERS: Twilio picks the sender; paced under the service key.
    cxone.replies([{"to": f"+1415555{n:04d}", "from": "+18885550199", "body": f"svc {n}"}
                   for n in range(count)])
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      SENDER_MPS="1", SERVICE_MPS="4", SENDER_NUMBERS=SENDER)
    processes.append(start_worker(env))
    wait_for(lambda: len(twilio.creates()) >= count, timeout=30, message=f"{count} creates")
    creates = twilio.creates()
    assert all(c["from"] in (None, "") for c in creates)  # no From: the service picks
    times = sorted(c["at"] for c in creates)
    for w, (worst, limit) in worst_windows(times, 4.0).items():
        assert worst <= limit, f"{worst} creates in {w} s (limit {limit})"
