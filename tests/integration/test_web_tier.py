"""The web tier run the way the Procfile runs it (gunicorn, gevent workers), and what the
public endpoints reveal (issue "Hardening": slow clients, TLS under gevent, /readyz
leaks, /metrics behind METRICS_TOKEN, stuck and crash-looping roles)."""

from __future__ import annotations

import socket
import time

import psycopg
import requests

from app import create_app
from app.services import Services
from app.snapshot import judge_roles
from db.pool import Database
from tests.harness import free_port, gateway_env, start_web, start_worker, wait_for
from tests.webapp import gateway_settings


def _web(database_url, cxone, twilio, processes, *, public_base_url=None, **env):
    port = free_port()
    url = public_base_url or f"http://127.0.0.1:{port}"
    processes.append(start_web(gateway_env(database_url, cxone, twilio, public_base_url=url,
                                           **env), port))
    return f"http://127.0.0.1:{port}"


def test_slow_bodies_cannot_exhaust_the_web_tier(database_url, cxone, twilio, processes):
    base = _web(database_url, cxone, twilio, processes, WEB_BODY_TIMEOUT_S="2")
    port = int(base.rsplit(":", 1)[1])
    slow = []
    try:
        for _ in range(1100):  # headers promise a body that never comes
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /twilio/receipts HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 1000\r\n\r\nMessageSid=SM")
            slow.append(sock)
        started = time.monotonic()
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 3
        # Each slow client is answered 408 and cut off once its body deadline passes.
        slow[0].settimeout(10)
        assert slow[0].recv(200).startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()


def test_tls_check_works_under_gevent_as_the_procfile_runs_it(database_url, cxone, twilio,
                                                              processes, tls_server):
    base = _web(database_url, cxone, twilio, processes,
                public_base_url=f"https://127.0.0.1:{tls_server}")
    response = requests.get(f"{base}/readyz", timeout=10)
    assert response.status_code == 503  # no worker runs here; the TLS check still answers
    tls = response.json()["checks"]["tls_certificate"]
    assert tls["status"] == "warn" and 9.5 < tls["days_left"] <= 10.0


def test_readyz_reveals_no_database_host_or_role():
    settings = gateway_settings()
    services = Services(settings=settings,
                        db=Database("postgresql://secret_role@127.0.0.1:1/secret_db",
                                    max_size=1, connect_timeout_s=2))
    response = create_app(services=services).test_client().get("/readyz")
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert response.get_json()["checks"]["database"] == {"status": "fail",
                                                         "error": "database unavailable"}
    for secret in ("secret_role", "secret_db", "127.0.0.1", "port"):
        assert secret not in text


def test_metrics_need_the_token_when_one_is_set(database_url):
    services = Services(settings=gateway_settings(METRICS_TOKEN="m-secret"),
                        db=Database(database_url, max_size=2))
    try:
        client = create_app(services=services).test_client()
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code \
            == 401
        allowed = client.get("/metrics", headers={"Authorization": "Bearer m-secret"})
        assert allowed.status_code == 200 and b"smsgw_database_up" in allowed.data
    finally:
        services.close()


def test_metrics_are_open_without_a_token(client):
    assert client.get("/metrics").status_code == 200


def test_worker_metrics_server_binds_loopback_and_needs_the_token(database_url, cxone, twilio,
                                                                  processes):
    port = free_port()
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      METRICS_PORT=str(port), METRICS_TOKEN="w-secret")
    processes.append(start_worker(env))

    def answered():
        try:  # a Response is falsy when not 2xx: wrap it
            return [requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1)]
        except requests.RequestException:
            return None

    [first] = wait_for(answered, timeout=20, message="worker /metrics")
    assert first.status_code == 401
    ok = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5,
                      headers={"Authorization": "Bearer w-secret"})
    assert ok.status_code == 200
    with socket.socket() as probe:  # listening on loopback only
        other = _non_loopback_address()
        if other:
            assert probe.connect_ex((other, port)) != 0


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


# -- stuck and crash-looping roles ----------------------------------------------------------

def _report(**overrides):
    return {"ok_age_s": 1.0, "tick_age_s": 0.5, "failures": 0, "crashes": 0, "error": None,
            "leader": None, **overrides}


def _worker(roles, age=1.0):
    return {"worker_id": "w1", "age_s": age, "roles": roles}


def test_a_crash_looping_poller_fails_the_roles_check():
    verdict = judge_roles([_worker({"poller": _report(leader=True, crashes=3, failures=3,
                                                      error="KeyError: 'x'")})])
    assert verdict["poller"]["status"] == "fail"
    assert "crash-looping" in verdict["poller"]["detail"]


def test_a_failing_poller_with_a_recent_success_only_warns():
    verdict = judge_roles([_worker({"poller": _report(leader=True, failures=4)})])
    assert verdict["poller"]["status"] == "warn"
    stale = judge_roles([_worker({"poller": _report(leader=True, failures=4, ok_age_s=500)})])
    assert stale["poller"]["status"] == "fail"


def test_a_stuck_dispatcher_fails():
    verdict = judge_roles([_worker({"dispatcher": _report(tick_age_s=50)}, age=20)])
    assert verdict["dispatcher"]["status"] == "fail"
    assert "stuck" in verdict["dispatcher"]["detail"]


def test_status_sync_failing_on_every_worker_fails_on_one_only_warns():
    failing = _report(failures=6, ok_age_s=None, error="cxone update: HTTP 503")
    both = judge_roles([_worker({"status_sync": failing}), _worker({"status_sync": failing})])
    assert both["status_sync"]["status"] == "fail"
    one = judge_roles([_worker({"status_sync": failing}), _worker({"status_sync": _report()})])
    assert one["status_sync"]["status"] == "warn"


def test_a_failing_poller_shows_in_readyz_and_metrics(database_url, cxone, twilio, processes,
                                                      client):
    cxone.fault(target="poll", status=500, count=1000)
    env = gateway_env(database_url, cxone, twilio, public_base_url="http://127.0.0.1:9",
                      POLL_INTERVAL_S="0.2")
    processes.append(start_worker(env))

    def poller_failing():
        report = client.get("/readyz").get_json()
        return report["checks"].get("roles", {}).get("roles", {}).get("poller", {}).get(
            "status") == "fail" and report

    report = wait_for(poller_failing, timeout=40, message="poller failing in /readyz")
    assert report["ready"] is False
    assert "500" in report["checks"]["roles"]["roles"]["poller"]["error"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'smsgw_role_healthy{role="poller"} 0.0' in metrics
    with psycopg.connect(database_url) as conn:
        [(roles,)] = conn.execute("SELECT roles FROM worker_heartbeats").fetchall()
    assert roles["poller"]["failures"] >= 3
