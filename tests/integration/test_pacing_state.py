"""Pacing state in Postgres (app/pacing.py): bookings exact across concurrent placers,
turns taken against the start clock with its tolerance, never-booked sends booked."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

from app import pacing
from app.pacing import Pace
from db.pool import Connection, Database

_ids = itertools.count(1)


def _jobs(conn: Connection, count: int) -> list[int]:
    """Real outbox rows (booking writes their run_at and slot)."""
    ids = []
    for _ in range(count):
        row = conn.execute("INSERT INTO outbox (kind, dedupe_key) VALUES ('send_sms', %s) "
                           "RETURNING id", (f"m{next(_ids)}",)).fetchone()
        ids.append(row["id"])
    return ids


def _book(conn: Connection, pace: Pace, count: int, segments: int = 1) -> list:
    from app.jobs import SendJob
    from tests.webapp import gateway_settings

    settings = gateway_settings(SENDER_MPS=str(pace.rate))
    sender = settings.sender_numbers[0]
    jobs = [(job_id, SendJob(to="+14155550100", body="x", message_id=f"b{job_id}",
                             conversation_id="c", from_=sender)) for job_id in _jobs(conn, count)]
    slots = pacing.book(conn, settings, jobs, {job_id: segments for job_id, _ in jobs})
    return [slots[job_id] for job_id, _ in jobs]


def test_concurrent_bookings_get_distinct_slots_one_spacing_apart(db: Database) -> None:
    pace = Pace("+18005550100", "sender:+18005550100", 2.0)
    slots, lock = [], threading.Lock()

    def placer() -> None:
        for _ in range(5):
            with db.connection() as conn:
                booked = _book(conn, pace, 2)
            with lock:
                slots.extend(booked)

    threads = [threading.Thread(target=placer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert len(slots) == 50
    assert min(gaps) >= 0.5 - 1e-6
    assert max(gaps) < 0.5 + 1e-3  # back to back: no slot wasted


def test_a_three_segment_send_takes_three_slots(db: Database) -> None:
    pace = Pace("+18005550100", "sender:+18005550100", 2.0)
    with db.connection() as conn:
        first, second = _book(conn, pace, 2, segments=3)
    assert abs((second - first).total_seconds() - 1.5) < 1e-3


def _take(conn: Connection, pace: Pace, slot=None, segments: int = 1) -> pacing.Turn:
    [job_id] = _jobs(conn, 1)
    start = pacing.KeyStart(key=f"key-{job_id}", message_id=None, to="+14155550100",
                            from_=None, ttl_s=60)
    return pacing.take_turn(conn, pace, start, job_id=job_id, claims=0, slot=slot,
                            segments=segments)


def test_turns_follow_the_start_clock_not_the_answer(db: Database) -> None:
    pace = Pace(None, "k", 4.0)  # spacing 0.25 s, tolerance 0.125 s
    with db.connection() as conn:
        assert _take(conn, pace).started  # nothing waits for Twilio's answer
        early = _take(conn, pace)
        assert not early.started
        wait = (early.come_back_at - early.db_now).total_seconds()
        # Booked one spacing after the first start (less the time between the two takes).
        assert 0.15 <= wait <= 0.25
        time.sleep(wait)
        assert _take(conn, pace, slot=early.come_back_at).started


def test_a_late_start_is_absorbed_within_the_tolerance(db: Database) -> None:
    pace = Pace(None, "k", 4.0)
    with db.connection() as conn:
        assert _take(conn, pace).started
        time.sleep(pace.spacing_s - pace.tolerance_s + 0.01)  # inside the tolerance
        assert _take(conn, pace, slot=early_slot(conn)).started


def early_slot(conn: Connection):
    return conn.execute("SELECT now() AS n").fetchone()["n"] - timedelta(seconds=1)


def test_an_unbooked_send_refused_a_turn_is_booked_once(db: Database) -> None:
    pace = Pace(None, "k", 1.0)
    with db.connection() as conn:
        assert _take(conn, pace).started
        refused = _take(conn, pace)
        assert not refused.started and refused.booked_slot is not None
        tat = conn.execute("SELECT tat FROM throttle_state WHERE key = 'k'").fetchone()["tat"]
    assert abs((tat - refused.booked_slot).total_seconds() - 1.0) < 1e-3


def test_senders_are_independent(db: Database) -> None:
    with db.connection() as conn:
        assert _take(conn, Pace(None, "sender:a", 0.1)).started
        assert _take(conn, Pace(None, "sender:b", 0.1)).started


def test_a_taken_turn_marks_the_idempotency_key_in_flight(db: Database) -> None:
    pace = Pace(None, "k", 1.0)
    with db.connection() as conn:
        taken = _take(conn, pace)
        refused = _take(conn, pace)
        keys = conn.execute("SELECT key, state FROM idempotency_keys").fetchall()
    assert taken.started and taken.key_started_at is not None
    assert not refused.started and refused.key_started_at is None
    assert [k["state"] for k in keys] == ["in_flight"]  # only the send that got its turn
