"""db/schema.sql (the current schema in one file) agrees with applying every migration."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from db import migrate

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'schema_migrations'""",
    "constraints": """
        SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
          AND conrelid::regclass::text <> 'schema_migrations'""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'schema_migrations'""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid) AS args,
               md5(pg_get_functiondef(oid)) AS body
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "triggers": """
        SELECT tgrelid::regclass::text AS tbl, tgname, pg_get_triggerdef(oid) AS def
        FROM pg_trigger WHERE NOT tgisinternal""",
    "storage": """
        SELECT relname, relkind, reloptions FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relname NOT LIKE 'schema_migrations%'""",
}


def _catalog(url: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: {tuple(str(v) for v in row) for row in conn.execute(sql).fetchall()}
                for name, sql in CATALOG.items()}


@pytest.fixture
def second_empty_database_url(pg_server_url):
    import uuid

    from tests.conftest import _drop, url_for

    name = f"smsgw_e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url_for(pg_server_url, name)
    _drop(pg_server_url, name)


def test_schema_file_matches_the_migrations(empty_database_url, second_empty_database_url):
    migrate.migrate(empty_database_url)
    with psycopg.connect(second_empty_database_url, autocommit=True) as conn:
        conn.execute(migrate.SCHEMA_FILE.read_text(encoding="utf-8").encode())
    migrated, from_file = _catalog(empty_database_url), _catalog(second_empty_database_url)
    for part in CATALOG:
        missing = sorted(migrated[part] - from_file[part])
        extra = sorted(from_file[part] - migrated[part])
        assert not missing and not extra, (
            f"db/schema.sql disagrees with the migrations on {part}:\n"
            f"  only after migrating: {missing}\n  only in schema.sql: {extra}\n"
            "regenerate it: python -m db schema > db/schema.sql")
