"""The pooled HTTP client (app/http_client.py) against real local servers.

What matters for exactly-once: a failure says whether the request can have reached
the peer (``sent``), a POST is never sent twice by the client itself, and a
keep-alive connection the peer closed is noticed before it carries a request.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.http_client import (
    ConnectFailed,
    Dropped,
    HttpClient,
    ReadTimeout,
)


class Recorder(BaseHTTPRequestHandler):
    """Answers from ``server.behave(handler)``; records every request and connection."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # type: ignore[attr-defined]

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.server.behave(self, body)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args: object) -> None:
        pass


def answer(handler: BaseHTTPRequestHandler, status: int = 200, body: object = None,
           close: bool = False) -> None:
    data = json.dumps(body if body is not None else {"ok": True}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    if close:
        handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    srv.connections = 0  # type: ignore[attr-defined]
    srv.behave = lambda h, body: answer(h)  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: ThreadingHTTPServer, path: str = "/x") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def behave(srv: ThreadingHTTPServer, fn: Callable[[BaseHTTPRequestHandler, bytes], None]) -> None:
    srv.behave = fn  # type: ignore[attr-defined]


def test_keep_alive_reuses_one_connection(server: ThreadingHTTPServer) -> None:
    client = HttpClient()
    for n in range(5):
        assert client.request("GET", url(server), params={"n": n}).json() == {"ok": True}
    assert server.connections == 1  # type: ignore[attr-defined]
    assert [r[1] for r in server.requests] == [f"/x?n={n}" for n in range(5)]  # type: ignore[attr-defined]


def test_form_json_auth_and_query(server: ThreadingHTTPServer) -> None:
    client = HttpClient()
    client.request("POST", url(server, "/f?a=1"), data={"To": "+1 415", "MediaUrl": ["u1", "u2"]},
                   auth=("AC1", "secret"), params={"b": "2"})
    client.request("PUT", url(server), json={"status": "SENT"}, headers={"X-Test": "yes"})
    (m1, path1, h1, b1), (m2, _, h2, b2) = server.requests  # type: ignore[attr-defined]
    assert (m1, path1) == ("POST", "/f?a=1&b=2")
    assert b1 == b"To=%2B1+415&MediaUrl=u1&MediaUrl=u2"
    assert h1["Content-Type"] == "application/x-www-form-urlencoded"
    assert h1["Authorization"] == "Basic QUMxOnNlY3JldA=="
    assert (m2, json.loads(b2), h2["Content-Type"], h2["X-Test"]) == (
        "PUT", {"status": "SENT"}, "application/json", "yes")


def test_error_statuses_are_answers_not_exceptions(server: ThreadingHTTPServer) -> None:
    behave(server, lambda h, body: answer(h, 503, {"message": "busy"}))
    response = HttpClient().request("GET", url(server))
    assert (response.status_code, response.ok, response.json()) == (503, False, {"message": "busy"})
    assert response.headers.get("content-type") == "application/json"  # case-insensitive


def test_connection_close_is_honoured(server: ThreadingHTTPServer) -> None:
    behave(server, lambda h, body: answer(h, close=True))
    client = HttpClient()
    for _ in range(3):
        client.request("GET", url(server))
    assert server.connections == 3  # type: ignore[attr-defined]


def test_a_connection_the_peer_closed_is_not_reused(server: ThreadingHTTPServer) -> None:
    """The server closes each connection after answering but without saying so: the next
    POST must go on a new connection and reach the server exactly once."""
    def answer_then_hang_up(h: BaseHTTPRequestHandler, body: bytes) -> None:
        answer(h)
        h.close_connection = True

    behave(server, answer_then_hang_up)
    client = HttpClient()
    client.request("POST", url(server), data={"n": "1"})
    time.sleep(0.2)  # the close reaches the client's socket
    client.request("POST", url(server), data={"n": "2"})
    assert [r[3] for r in server.requests] == [b"n=1", b"n=2"]  # type: ignore[attr-defined]
    assert server.connections == 2  # type: ignore[attr-defined]


def test_refused_means_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed) as failed:
        HttpClient().request("POST", f"http://127.0.0.1:{port}/x", data={"a": "b"})
    assert failed.value.sent is False


def test_read_timeout_means_maybe_sent(server: ThreadingHTTPServer) -> None:
    behave(server, lambda h, body: time.sleep(1.0))
    with pytest.raises(ReadTimeout) as late:
        HttpClient(timeout=(1.0, 0.3)).request("POST", url(server), data={"a": "b"})
    assert late.value.sent is True


def test_a_post_the_peer_dropped_without_answer_is_not_resent(server: ThreadingHTTPServer) -> None:
    """On a reused connection the server reads the POST and hangs up: it may have acted on
    it, so the client reports Dropped (ambiguous) and does not send it again."""
    calls = []

    def first_ok_then_hang_up(h: BaseHTTPRequestHandler, body: bytes) -> None:
        calls.append(body)
        if len(calls) == 1:
            answer(h)
        else:
            h.close_connection = True  # no answer at all

    behave(server, first_ok_then_hang_up)
    client = HttpClient()
    client.request("POST", url(server), data={"n": "1"})
    with pytest.raises(Dropped) as dropped:
        client.request("POST", url(server), data={"n": "2"})
    assert dropped.value.sent is True
    assert calls == [b"n=1", b"n=2"]


def test_an_idempotent_request_the_peer_dropped_is_tried_once_more(
        server: ThreadingHTTPServer) -> None:
    calls = []

    def hang_up_on_the_second(h: BaseHTTPRequestHandler, body: bytes) -> None:
        calls.append(h.command)
        if len(calls) == 2:
            h.close_connection = True
        else:
            answer(h)

    behave(server, hang_up_on_the_second)
    client = HttpClient()
    client.request("PUT", url(server), json={})
    assert client.request("PUT", url(server), json={}).status_code == 200
    assert calls == ["PUT", "PUT", "PUT"]


def test_tls_with_a_private_ca(server: ThreadingHTTPServer, tmp_path: object,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
        client = HttpClient()
        https = url(server).replace("http://", "https://")
        assert client.request("GET", https).json() == {"ok": True}
        assert client.request("GET", https).json() == {"ok": True}
    assert server.connections == 1  # type: ignore[attr-defined]
    with pytest.raises(ConnectFailed):  # the system's CAs do not know this one
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        HttpClient().request("GET", https)


def test_an_idle_socket_whose_peer_closed_is_gone() -> None:
    from app.http_client import _gone

    ours, theirs = socket.socketpair()
    try:
        assert _gone(ours) is False  # open and quiet: fit for reuse
        theirs.close()
        assert _gone(ours) is True
    finally:
        ours.close()
