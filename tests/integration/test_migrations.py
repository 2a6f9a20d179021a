"""Migrations: all of them on an empty database, once each, safe when run concurrently."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from db import migrate

EXPECTED_TABLES = {
    "sms_gateway_state", "twilio_messages", "outbox", "throttle_state", "idempotency_keys",
    "consent", "consent_history", "poll_cursors", "twilio_receipts", "inbound_messages",
    "cxone_conversations", "cxone_message_status", "cxone_status_updates", "worker_heartbeats",
    "audit_log", "schema_migrations",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_all_migrations_apply_to_an_empty_database(empty_database_url: str) -> None:
    applied = migrate.migrate(empty_database_url)
    assert [m.version for m in applied] == [m.version for m in migrate.discover()]
    assert EXPECTED_TABLES <= _tables(empty_database_url)
    assert migrate.migrate(empty_database_url) == []


def test_seed_mapping_table_keeps_its_constraints(empty_database_url: str) -> None:
    migrate.migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id, "
                     "twilio_message_sid, direction) VALUES ('c', 'm', 'SM1', 'OUTBOUND')")
        row = conn.execute("SELECT twilio_status, created_at FROM sms_gateway_state").fetchone()
        assert row[0] == "queued" and row[1] is not None
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO sms_gateway_state (cxone_conversation_id, "
                         "cxone_message_id, twilio_message_sid, direction) "
                         "VALUES ('c', 'm2', 'SM1', 'OUTBOUND')")
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute("INSERT INTO sms_gateway_state (cxone_conversation_id, "
                         "cxone_message_id, direction) VALUES ('c', 'm3', 'OUTBOUND')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO sms_gateway_state (cxone_conversation_id, "
                         "cxone_message_id, twilio_message_sid, direction) "
                         "VALUES ('c', 'm4', 'SM4', 'SIDEWAYS')")


def test_audit_log_is_append_only(empty_database_url: str) -> None:
    migrate.migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (event, source) VALUES ('x', 'test')")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE audit_log SET event = 'y'")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("DELETE FROM audit_log")


def test_concurrent_migrate_applies_each_migration_once(empty_database_url: str) -> None:
    results: list[list[str]] = []

    def run() -> None:
        results.append([m.version for m in migrate.migrate(empty_database_url)])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [v for r in results for v in r]
    assert sorted(every) == [m.version for m in migrate.discover()]
    with psycopg.connect(empty_database_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert count == len(migrate.discover())


def test_two_migrate_processes_at_once(empty_database_url: str) -> None:
    env = {"DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-m", "db", "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied_lines = [line for out, _ in outputs for line in out.splitlines()
                     if line.startswith("applied")]
    assert len(applied_lines) == len(migrate.discover())
    status = subprocess.run([sys.executable, "-m", "db", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0
    assert "0 pending" in status.stdout


def test_changed_migration_is_refused(empty_database_url: str, tmp_path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    migrate.migrate(empty_database_url, migrate.discover(tmp_path))
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.migrate(empty_database_url, migrate.discover(tmp_path))


def test_failing_migration_is_reported_and_not_recorded(empty_database_url: str,
                                                        tmp_path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE b (x nosuchtype);")
    with pytest.raises(migrate.MigrationError, match=r"0002_bad\.sql failed"):
        migrate.migrate(empty_database_url, migrate.discover(tmp_path))
    with psycopg.connect(empty_database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == ["0001"]
