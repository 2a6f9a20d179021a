"""Pacing state in Postgres: reservations are exact across concurrent reservers."""

from __future__ import annotations

import itertools
import threading
import time

from db import throttle
from db.pool import Database


def test_concurrent_reservations_get_distinct_slots_one_spacing_apart(db: Database) -> None:
    slots = []
    lock = threading.Lock()

    def reserver() -> None:
        for _ in range(10):
            with db.connection() as conn:
                r = throttle.reserve(conn, "sender:+18005550100", 0.5, 20)
            with lock:
                slots.append(r.slot)

    threads = [threading.Thread(target=reserver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert len(slots) == 50
    assert min(gaps) >= 0.5 - 1e-6
    assert max(gaps) < 0.6  # back to back: no slot wasted


def test_first_reservation_starts_at_once_and_the_next_waits(db: Database) -> None:
    with db.connection() as conn:
        first = throttle.reserve(conn, "k", 0.3, 20)
        second = throttle.reserve(conn, "k", 0.3, 20)
    assert first.started and first.slot <= first.db_now
    assert not second.started
    assert abs((second.slot - first.slot).total_seconds() - 0.3) < 0.05


def test_take_waits_for_the_answer_then_one_spacing(db: Database) -> None:
    with db.connection() as conn:
        assert throttle.reserve(conn, "k", 0.3, 20).started
        busy = throttle.take(conn, "k", 0.3, 20)
        assert not busy.started and busy.busy  # the first create is still in flight
        throttle.answered(conn, "k")
        refused = throttle.take(conn, "k", 0.3, 20)
        assert not refused.started and not refused.busy
        assert refused.free_at > refused.db_now
        time.sleep(0.35)
        assert throttle.take(conn, "k", 0.3, 20).started


def test_a_dead_senders_in_flight_lease_runs_out(db: Database) -> None:
    with db.connection() as conn:
        assert throttle.reserve(conn, "k", 0.1, 0.3).started  # its worker dies mid-send
        assert not throttle.take(conn, "k", 0.1, 0.3).started
        time.sleep(0.35)
        assert throttle.take(conn, "k", 0.1, 0.3).started


def test_keys_are_independent(db: Database) -> None:
    with db.connection() as conn:
        assert throttle.reserve(conn, "sender:a", 10, 20).started
        assert throttle.reserve(conn, "sender:b", 10, 20).started


def test_a_fast_sender_spaces_starts_and_allows_several_in_flight(db: Database) -> None:
    # 20/s (spacing 50 ms): waiting for every answer would cap it at 1/latency.
    with db.connection() as conn:
        assert throttle.reserve(conn, "k", 0.05, 20).started  # in flight, never answered
        early = throttle.take(conn, "k", 0.05, 20)
        assert not early.started and not early.busy
        assert 0 < (early.free_at - early.db_now).total_seconds() <= 0.05
        time.sleep(0.06)
        assert throttle.take(conn, "k", 0.05, 20).started  # a second one in flight
