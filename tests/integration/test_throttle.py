"""Pacing state in Postgres: slots are exact across concurrent placers; senders free up right."""

from __future__ import annotations

import itertools
import threading
import time

from db import throttle
from db.pool import Connection, Database

HOLD_S = 20.0
_ids = itertools.count(1_000_000)


def place(conn: Connection, key: str, spacing_s: float, *, count: int = 1,
          hold_s: float = HOLD_S, take: bool = True) -> list[throttle.Placement]:
    """Place ``count`` sends of one sender, as the dispatcher does at claim time."""
    jobs = [{"id": next(_ids), "claims": 1, "key": key, "spacing": spacing_s, "ord": n}
            for n in range(count)]
    placed = throttle.place_sends(conn, jobs, hold_s=hold_s, lookahead_s=0.5, take=take)
    return [placed[j["id"]] for j in jobs]


def test_concurrent_placements_get_distinct_slots_one_spacing_apart(db: Database) -> None:
    slots = []
    lock = threading.Lock()

    def placer() -> None:
        for _ in range(5):
            with db.connection() as conn:
                placed = place(conn, "sender:+18005550100", 0.5, count=2, take=False)
            with lock:
                slots.extend(p.slot for p in placed)

    threads = [threading.Thread(target=placer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert len(slots) == 50
    assert min(gaps) >= 0.5 - 1e-6
    assert max(gaps) < 0.6  # back to back: no slot wasted


def test_an_idle_sender_is_taken_at_once_and_the_next_send_waits(db: Database) -> None:
    with db.connection() as conn:
        first, second = place(conn, "k", 0.3, count=2)
    assert first.started and first.slot <= first.db_now
    assert not second.started
    assert abs((second.slot - first.slot).total_seconds() - 0.3) < 0.05


def test_take_waits_for_the_answer_then_one_spacing(db: Database) -> None:
    with db.connection() as conn:
        assert place(conn, "k", 0.3)[0].started
        busy = throttle.take(conn, "k", 0.3, HOLD_S)
        assert not busy.started and busy.busy  # the first create is still in flight
        throttle.answered(conn, "k")
        refused = throttle.take(conn, "k", 0.3, HOLD_S)
        assert not refused.started and not refused.busy
        assert refused.free_at > refused.db_now
        time.sleep(0.35)
        assert throttle.take(conn, "k", 0.3, HOLD_S).started


def test_a_dead_senders_in_flight_lease_runs_out(db: Database) -> None:
    with db.connection() as conn:
        assert place(conn, "k", 0.25, hold_s=0.3)[0].started  # its worker dies mid-send
        assert not throttle.take(conn, "k", 0.25, 0.3).started
        time.sleep(0.35)
        assert throttle.take(conn, "k", 0.25, 0.3).started


def test_senders_are_independent(db: Database) -> None:
    with db.connection() as conn:
        assert place(conn, "sender:a", 10)[0].started
        assert place(conn, "sender:b", 10)[0].started


def test_a_fast_sender_spaces_starts_and_allows_several_in_flight(db: Database) -> None:
    # 20/s (spacing 50 ms): waiting for every answer would cap it at 1/latency.
    with db.connection() as conn:
        assert place(conn, "k", 0.05)[0].started  # in flight, never answered
        early = throttle.take(conn, "k", 0.05, HOLD_S)
        assert not early.started and not early.busy
        assert 0 < (early.free_at - early.db_now).total_seconds() <= 0.05
        time.sleep(0.06)
        assert throttle.take(conn, "k", 0.05, HOLD_S).started  # a second one in flight


def test_placing_at_enqueue_books_slots_without_taking_the_sender(db: Database) -> None:
    with db.connection() as conn:
        booked = place(conn, "k", 0.3, count=3, take=False)
        assert not any(p.started for p in booked)
        assert throttle.take(conn, "k", 0.3, HOLD_S).started  # still free to take
