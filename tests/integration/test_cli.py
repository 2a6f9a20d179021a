"""``smsgw`` as an operator meets it: where it finds its settings and database, what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from app.config import Settings
from app.errors import TransientError
from app.twilio_client import TwilioGateway
from tests.harness import gateway_env, start_worker, wait_for

SMSGW = str(Path(sys.executable).parent / "smsgw")
CUSTOMER = "+14155550100"
BARE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


def smsgw(cwd: Path | str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``smsgw`` command, run from ``cwd`` with exactly ``env``."""
    return subprocess.run([SMSGW, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _env(database_url, cxone, twilio) -> dict[str, str]:
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9")


# -- finding the database ------------------------------------------------------------------

def test_outside_the_project_smsgw_refuses_instead_of_creating_a_database(tmp_path):
    for args in (["status"], ["migrate"], ["dead-letters", "list", "--json"]):
        result = smsgw(tmp_path, BARE_ENV, *args)
        assert result.returncode == 78
        line = one_line(result)
        assert "DATABASE_URL is not set" in line and str(tmp_path) in line
    assert list(tmp_path.iterdir()) == []  # no .data/ appeared


def test_in_a_checkout_without_a_database_only_migrate_may_create_one(tmp_path):
    (tmp_path / "Procfile").write_text("web: gunicorn -k gevent 'app:create_app()'\n")
    (tmp_path / "db" / "migrations").mkdir(parents=True)
    result = smsgw(tmp_path, BARE_ENV, "status")
    assert result.returncode == 78
    assert "run `smsgw migrate`" in one_line(result)
    assert not (tmp_path / ".data").exists()


def test_an_unmigrated_database_gets_one_line_pointing_to_migrate(empty_database_url, tmp_path):
    env = {**BARE_ENV, "DATABASE_URL": empty_database_url}
    for args in (["status"], ["dead-letters", "list"], ["consent", "get", CUSTOMER],
                 ["trace", "msg_x"], ["status", "--json"]):
        result = smsgw(tmp_path, env, *args)
        assert result.returncode == 1, args
        line = one_line(result)
        assert "pending migration(s) (0001, 0002, 0003" in line
        assert line.endswith("): run `smsgw migrate`")
        assert result.stdout == ""
    migrated = smsgw(tmp_path, env, "migrate", "--json")
    assert migrated.returncode == 0 and json.loads(migrated.stdout)["applied"]
    assert smsgw(tmp_path, env, "status").returncode == 0


def test_a_database_that_does_not_answer_is_one_line(tmp_path):
    env = {**BARE_ENV, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"}
    result = smsgw(tmp_path, env, "status")
    assert result.returncode == 1
    assert "Postgres" in one_line(result) or "database" in one_line(result)


# -- settings files ------------------------------------------------------------------------

def _write_env(path: Path, env: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items() if k not in BARE_ENV))


def test_settings_come_from_env_sandbox_when_there_is_no_env(database_url, cxone, twilio,
                                                              tmp_path):
    _write_env(tmp_path / ".env.sandbox", _env(database_url, cxone, twilio))
    result = smsgw(tmp_path, BARE_ENV, "reconcile", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)
    assert any(r["path"].startswith("/api/v2/open-messaging/messages")
               for r in cxone.get("/_sandbox/requests")["items"])
    # A .env wins over .env.sandbox (the two are never mixed) ...
    (tmp_path / ".env").write_text(f"DATABASE_URL={database_url}\n")
    refused = smsgw(tmp_path, BARE_ENV, "reconcile")
    assert refused.returncode == 78 and "CXONE_CLIENT_ID is required" in one_line(refused)
    # ... and --env-file picks one explicitly.
    chosen = smsgw(tmp_path, BARE_ENV, "reconcile", "--env-file", ".env.sandbox")
    assert chosen.returncode == 0, chosen.stderr
    missing = smsgw(tmp_path, BARE_ENV, "--env-file", "nowhere.env", "status")
    assert missing.returncode == 78 and "nowhere.env" in one_line(missing)


# -- output --------------------------------------------------------------------------------

def test_json_anywhere_and_ages_are_numbers(database_url, cxone, twilio, processes, tmp_path):
    env = {**_env(database_url, cxone, twilio), "CONSENT_MODE": "opt-out"}
    processes.append(start_worker(env))
    reply = cxone.reply(CUSTOMER, "status me")
    wait_for(lambda: cxone.statuses(reply["id"])[:1] == ["SENT"], timeout=20, message="SENT")
    before = json.loads(smsgw(tmp_path, env, "--json", "status").stdout)
    after = json.loads(smsgw(tmp_path, env, "status", "--json").stdout)
    assert before.keys() == after.keys()
    worker = after["workers"][0]
    assert isinstance(worker["age_s"], float) and worker["age_s"] >= 0
    assert isinstance(worker["beat_at"], str)
    sender = after["senders"][0]
    assert isinstance(sender["backlog_s"], float) and isinstance(sender["next_slot"], str)
    assert after["pending_migrations"] == [] and isinstance(after["dead_letters"], int)


def test_dead_letters_list_has_headers_and_the_whole_error(database_url, tmp_path):
    env = {**BARE_ENV, "DATABASE_URL": database_url}
    error = "twilio list: HTTP 500 code 20500: " + "an internal error, explained at length " * 5
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = conn.execute("INSERT INTO outbox (kind, dedupe_key, state, attempts, last_error, "
                           "payload) VALUES ('send_sms', 'msg_dead1', 'dead', 5, %s, "
                           "'{\"message_id\": \"msg_dead1\"}') RETURNING id",
                           (error,)).fetchone()[0]
    human = smsgw(tmp_path, env, "dead-letters", "list")
    assert human.returncode == 0
    header, row, detail = human.stdout.splitlines()[:3]
    assert header.split()[:4] == ["ID", "KIND", "ATTEMPTS", "DEAD"]
    assert row.split()[:3] == [str(job), "send_sms", "5"] and "msg_dead1" in row
    assert detail.strip() == f"last error: {error.strip()}"
    as_json = json.loads(smsgw(tmp_path, env, "dead-letters", "list", "--json").stdout)
    assert as_json == json.loads(smsgw(tmp_path, env, "--json", "dead-letters", "list").stdout)
    assert as_json[0]["last_error"] == error and as_json[0]["attempts"] == 5


# -- the Twilio adapter's readable errors --------------------------------------------------

@pytest.mark.parametrize(("kind", "code"), [("500", "20500"), ("503", "20503"), ("429", "20429")])
def test_a_failed_twilio_list_reads_as_an_http_error(database_url, cxone, twilio, kind, code):
    gateway = TwilioGateway(Settings.from_env(_env(database_url, cxone, twilio)))
    twilio.fault(target="list", kind=kind)
    with pytest.raises(TransientError) as caught:
        gateway.find_messages(to=CUSTOMER, from_=None, since=datetime.now(UTC))
    text = str(caught.value)
    assert text.startswith(f"twilio list: HTTP {kind}"), text
    assert f"code {code}" in text and "TwilioException" not in text
    assert caught.value.code == code
