"""A small connection pool that cooperates with gevent.

Under gevent's monkey-patching the queue and semaphore below are greenlet-aware;
psycopg (3.1.14+) waits on sockets cooperatively. Connections are autocommit:
transactions are explicit (``with db.transaction() as conn``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.errors import DatabaseBusy, DatabaseUnavailable, RejectedByDatabase

Connection = psycopg.Connection[dict[str, Any]]

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
                 acquire_timeout_s: float = 30.0, connect_timeout_s: int = 10) -> None:
        self.url = url
        self.max_size = max_size
        self.application_name = application_name
        self.acquire_timeout_s = acquire_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        self._closed = False

    def connect(self, **kwargs: Any) -> Connection:
        """A new connection outside the pool (listeners, advisory-lock holders)."""
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   application_name=self.application_name,
                                   connect_timeout=self.connect_timeout_s,
                                   options="-c TimeZone=UTC", **kwargs)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to Postgres: {first_line(exc)}") from exc

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Borrow a connection; a broken one is thrown away, not returned."""
        if not self._slots.acquire(timeout=self.acquire_timeout_s):
            raise DatabaseUnavailable("no database connection free in time (pool exhausted)")
        conn: Connection | None = None
        try:
            conn = self._take_idle() or self.connect()
            with translated(conn):
                yield conn
        except DatabaseUnavailable:
            if conn is not None:
                close_quietly(conn)  # whatever state it is in, it is not reused
                conn = None
            raise
        except BaseException:
            if conn is not None and (conn.closed or conn.broken):
                conn = None
            raise
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: commit on success, roll back on error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close idle connections; connections in use close when given back."""
        self._closed = True
        while True:
            try:
                close_quietly(self._idle.get_nowait())
            except queue.Empty:
                return

    def _take_idle(self) -> Connection | None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return None
            if not conn.closed and not conn.broken:
                return conn
            close_quietly(conn)

    def _give_back(self, conn: Connection) -> None:
        if self._closed or conn.closed or conn.broken:
            close_quietly(conn)
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                close_quietly(conn)
                return
        self._idle.put(conn)


def close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        pass


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
