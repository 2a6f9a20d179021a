"""The gateway's HTTP client for Twilio and CXone: keep-alive connections, little per call.

Built on the standard library's ``http.client``. Per request, ``requests`` (and the
``twilio`` package on top of it) spent three to four times the CPU of the request
itself here: environment and netrc lookups, hooks, adapters, a urllib3 pool that
polls every reused socket through gevent's hub (docs/PERFORMANCE.md, CPU). What
the adapters need is small: a pool of keep-alive connections per host, a connect
and a read timeout, TLS with certificate checks, HTTP(S)_PROXY, and errors that
say whether the request can have reached the other side.

Errors: :class:`ConnectFailed` (never connected: nothing was sent),
:class:`ConnectTimeout` (likewise), :class:`ReadTimeout` and :class:`Dropped` (sent,
the answer lost: a create may have happened). Any answer, 4xx and 5xx included,
is a :class:`Response`; the adapters map statuses to the gateway's errors.

Greenlets share a client: the pool is a list per host, and a list's append and pop
never switch greenlets. A connection is reused only when its socket shows nothing
to read (the peer has not closed it), checked with a plain non-blocking ``poll``.
"""

from __future__ import annotations

import base64
import http.client
import json as jsonlib
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi

TIMEOUT = (5.0, 15.0)  # connect, read (seconds)
IDLE_MAX_S = 30.0  # a connection idle longer is closed rather than reused
MAX_BODY = 16 * 1024 * 1024  # an answer larger than this is refused (Dropped)
USER_AGENT = "smsgw (+https://github.com/)"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

try:  # the real poll: gevent's would park the greenlet and wake the hub for a 0 s check
    from gevent import monkey as _monkey

    _poll = _monkey.get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a runtime dependency
    from select import poll as _poll
from select import POLLERR, POLLHUP, POLLIN, POLLNVAL  # noqa: E402

_GONE = POLLIN | POLLERR | POLLHUP | POLLNVAL


class HttpFailure(Exception):
    """No usable answer. ``sent`` is False when the request cannot have reached the peer."""

    sent = True


class ConnectFailed(HttpFailure):
    """Refused, unresolvable or a TLS handshake that failed: nothing was sent."""

    sent = False


class ConnectTimeout(ConnectFailed):
    """No connection within the connect timeout: nothing was sent."""


class ReadTimeout(HttpFailure):
    """Sent, but no (whole) answer within the read timeout."""


class Dropped(HttpFailure):
    """Sent, but the connection broke before a whole answer came back."""


class Response:
    """An answer: status, headers (case-insensitive ``get``), the body as bytes."""

    __slots__ = ("content", "headers", "reason", "status_code")

    def __init__(self, status_code: int, headers: Any, content: bytes, reason: str = "") -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.reason = reason

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return jsonlib.loads(self.content)


class HttpClient:
    """Pooled keep-alive HTTP/1.1 connections to any number of hosts."""

    def __init__(self, *, pool_size: int = 32, timeout: tuple[float, float] = TIMEOUT) -> None:
        self.pool_size = pool_size
        self.timeout = timeout
        self._idle: dict[tuple[str, str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._tls = ssl.create_default_context(
            cafile=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
            or certifi.where())
        self._proxies = urllib.request.getproxies_environment()

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                params: Mapping[str, Any] | None = None, data: Any = None, json: Any = None,
                auth: tuple[str, str] | None = None,
                timeout: tuple[float, float] | None = None) -> Response:
        """One request; an answer of any status, or an :class:`HttpFailure`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectFailed(f"not an http(s) URL: {url[:100]!r}")
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params or {}, doseq=True)) if q)
        if query:
            target += "?" + query
        body, sent_headers = _body_and_headers(data, json, headers, auth)
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        connect_s, read_s = timeout or self.timeout
        for reused in self._attempts(key):
            conn = reused or self._open(key, connect_s)
            conn.sock.settimeout(read_s)  # type: ignore[union-attr]
            try:
                return self._exchange(conn, key, method, self._path(key, target), body,
                                      sent_headers)
            except _Stale as stale:
                conn.close()
                if reused is None or (method not in IDEMPOTENT and stale.sent):
                    raise Dropped("the connection closed before the answer") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            while idle:
                idle.pop()[0].close()

    # -- connections ---------------------------------------------------------------------

    def _attempts(self, key: tuple[str, str, int]) -> Any:
        """A reused connection first (when one is fit), then a new one once."""
        reused = self._take(key)
        if reused is not None:
            yield reused
        yield None

    def _take(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn, since = idle.pop()
            if now - since < IDLE_MAX_S and conn.sock is not None and not _gone(conn.sock):
                return conn
            conn.close()
        return None

    def _give_back(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.pool_size:
            idle.append((conn, time.monotonic()))
        else:
            conn.close()

    def _open(self, key: tuple[str, str, int], connect_s: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        proxy = self._proxy_for(scheme, host)
        conn: http.client.HTTPConnection
        where = (proxy.hostname, proxy.port or 80) if proxy else (host, port)
        if scheme == "https":
            conn = http.client.HTTPSConnection(where[0] or host, where[1], timeout=connect_s,
                                               context=self._tls)
            if proxy:
                conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
        else:
            conn = http.client.HTTPConnection(where[0] or host, where[1], timeout=connect_s)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise ConnectTimeout(f"no connection to {host}:{port} in {connect_s:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectFailed(f"cannot connect to {host}:{port}: {_reason(exc)}") from exc
        return conn

    def _path(self, key: tuple[str, str, int], target: str) -> str:
        """Plain HTTP through a proxy names the whole URL; anything else only the path."""
        scheme, host, port = key
        if scheme == "http" and self._proxy_for(scheme, host):
            return f"http://{host}:{port}{target}"
        return target

    def _proxy_for(self, scheme: str, host: str) -> Any:
        url = self._proxies.get(scheme)
        if not url or urllib.request.proxy_bypass(host):
            return None
        return urlsplit(url if "://" in url else f"http://{url}")

    # -- one exchange ----------------------------------------------------------------------

    def _exchange(self, conn: http.client.HTTPConnection, key: tuple[str, str, int],
                  method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> Response:
        try:
            conn.request(method, target, body=body, headers=headers)
        except TimeoutError as exc:
            conn.close()
            raise ReadTimeout("no answer in time (sending)") from exc
        except (OSError, http.client.HTTPException):
            raise _Stale(sent=False) from None
        try:
            answer = conn.getresponse()
            content = answer.read(MAX_BODY + 1)
        except TimeoutError as exc:
            conn.close()
            raise ReadTimeout("no answer in time") from exc
        except http.client.RemoteDisconnected:
            raise _Stale(sent=True) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Dropped(f"the connection broke: {_reason(exc)}") from exc
        if len(content) > MAX_BODY:
            conn.close()
            raise Dropped(f"the answer is larger than {MAX_BODY} bytes")
        if answer.will_close:
            conn.close()
        else:
            self._give_back(key, conn)
        return Response(answer.status, answer.headers, content, answer.reason)


class _Stale(Exception):
    """The peer closed the connection: before the request was sent (``sent`` False: it
    never read it) or after, without a word (a non-idempotent request may have acted)."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__("stale connection")
        self.sent = sent


def _body_and_headers(data: Any, json: Any, headers: Mapping[str, str] | None,
                      auth: tuple[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    body: bytes | None = None
    if json is not None:
        body = jsonlib.dumps(json, separators=(",", ":")).encode("utf-8")
        sent["Content-Type"] = "application/json"
    elif isinstance(data, Mapping):
        body = urlencode(data, doseq=True).encode("ascii")
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    elif isinstance(data, (bytes, str)):
        body = data.encode("utf-8") if isinstance(data, str) else data
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        sent["Authorization"] = f"Basic {token}"
    if headers:
        sent.update(headers)
    return body, sent


def _gone(sock: socket.socket) -> bool:
    """True when an idle connection has something to read: the peer closed it (or broke
    the protocol); either way it must not carry a request."""
    try:
        poller = _poll()
        poller.register(sock.fileno(), _GONE)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _proxy_auth(proxy: Any) -> dict[str, str] | None:
    if not proxy.username:
        return None
    token = base64.b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
