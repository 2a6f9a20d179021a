"""Apply ``db/migrations/*.sql`` in order, each exactly once, under an advisory lock.

Two releases racing is safe: the second waits for the lock, then finds the
migrations recorded and applies nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant will do; it only has to be the same for every release process.
MIGRATION_LOCK_KEY = 0x736D_7367_776D_6967  # "smsgwmig"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)"""


class MigrationError(RuntimeError):
    """A migration failed or an applied migration's file changed."""


@dataclass(frozen=True)
class Migration:
    """One ``NNNN_name.sql`` file."""

    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise MigrationError(f"{path.name}: migration files must be named NNNN_name.sql")
        found.append(Migration(version=version, name=name or path.stem, path=path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def applied_versions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """version → checksum of the migrations recorded in the database."""
    cur = conn.cursor(row_factory=tuple_row)  # works on pooled (dict-row) connections too
    exists = cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = cur.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {row[0]: row[1] for row in rows}


def pending(conn: psycopg.Connection[Any],
            migrations: list[Migration] | None = None) -> list[Migration]:
    """Migrations not yet applied, in order."""
    migrations = discover() if migrations is None else migrations
    done = applied_versions(conn)
    return [m for m in migrations if m.version not in done]


def migrate(url: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration; return the ones this call applied."""
    migrations = discover() if migrations is None else migrations
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            done = applied_versions(conn)
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.path.name} was changed after it was applied; "
                            "add a new migration instead")
                    continue
                _apply(conn, migration)
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(f"migration {migration.path.name} failed: {first}") from exc


def status(url: str) -> tuple[list[tuple[Migration, str]], list[Migration]]:
    """(applied migrations with their applied_at, pending migrations)."""
    migrations = discover()
    with psycopg.connect(url, autocommit=True) as conn:
        done = applied_versions(conn)
        when: dict[str, str] = {}
        if done:
            for version, at in conn.execute(
                    "SELECT version, applied_at::text FROM schema_migrations").fetchall():
                when[version] = at
    applied = [(m, when[m.version]) for m in migrations if m.version in done]
    waiting = [m for m in migrations if m.version not in done]
    return applied, waiting


SCHEMA_FILE = Path(__file__).parent / "schema.sql"
SCHEMA_HEADER = """\
-- The current schema: what applying every file of db/migrations/ gives, in one place
-- (tests/integration/test_schema.py checks that they agree). Read it; never apply it
-- to a database the gateway runs on (migrations do that). After adding a migration,
-- regenerate it: python -m db schema > db/schema.sql  (needs pg_dump, a migrated
-- database in DATABASE_URL).
"""


def dump_schema(url: str) -> str:
    """The schema of the (migrated) database at ``url``, as db/schema.sql holds it."""
    import subprocess

    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--no-comments",
         "--exclude-table=schema_migrations", "--dbname", url],
        check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines()
             if not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\"))
             or line.startswith("SET check_function_bodies")]  # functions before tables
    body = "\n".join(lines).strip()
    while "\n\n\n" in body:
        body = body.replace("\n\n\n", "\n\n")
    return SCHEMA_HEADER + "\n" + body.replace("public.", "") + "\n"
