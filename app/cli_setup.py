"""Where ``smsgw`` gets its settings and its database: the same place web and worker do.

Settings: the real environment, then ``--env-file``, else ``.env`` in the
current directory, else ``.env.sandbox`` (written by ``python3 dev.py demo`` and
``python3 dev.py sandbox``). Only one file is read, so a real ``.env`` and the
sandbox's settings never mix.

Database: ``DATABASE_URL``; unset, the embedded Postgres that web and worker
use when started from this directory (``.data/pg``, or ``SMSGW_DATA_DIR``).
It is never created by accident: outside the project's directory ``smsgw``
refuses, and only ``smsgw migrate`` creates it.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.config import database_url_from_env, load_dotenv_file

ENV_FILES = (".env", ".env.sandbox")


class CliSetupError(RuntimeError):
    """No settings or no database to work with; the message is the one line to print."""


def load_env_file(explicit: str | None, cwd: Path) -> Path | None:
    """Load one dotenv file (real environment variables win); the file read, if any."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliSetupError(f"--env-file {explicit}: no such file")
        load_dotenv_file(str(path))
        return path
    for name in ENV_FILES:
        path = cwd / name
        if path.is_file():
            load_dotenv_file(str(path))
            return path
    return None


def embedded_data_dir(cwd: Path) -> Path:
    """The embedded Postgres directory web and worker would use from ``cwd``."""
    configured = os.environ.get("SMSGW_DATA_DIR", "").strip()
    return Path(configured) if configured else cwd / ".data" / "pg"


def is_project_dir(path: Path) -> bool:
    """True in the gateway's own checkout (where the Procfile's processes run)."""
    return (path / "Procfile").is_file() and (path / "db" / "migrations").is_dir()


def locate_database(cwd: Path, *, may_create: bool) -> str:
    """The database URL web and worker would use when started from ``cwd``.

    Raises :class:`CliSetupError` rather than create an embedded Postgres in a
    directory where no web or worker would ever find it.
    """
    explicit = database_url_from_env()
    if explicit:
        return explicit
    data_dir = embedded_data_dir(cwd)
    exists = (data_dir / "PG_VERSION").is_file()
    explicit_dir = bool(os.environ.get("SMSGW_DATA_DIR", "").strip())
    if not exists and not explicit_dir and not is_project_dir(cwd):
        raise CliSetupError(
            f"DATABASE_URL is not set and {cwd} is not the gateway's directory: set "
            "DATABASE_URL (or put it in .env here), or run smsgw in the project checkout")
    if not exists and not may_create:
        raise CliSetupError(
            f"no database yet ({data_dir} does not exist): run `smsgw migrate` to create "
            "the embedded Postgres, or set DATABASE_URL")
    from db.embedded import resolve_database_url

    return resolve_database_url(None, data_dir)
