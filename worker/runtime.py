"""The worker process: one readable loop per role, all greenlets, one stop signal.

First SIGTERM (or Ctrl-C): stop claiming and polling, let sends in hand finish
within SHUTDOWN_GRACE_S, hand back jobs that never started, exit 0.
A second SIGTERM exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable
from typing import Any

import gevent

from app.errors import DatabaseUnavailable
from app.jobs import Kind
from app.logs import event
from app.services import Services
from db import ops
from worker.dispatcher import Dispatcher, Handler
from worker.housekeeping import run_housekeeping
from worker.inbound_post import handle_cxone_inbound
from worker.jobs import JobContext
from worker.media_fetch import handle_fetch_media
from worker.poller import run_poller
from worker.reconciler import run_reconciler
from worker.send import handle_send
from worker.status_push import handle_cxone_status

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0
HEARTBEAT_S = 5.0

HANDLERS: dict[str, Handler] = {
    Kind.SEND: handle_send,
    Kind.CXONE_STATUS: handle_cxone_status,
    Kind.CXONE_INBOUND: handle_cxone_inbound,
    Kind.FETCH_MEDIA: handle_fetch_media,
}


class Worker:
    """Runs the poller, the dispatcher and the periodic roles until told to stop."""

    def __init__(self, services: Services, *, burst: bool = False,
                 concurrency: int | None = None, poll: bool = True) -> None:
        self.services = services
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ctx = JobContext(services=services, worker_id=self.worker_id)
        self.burst = burst
        self.poll = poll and not burst and services.cxone.polls
        concurrency = concurrency or services.settings.worker_concurrency
        self.dispatcher = Dispatcher(self.ctx, HANDLERS, concurrency=concurrency, burst=burst)
        self._signals = 0

    def run(self) -> int:
        """Run until stopped; the process exit status."""
        gevent.signal_handler(signal.SIGTERM, self._on_signal)
        gevent.signal_handler(signal.SIGINT, self._on_signal)
        event(log, "worker.started", worker_id=self.worker_id, burst=self.burst,
              concurrency=self.dispatcher.pool.size)
        background = [gevent.spawn(self._heartbeat_loop), gevent.spawn(self._listen_loop)]
        if self.poll:
            background.append(gevent.spawn(self._guard, "poller", run_poller))
        if not self.burst:
            background.append(gevent.spawn(self._guard, "reconciler", run_reconciler))
            background.append(gevent.spawn(self._guard, "housekeeping", run_housekeeping))
        metrics_server = self._serve_metrics()
        dispatcher = gevent.spawn(self.dispatcher.run)
        dispatcher.join()
        self.ctx.stopping.set()
        finished = self.dispatcher.join(timeout=SHUTDOWN_GRACE_S)
        if not finished:
            event(log, "worker.jobs_abandoned", logging.WARNING, running=len(self.dispatcher.pool))
            self.dispatcher.kill_remaining()
        gevent.joinall(background, timeout=5)
        gevent.killall([g for g in background if not g.dead], timeout=2)
        if metrics_server is not None:
            metrics_server.stop(timeout=1)
        self._mark_stopped()
        self.services.close()
        event(log, "worker.stopped", worker_id=self.worker_id, clean=finished)
        return 0

    def stop(self) -> None:
        """Ask the worker to stop (as the first SIGTERM does)."""
        self.ctx.stopping.set()
        self.dispatcher.wake.set()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            event(log, "worker.killed", logging.WARNING, worker_id=self.worker_id)
            os._exit(1)
        event(log, "worker.stopping", worker_id=self.worker_id)
        self.stop()

    def _serve_metrics(self) -> Any:
        """/metrics and /healthz on METRICS_PORT, when set (a worker has no web port)."""
        port = self.services.settings.metrics_port
        if not port:
            return None
        from gevent.pywsgi import WSGIServer

        from app import metrics
        from app.bearer import bearer_matches

        settings = self.services.settings

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if environ.get("PATH_INFO") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"error": "not_found"}']
            if settings.metrics_token and not bearer_matches(
                    environ.get("HTTP_AUTHORIZATION"), settings.metrics_token):
                start_response("401 Unauthorized", [
                    ("Content-Type", "application/json"),
                    ("WWW-Authenticate", 'Bearer realm="metrics"')])
                return [b'{"error": "unauthorized", "message": "bearer token required"}']
            body, content_type = metrics.render(self.services)
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]

        # Bound to 127.0.0.1 unless METRICS_HOST says otherwise: sender numbers and
        # volumes are nobody else's business.
        server = WSGIServer((settings.metrics_host, port), app, log=None)
        server.start()
        event(log, "worker.metrics_listening", host=settings.metrics_host, port=port)
        return server

    def _guard(self, role: str, loop: Callable[[JobContext], None]) -> None:
        """Keep a role's loop alive: a crash is logged and the loop restarts."""
        while not self.ctx.stopping.is_set():
            try:
                loop(self.ctx)
                return
            except gevent.GreenletExit:
                return
            except Exception as exc:
                log.exception("worker.role_crashed", extra={"fields": {"role": role}})
                self.ctx.roles.failed(role, f"{type(exc).__name__}: {exc}", crashed=True)
                self.ctx.sleep(2.0)

    def _heartbeat_loop(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        while not self.ctx.stopping.is_set():
            try:
                with self.services.db.connection() as conn:
                    ops.heartbeat(conn, self.worker_id, host, pid, self.ctx.roles.report())
            except DatabaseUnavailable as exc:
                event(log, "worker.heartbeat_failed", logging.WARNING, error=str(exc))
            self.ctx.sleep(HEARTBEAT_S)

    def _listen_loop(self) -> None:
        """LISTEN for new jobs so the dispatcher wakes at once, not at its next poll."""
        while not self.ctx.stopping.is_set():
            try:
                conn = self.services.db.connect()
                try:
                    conn.execute("LISTEN outbox")
                    while not self.ctx.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.dispatcher.wake.set()
                finally:
                    conn.close()
            except Exception as exc:  # the database went away: reconnect shortly
                event(log, "worker.listen_failed", logging.WARNING, error=str(exc)[:200])
                self.ctx.sleep(2.0)

    def _mark_stopped(self) -> None:
        try:
            with self.services.db.connection() as conn:
                ops.worker_stopped(conn, self.worker_id)
        except DatabaseUnavailable:
            pass
