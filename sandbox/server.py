"""Serve a simulator's WSGI app: in a background thread (tests) or as a process.

Both modes put the client's raw socket into the WSGI environ under
``sandbox.socket`` so a simulator can "accept, then drop the connection".
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

SOCKET_KEY = "sandbox.socket"

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug handler that exposes the socket and does not log every request."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # see serve_forever: no Nagle stalls
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[SOCKET_KEY] = self.connection
        return environ

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            log.debug(message, *args)


@dataclass
class RunningServer:
    """A simulator served from a daemon thread; ``url`` has no trailing slash."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(app: Callable[..., Any], host: str = "127.0.0.1",
                    port: int = 0) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 picks a free port) in a daemon thread."""
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox:{port}", daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread)


def serve_forever(app: Callable[..., Any], host: str, port: int) -> None:
    """Serve ``app`` with gevent's WSGI server until SIGINT/SIGTERM.

    The caller must have monkey-patched first (so the simulator's threads are
    greenlets).
    """
    import signal

    import gevent
    from gevent.pywsgi import WSGIHandler, WSGIServer

    class Handler(WSGIHandler):
        def handle(self) -> None:
            # pywsgi writes headers and body separately; with Nagle on, a keep-alive
            # client waits ~40 ms for every answer.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle()

        def get_environ(self) -> dict[str, Any]:
            env = super().get_environ()
            env[SOCKET_KEY] = self.socket
            return env

    server = WSGIServer((host, port), app, handler_class=Handler, log=None, error_log=log)
    stop = lambda *_: gevent.spawn(server.stop, timeout=2)  # noqa: E731
    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    server.serve_forever()
