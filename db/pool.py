"""The database: psycopg's own pool, with the gateway's errors and a fast "unavailable".

``psycopg_pool.ConnectionPool`` hands connections out first come, first served (a
connection given back goes straight to the longest waiter: no greenlet can barge
in ahead), bounds the queue (``max_waiting``: the web process refuses beyond it at
once, 503, rather than letting every request wait), replaces broken connections
and retires old ones (``max_lifetime``). Under gevent its worker threads are
greenlets and psycopg (3.1.14+) waits on sockets cooperatively. Measured against
the hand-written pool it replaced in docs/PERFORMANCE.md (overload).

Connections are autocommit: transactions are explicit (``with db.transaction() as
conn``). The pool opens in the process that first uses it (never before a fork).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from app.errors import DatabaseBusy, DatabaseUnavailable, RejectedByDatabase

Connection = psycopg.Connection[dict[str, Any]]

# A process without logging set up (the CLI) must not print the pool's connect
# retries on stderr: the failure reaches the caller as DatabaseUnavailable.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

# SQLSTATEs that mean "answered, try again" (not "unavailable").
_BUSY = {"40001", "40P01", "55P03", "57014"}
# Classes that mean "this data cannot be stored": data exceptions (22), integrity
# constraints (23), program limits such as an index row too large (54).
_REJECTED_CLASSES = {"22", "23", "54"}
_REJECTED_REASONS = {"22": "a value is malformed or out of range",
                     "23": "a value breaks a constraint",
                     "54": "a value is too large to store"}


def translate(exc: psycopg.Error, conn: Connection | None = None) -> Exception:
    """The gateway's own error for a psycopg one; the psycopg error itself when it is a bug.

    Only a lost or refused connection is "unavailable": an error about the data
    must never be reported as the database being down.
    """
    state = exc.sqlstate or ""
    if state in _BUSY:
        return DatabaseBusy(f"database busy: {first_line(exc)}", code=state)
    if state[:2] in _REJECTED_CLASSES:
        return RejectedByDatabase(f"the database refused the data: {_REJECTED_REASONS[state[:2]]}",
                                  code=state)
    broken = conn is not None and (conn.closed or conn.broken)
    if broken or state[:2] in ("08", "57", "53") or (
            isinstance(exc, psycopg.OperationalError) and not state):
        return DatabaseUnavailable(f"database error: {first_line(exc)}", code=state or None)
    return exc


@contextmanager
def translated(conn: Connection | None = None) -> Iterator[None]:
    """Raise the gateway's own errors for psycopg ones inside the block (see translate)."""
    try:
        yield
    except psycopg.Error as exc:
        mapped = translate(exc, conn)
        if mapped is exc:
            raise
        raise mapped from exc


@contextmanager
def savepoint(conn: Connection) -> Iterator[Connection]:
    """A nested transaction: an error inside rolls back only the block (translated)."""
    with translated(conn), conn.transaction():
        yield conn


class Database:
    """A bounded pool of autocommit connections to one database."""

    def __init__(self, url: str, *, max_size: int = 10, application_name: str = "smsgw",
                 acquire_timeout_s: float = 30.0, connect_timeout_s: int = 10,
                 max_waiting: int = 0) -> None:
        """``max_waiting``: how many may wait for a connection before the next is refused
        at once with DatabaseBusy (0: no limit)."""
        self.url = url
        self.max_size = max_size
        self.application_name = application_name
        self.acquire_timeout_s = acquire_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_waiting = max_waiting
        self._pool: ConnectionPool[Connection] | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()
        # The last failed connect and why, until one succeeds: while it stands, a request
        # that finds no idle connection fails at once instead of waiting out the timeout.
        self._unreachable: str | None = None

    def connect(self, **kwargs: Any) -> Connection:
        """A new connection outside the pool (listeners, advisory-lock holders)."""
        try:
            return psycopg.connect(self.url, **{**self._connect_kwargs(), **kwargs})
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to Postgres: {first_line(exc)}") from exc

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Borrow a connection; a broken one is thrown away (and replaced), not reused."""
        pool = self._opened_pool()
        conn = self._borrow(pool)
        try:
            with translated(conn):
                yield conn
        except DatabaseUnavailable:
            close_quietly(conn)  # whatever state it is in, it is not reused
            raise
        finally:
            pool.putconn(conn)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: commit on success, roll back on error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def waiting(self) -> int:
        """How many are waiting for a connection now (a metric under load)."""
        pool = self._pool
        return pool.get_stats().get("requests_waiting", 0) if pool is not None else 0

    def close(self) -> None:
        """Close the pool: idle connections now, connections in use when given back."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close(timeout=1.0)

    # -- the pool ------------------------------------------------------------------------

    def _borrow(self, pool: ConnectionPool[Connection]) -> Connection:
        unreachable = self._unreachable
        try:
            # Postgres did not answer the last connect: take an idle connection if there
            # is one, else fail now (the pool keeps trying to connect meanwhile).
            return pool.getconn(timeout=0.001 if unreachable else self.acquire_timeout_s)
        except TooManyRequests as exc:
            raise DatabaseBusy(f"too many requests waiting for a database connection "
                               f"({self.max_waiting})", code="pool_full") from exc
        except PoolTimeout as exc:
            if unreachable or self._unreachable:
                raise DatabaseUnavailable(
                    f"cannot connect to Postgres: {unreachable or self._unreachable}") from exc
            raise DatabaseUnavailable("no database connection free in time (pool exhausted)",
                                      code="pool_timeout") from exc

    def _opened_pool(self) -> ConnectionPool[Connection]:
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                from db import gevent_wait

                gevent_wait.install()  # under gevent: a cheaper wait per statement
                self._pool = ConnectionPool(
                    self.url, connection_class=self._connection_class(),
                    kwargs=self._connect_kwargs(), min_size=0, max_size=self.max_size,
                    open=False, timeout=self.acquire_timeout_s, max_waiting=self.max_waiting,
                    max_lifetime=3600.0, max_idle=600.0, reconnect_timeout=5.0,
                    name=self.application_name, num_workers=2)
                self._pool.open(wait=False)
                self._pool_pid = os.getpid()
            return self._pool

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "row_factory": dict_row,
                "application_name": self.application_name,
                "connect_timeout": self.connect_timeout_s, "options": "-c TimeZone=UTC"}

    def _connection_class(self) -> type[Connection]:
        """psycopg's Connection, noting whether Postgres answered the pool's last connect."""
        database = self

        class _Noted(psycopg.Connection[dict[str, Any]]):
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
                try:
                    conn = super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    database._unreachable = first_line(exc) or "no answer"
                    raise
                database._unreachable = None
                return conn

        return _Noted


def close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        pass


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
