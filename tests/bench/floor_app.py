"""The floor for "durably record a receipt": a bare Flask app, one INSERT per request.

``bench_webhooks.py`` runs it exactly like the gateway's web process
(``gunicorn -k gevent 'tests.bench.floor_app:create_app()'`` from the repository
root, so the same ``gunicorn.conf.py``) against the same Postgres server, and
sends it the same signed bodies. Per request it parses the form, borrows a
pooled autocommit connection, runs one INSERT (committed on its own) and answers
200 with an empty body. No signature check, no dedupe, no logging, no metrics:
whatever the gateway spends beyond this is its overhead.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from flask import Flask, Response, request

# The gateway's web process uses a pool of 10 per gunicorn worker (app/services.py).
POOL_SIZE = int(os.environ.get("FLOOR_POOL_SIZE", "10"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_receipts (
    id BIGSERIAL PRIMARY KEY,
    sid TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO floor_receipts (sid, status) VALUES (%s, %s)"


def create_schema(url: str) -> None:
    """Create the floor's one table in the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)


class Pool:
    """At most ``size`` autocommit connections, opened on demand (greenlet-aware under gevent)."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """Borrow a connection; a broken one is closed instead of given back."""
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.url, autocommit=True)
            try:
                yield conn
            finally:
                if conn.broken or conn.closed:
                    conn.close()
                else:
                    self._idle.put(conn)
        finally:
            self._slots.release()


def create_app() -> Flask:
    """The floor app (gunicorn: ``'tests.bench.floor_app:create_app()'``); reads DATABASE_URL."""
    pool = Pool(os.environ["DATABASE_URL"], POOL_SIZE)
    app = Flask("floor")

    @app.post("/twilio/receipts")
    def receipt() -> Response:
        form = request.form
        with pool.connection() as conn:
            conn.execute(INSERT, (form.get("MessageSid"), form.get("MessageStatus")))
        return Response("", status=200)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
