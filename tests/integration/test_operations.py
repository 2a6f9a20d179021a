"""Operations: /readyz, /metrics, TLS expiry, housekeeping, the CLI and the admin API."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.config import Settings
from app.readiness import tls_days_left
from app.services import Services
from db.pool import Database
from sandbox import defaults
from tests.harness import free_port, gateway_env, run_dir, start_web, start_worker, wait_for
from worker.housekeeping import housekeep_once

CUSTOMER = "+14155550100"


def _settings(**extra: str) -> Settings:
    return Settings.from_env({
        "CXONE_CLIENT_ID": "id", "CXONE_CLIENT_SECRET": "secret",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9", "ADMIN_TOKEN": "admin-secret", **extra})


@pytest.fixture
def services(database_url):
    s = Services(settings=_settings(), db=Database(database_url, max_size=4))
    yield s
    s.close()


def cli(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=run_dir(),
                          capture_output=True, text=True, timeout=60, input=stdin)


# -- readiness -----------------------------------------------------------------------------

def test_readyz_follows_the_worker(database_url, cxone, twilio, processes):
    port = free_port()
    env = gateway_env(database_url, cxone, twilio, public_base_url=f"http://127.0.0.1:{port}")
    processes.append(start_web(env, port))
    url = f"http://127.0.0.1:{port}/readyz"
    first = requests.get(url, timeout=5)
    assert first.status_code == 503
    assert first.json()["checks"]["workers"]["status"] == "fail"
    worker = start_worker(env)
    processes.append(worker)
    wait_for(lambda: requests.get(url, timeout=5).status_code == 200, timeout=20,
             message="ready with a worker")
    ready = requests.get(url, timeout=5).json()
    assert ready["ready"] is True
    for check in ("database", "migrations", "workers", "queue_lag", "dead_letters",
                  "last_webhook"):
        assert check in ready["checks"]
    assert worker.terminate() == 0
    wait_for(lambda: requests.get(url, timeout=5).status_code == 503, timeout=10,
             message="503 once the worker stopped")
    processes.append(start_worker(env))
    wait_for(lambda: requests.get(url, timeout=5).status_code == 200, timeout=20,
             message="200 when it returns")


def test_readyz_reports_pending_migrations_and_dead_letters(services, database_url):
    client = create_app(services=services).test_client()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO worker_heartbeats (worker_id, hostname, pid) "
                     "VALUES ('w', 'h', 1)")
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state, last_error) "
                     "VALUES ('send_sms', 'm1', 'dead', 'boom')")
    body = client.get("/readyz").get_json()
    assert body["ready"] is True
    assert body["checks"]["dead_letters"] == {"status": "warn", "count": 1}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = '0002'")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"] == {"status": "fail",
                                                           "pending": ["0002"]}


def test_tls_days_left_of_a_local_self_signed_certificate(tls_server, services):
    days = tls_days_left("127.0.0.1", tls_server)
    assert 9.5 < days <= 10.0
    https = services.settings.with_overrides(public_base_url=f"https://127.0.0.1:{tls_server}")
    with_tls = Services(settings=https, db=services.db)
    report = create_app(services=with_tls).test_client().get("/readyz").get_json()
    tls = report["checks"]["tls_certificate"]
    assert tls["status"] == "warn" and 9.5 < tls["days_left"] <= 10.0  # under 14 days


# -- metrics -------------------------------------------------------------------------------

def test_metrics_in_prometheus_text_format(services, database_url):
    client = create_app(services=services).test_client()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (kind, dedupe_key) VALUES ('send_sms', 'm1')")
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state) "
                     "VALUES ('cxone_status', 's1', 'dead')")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("smsgw_queue_jobs", "smsgw_dead_letter_jobs",
                 "smsgw_queue_oldest_runnable_seconds", "smsgw_workers_live",
                 "smsgw_database_up", "smsgw_outside_call_seconds",
                 "smsgw_sends", "smsgw_receipts", "smsgw_webhook_seconds",
                 "smsgw_throttle_waits", "smsgw_consent_changes", "smsgw_dead_letters"):
        assert name in families, name
    samples = {(s.labels.get("kind"), s.labels.get("state")): s.value
               for s in families["smsgw_queue_jobs"].samples}
    assert samples[("send_sms", "runnable")] == 1
    assert samples[("cxone_status", "dead")] == 1


def test_worker_serves_metrics_on_metrics_port(database_url, cxone, twilio, processes):
    port = free_port()
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      METRICS_PORT=str(port))
    processes.append(start_worker(env))
    reply = cxone.reply(CUSTOMER, "count me")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20, message="SENT")
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    sends = [s for f in text_string_to_metric_families(text) if f.name == "smsgw_sends"
             for s in f.samples if s.name == "smsgw_sends_total"]
    assert any(s.labels["outcome"] == "sent" and s.value == 1 for s in sends)
    latency = next(f for f in text_string_to_metric_families(text)
                   if f.name == "smsgw_outside_call_seconds")
    assert {s.labels["system"] for s in latency.samples} == {"cxone", "twilio"}


# -- housekeeping --------------------------------------------------------------------------

def test_housekeeping_deletes_only_what_is_past_retention(services, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state, finished_at) "
                     "SELECT 'send_sms', 'old' || g, 'done', now() - interval '8 days' "
                     "FROM generate_series(1, 2500) g")
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state, finished_at) VALUES "
                     "('send_sms', 'recent', 'done', now() - interval '1 day'), "
                     "('send_sms', 'dead-old', 'dead', now() - interval '30 days')")
        conn.execute("INSERT INTO idempotency_keys (key, state, to_number, expires_at) VALUES "
                     "('expired', 'sent', '+1', now() - interval '1 hour'), "
                     "('live', 'sent', '+1', now() + interval '1 hour')")
        conn.execute("INSERT INTO twilio_receipts (message_sid, message_status, received_at) "
                     "VALUES ('SMold', 'delivered', now() - interval '31 days'), "
                     "('SMnew', 'delivered', now())")
        conn.execute("INSERT INTO audit_log (at, event, source) "
                     "VALUES (now() - interval '400 days', 'ancient', 'test')")
    deleted = housekeep_once(services)
    assert deleted["done_jobs"] == 2500
    assert deleted["expired_idempotency_keys"] == 1
    assert deleted["old_receipts"] == 1
    with psycopg.connect(database_url) as conn:
        keys = {r[0] for r in conn.execute("SELECT dedupe_key FROM outbox")}
        assert keys == {"recent", "dead-old"}  # dead letters wait for an operator
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1


def test_outbox_has_queue_friendly_autovacuum_settings(database_url):
    with psycopg.connect(database_url) as conn:
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'outbox'"
                               ).fetchone()[0]
    assert "autovacuum_vacuum_scale_factor=0.02" in options


# -- CLI -----------------------------------------------------------------------------------

def _cli_env(database_url, cxone, twilio):
    return gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9")


@pytest.mark.parametrize("args", [[], ["bogus"], ["dead-letters"], ["dead-letters", "replay"],
                                  ["consent", "set", "12345", "opted_in"],
                                  ["consent", "set", CUSTOMER, "maybe"], ["trace"]])
def test_bad_arguments_print_usage_and_exit_2(database_url, cxone, twilio, args):
    result = cli(_cli_env(database_url, cxone, twilio), *args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_consent_set_get_export_import(database_url, cxone, twilio, tmp_path):
    env = _cli_env(database_url, cxone, twilio)
    assert cli(env, "consent", "set", CUSTOMER, "opted_in", "--note", "web form").returncode == 0
    got = json.loads(cli(env, "--json", "consent", "get", CUSTOMER).stdout)
    assert got["status"] == "opted_in" and got["history"][0]["source"] == "cli"
    exported = cli(env, "consent", "export").stdout
    assert exported.splitlines()[0] == "phone_number,status,scope,source,updated_at"
    assert f"{CUSTOMER},opted_in,*,cli," in exported
    csv_file = tmp_path / "consent.csv"
    csv_file.write_text("phone_number,status\n+14155550101,opted_out\n+14155550102,opted_in\n")
    assert cli(env, "consent", "import", str(csv_file)).stdout.strip() == "imported 2 row(s)"
    bad = tmp_path / "bad.csv"
    bad.write_text("phone_number,status\n+14155550103,opted_in\nnot-a-number,opted_in\n")
    result = cli(env, "consent", "import", str(bad))
    assert result.returncode == 1 and "line 3" in result.stderr
    with psycopg.connect(database_url) as conn:  # all or nothing
        assert conn.execute("SELECT count(*) FROM consent WHERE phone_number = '+14155550103'"
                            ).fetchone()[0] == 0


def test_cli_status_and_trace(database_url, cxone, twilio, processes):
    env = _cli_env(database_url, cxone, twilio)
    processes.append(start_worker(env))
    reply = cxone.reply(CUSTOMER, "trace me")
    wait_for(lambda: cxone.statuses(reply["id"]) == ["SENT"], timeout=20, message="SENT")
    status = cli(env, "status")
    assert status.returncode == 0
    assert "live workers: 1" in status.stdout and "dead letters: 0" in status.stdout
    traced = json.loads(cli(env, "--json", "trace", reply["id"]).stdout)
    events = [t["what"] for t in traced["timeline"]]
    for expected in ("message.enqueued", "send.claimed", "send.created",
                     "cxone.update_queued", "cxone.update_pushed"):
        assert expected in events, events
    sid = twilio.messages()[0]["sid"]
    by_sid = json.loads(cli(env, "--json", "trace", sid).stdout)
    assert by_sid["message_id"] == reply["id"]
    assert cli(env, "trace", "msg_unknown").returncode == 1


def test_cli_dead_letters_replay_and_discard(database_url, cxone, twilio):
    env = _cli_env(database_url, cxone, twilio)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO outbox (kind, dedupe_key, state, last_error, payload) "
                            "VALUES (%s, %s, 'dead', %s, '{}') RETURNING id",
                            (kind, key, error)).fetchone()[0]
               for kind, key, error in [("cxone_status", "a", "HTTP 500"),
                                        ("cxone_status", "b", "HTTP 503"),
                                        ("cxone_inbound", "c", "timeout")]]
    listed = json.loads(cli(env, "--json", "dead-letters", "list", "--kind", "cxone_status").stdout)
    assert [r["id"] for r in listed] == ids[:2]
    shown = json.loads(cli(env, "--json", "dead-letters", "show", str(ids[2])).stdout)
    assert shown["last_error"] == "timeout"
    assert cli(env, "dead-letters", "replay", "--all", "--error", "HTTP 50").stdout.strip() == \
        "replayed 2 job(s)"
    assert cli(env, "dead-letters", "discard", str(ids[2])).returncode == 0
    assert cli(env, "dead-letters", "discard", str(ids[2])).returncode == 1  # not dead any more
    with psycopg.connect(database_url) as conn:
        states = dict(conn.execute("SELECT dedupe_key, state FROM outbox").fetchall())
    assert states == {"a": "queued", "b": "queued", "c": "done"}


# -- admin API -----------------------------------------------------------------------------

def test_admin_api_needs_its_token(services):
    client = create_app(services=services).test_client()
    assert client.get("/admin/status").status_code == 401
    assert client.get("/admin/status", headers={"Authorization": "Bearer nope"}).status_code \
        == 401
    ok = client.get("/admin/status", headers={"Authorization": "Bearer admin-secret"})
    assert ok.status_code == 200 and "queue" in ok.get_json()
    off = Services(settings=services.settings.with_overrides(admin_token=None), db=services.db)
    assert create_app(services=off).test_client().get("/admin/status").status_code == 404


def test_admin_api_consent_and_dead_letters(services, database_url):
    client = create_app(services=services).test_client()
    auth = {"Authorization": "Bearer admin-secret"}
    put = client.put(f"/admin/consent/{CUSTOMER}", json={"status": "opted_out",
                                                         "evidence": {"ticket": "42"}},
                     headers=auth)
    assert put.status_code == 200
    got = client.get(f"/admin/consent/{CUSTOMER}", headers=auth).get_json()
    assert got["status"] == "opted_out" and got["history"][0]["evidence"] == {"ticket": "42"}
    assert client.put(f"/admin/consent/{CUSTOMER}", json={"status": "x"},
                      headers=auth).status_code == 400
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = conn.execute("INSERT INTO outbox (kind, dedupe_key, state) "
                           "VALUES ('cxone_status', 'z', 'dead') RETURNING id").fetchone()[0]
    assert [r["id"] for r in client.get("/admin/dead-letters", headers=auth).get_json()["items"]] \
        == [job]
    replayed = client.post(f"/admin/dead-letters/{job}/replay", headers=auth).get_json()
    assert replayed == {"replayed": [job]}


def test_heartbeat_age_uses_the_database_clock(services, database_url):
    from db import ops

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO worker_heartbeats (worker_id, hostname, pid, beat_at) VALUES "
                     "('fresh', 'h', 1, now()), ('stale', 'h', 2, now() - interval '1 minute')")
    with services.db.connection() as conn:
        live = ops.live_workers(conn, 30)
        now = ops.now(conn)
    assert [w["worker_id"] for w in live] == ["fresh"]
    assert abs(live[0]["beat_at"] - now) < timedelta(seconds=5)
