"""db/gevent_wait.py: psycopg's generator protocol driven over a real socket pair."""

from __future__ import annotations

import socket
import threading

import pytest
from psycopg import errors
from psycopg.waiting import READY_R, READY_W, WAIT_R, WAIT_W

from db import gevent_wait


@pytest.fixture(autouse=True)
def real_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    import select

    monkeypatch.setattr(gevent_wait, "_poll", select.poll)


def test_it_reports_what_the_socket_is_ready_for() -> None:
    ours, theirs = socket.socketpair()
    seen = []

    def gen():  # like psycopg's: ask for W, then R, then return
        seen.append((yield WAIT_W))
        seen.append((yield WAIT_R))
        return "done"

    threading.Timer(0.05, lambda: theirs.send(b"x")).start()
    try:
        assert gevent_wait.wait(gen(), ours.fileno()) == "done"
    finally:
        ours.close()
        theirs.close()
    assert seen == [READY_W, READY_R]


def test_a_timeout_raises_psycopgs_wait_timeout() -> None:
    ours, theirs = socket.socketpair()

    def gen():
        while True:
            yield WAIT_R

    try:
        with pytest.raises(errors._WaitTimeout):
            gevent_wait.wait(gen(), ours.fileno(), timeout=0.1)
    finally:
        ours.close()
        theirs.close()
