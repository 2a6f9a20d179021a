"""Gunicorn settings for the ``web`` process (read automatically from the working directory).

The Procfile line stays ``gunicorn -k gevent 'app:create_app()'``; gunicorn binds
``0.0.0.0:$PORT`` by itself when PORT is set.
"""

import os

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Connections per gevent worker. Idle ones cost a few kB; slow clients are cut off
# (headers: keepalive below; body: WEB_BODY_TIMEOUT_S in the app), so the cap is
# about bursts, not about holding out against them.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
bind = [f"0.0.0.0:{os.environ.get('PORT', '5000')}"]
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = None  # request logs come from the app as JSON lines, numbers masked
# Gunicorn 25+ opens a control socket at one fixed path per user; two instances on one
# machine (tests, benchmarks, a second app) would fight over it.
control_socket_disable = True


def _check_configuration():
    """Validate the configuration while gunicorn reads this file, before it logs anything.

    A bad value stops gunicorn with one line naming the variable (no traceback).
    """
    from app.config import Settings, exit_on_config_error, load_dotenv_file

    load_dotenv_file()
    with exit_on_config_error("web"):
        return Settings.from_env()


_settings = _check_configuration()


def on_starting(server):  # gunicorn passes the arbiter
    """In the master, before any worker starts: metrics directory, local database.

    With DATABASE_URL unset (local runs) the master starts the embedded Postgres
    and hands its URL to the workers.
    """
    # prometheus-client multiprocess mode: every worker writes its samples here and
    # /metrics adds them up. A fresh directory per start: no stale samples.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="smsgw-metrics-")
    if not _settings.database_url:
        from app.config import exit_on_config_error
        from db.embedded import resolve_database_url

        with exit_on_config_error("web"):
            os.environ["DATABASE_URL"] = resolve_database_url(None)


def child_exit(server, worker):  # gunicorn passes the arbiter and the dead worker
    """Drop a dead worker's live-gauge files (prometheus-client multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):  # gunicorn passes the arbiter and the exiting worker
    """Close the worker's database pool while its greenlets can still stop cleanly."""
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("services")
    if services is not None:
        services.close()
