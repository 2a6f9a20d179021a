"""Attachments: fetched once, checked, stored in Postgres, served from an unguessable URL.

Only allowlisted origins are fetched, every redirect hop is checked again, a
name must resolve to public addresses only (unless ``allow_private``) and the
connection goes to the address checked (TLS still verifies the name), so DNS
cannot change the answer in between. Size is capped while streaming, time over
the whole fetch. Any refusal is :class:`MediaRejected` with a short reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import certifi
import urllib3
from urllib3.util import make_headers

from app.errors import PermanentError
from app.media_rules import (
    TWILIO_ACCEPTED_TYPES,
    Origin,
    Target,
    extension,
    parse_allowed,
    parse_target,
)
from db import media as db_media
from db.pool import Connection

MMS_MAX_BYTES = 5 * 1024 * 1024
MMS_MAX_ITEMS = 10
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], list[str]]
# HTTP Basic (user, password), or a whole Authorization value such as "Bearer <token>".
Auth = tuple[str, str] | str


class MediaRejected(PermanentError):
    """An attachment the gateway will not pass on; ``reason`` is short and names no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"media_rejected: {reason}", code="media_rejected")
        self.reason = reason


@dataclass(frozen=True)
class MediaPolicy:
    """What may be fetched. ``allowed_hosts`` entries: ``host``, ``host:port``, and either
    with ``http://`` in front to allow plain HTTP (see :mod:`app.media_rules`).
    ``timeout_s`` bounds one fetch, redirects included; ``ca_certs`` is a test seam.
    """

    allowed_hosts: frozenset[str]
    allow_private: bool = False
    max_total_bytes: int = MMS_MAX_BYTES
    max_items: int = MMS_MAX_ITEMS
    timeout_s: float = 10.0
    allowed_types: frozenset[str] = TWILIO_ACCEPTED_TYPES
    max_redirects: int = 3
    ca_certs: str | None = None
    origins: frozenset[Origin] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origins", parse_allowed(self.allowed_hosts))


@dataclass(frozen=True)
class Fetched:
    """One attachment's bytes and type (parameters dropped, lower case); ``url`` as asked."""

    content_type: str
    data: bytes
    url: str


@dataclass(frozen=True)
class StoredMedia:
    """A stored attachment; ``token`` is the secret part of its public URL."""

    id: int
    token: str
    content_type: str
    size: int


def fetch_all(urls: Iterable[str], policy: MediaPolicy, *, auth: Auth | None = None,
              resolve: Resolver | None = None) -> list[Fetched]:
    """Every attachment of one message, or :class:`MediaRejected` for the first bad one.

    At most ``policy.max_items``; their sizes together within ``max_total_bytes``.
    """
    urls = list(urls)
    if len(urls) > policy.max_items:
        raise MediaRejected(f"too many attachments: {len(urls)} > {policy.max_items}")
    fetched: list[Fetched] = []
    for url in urls:
        budget = policy.max_total_bytes - sum(len(f.data) for f in fetched)
        if budget <= 0:
            raise MediaRejected(f"too large: over {policy.max_total_bytes} bytes in total")
        fetched.append(fetch(url, policy, auth=auth, resolve=resolve, max_bytes=budget))
    return fetched


def fetch(url: str, policy: MediaPolicy, *, auth: Auth | None = None,
          resolve: Resolver | None = None, max_bytes: int | None = None) -> Fetched:
    """GET one attachment under ``policy``; raises :class:`MediaRejected`.

    ``auth`` goes only to the origin of ``url`` itself, never to a host a
    redirect leads to (Twilio's media redirects to a signed CDN URL).
    ``resolve`` (host, port) → addresses is a test seam.
    """
    limit = policy.max_total_bytes if max_bytes is None else min(max_bytes,
                                                                 policy.max_total_bytes)
    deadline = time.monotonic() + policy.timeout_s
    target = _target(url, policy)
    first = target.origin
    for _hop in range(policy.max_redirects + 1):
        ip = _public_address(target, policy, resolve or _resolve)
        headers = {"Host": target.host_header, "Accept": "*/*", "Accept-Encoding": "identity",
                   "User-Agent": "smsgw-media/1"}
        if auth is not None and target.origin == first:
            headers["Authorization"] = auth if isinstance(auth, str) else \
                make_headers(basic_auth=f"{auth[0]}:{auth[1]}")["authorization"]
        pool, resp = _open(target, ip, headers, deadline, policy)
        try:
            if resp.status in _REDIRECTS and resp.headers.get("Location"):
                target = _target(resp.headers["Location"], policy, base=target.url)
                continue
            content_type = _checked_response(resp, policy, limit)
            return Fetched(content_type, _read_body(resp, limit, deadline, policy), url)
        finally:
            resp.release_conn()
            pool.close()
    raise MediaRejected(f"too many redirects (more than {policy.max_redirects})")


def _target(url: str, policy: MediaPolicy, *, base: str | None = None) -> Target:
    """``url`` parsed and on the allowlist (``base``: it came from a redirect)."""
    try:
        target = parse_target(url, base=base)
    except ValueError as exc:
        raise MediaRejected(f"bad URL: {exc}") from None
    if target.origin not in policy.origins:
        what = "redirect to a host not allowed" if base else "host not allowed"
        raise MediaRejected(f"{what}: {target.origin.display}")
    return target


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _public_address(target: Target, policy: MediaPolicy, resolve: Resolver) -> str:
    """The address to connect to; every address the name has must be public."""
    try:
        addresses = resolve(target.host, target.port)
    except OSError:
        raise MediaRejected(f"cannot resolve {target.host}") from None
    if not addresses:
        raise MediaRejected(f"cannot resolve {target.host}")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not policy.allow_private and (not ip.is_global or ip.is_multicast):
            raise MediaRejected(f"private address: {target.host} is {ip}")
    return addresses[0]


def _open(target: Target, ip: str, headers: dict[str, str], deadline: float,
          policy: MediaPolicy) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """Connect to ``ip`` itself (TLS checks the certificate against the host name)."""
    timeout = urllib3.Timeout(connect=_left(deadline, policy), read=_left(deadline, policy))
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            ip, target.port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
            ca_certs=policy.ca_certs or certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(ip, target.port, timeout=timeout, retries=False,
                                          maxsize=1)
    try:
        resp = pool.urlopen("GET", target.path, headers=headers, redirect=False, retries=False,
                            preload_content=False, decode_content=False, assert_same_host=False)
    except urllib3.exceptions.TimeoutError:
        pool.close()
        raise MediaRejected(f"timed out after {policy.timeout_s:g} s") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        pool.close()
        raise MediaRejected(f"cannot connect to {target.origin.display} "
                            f"({type(exc).__name__})") from None
    return pool, resp


def _checked_response(resp: urllib3.BaseHTTPResponse, policy: MediaPolicy, limit: int) -> str:
    """The content type, once status, type, encoding and declared length are acceptable."""
    if resp.status != 200:
        raise MediaRejected(f"bad status {resp.status}")
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in policy.allowed_types:
        raise MediaRejected(f"type not allowed: {content_type[:80] or 'none given'}")
    if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise MediaRejected("compressed transfer not supported")
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise MediaRejected(f"too large: over {limit} bytes")
    return content_type


def _read_body(resp: urllib3.BaseHTTPResponse, limit: int, deadline: float,
               policy: MediaPolicy) -> bytes:
    """The body, never more than ``limit`` + 1 bytes read, within the deadline."""
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            _set_socket_timeout(resp, _left(deadline, policy))
            chunk = resp.read1(min(_CHUNK, limit - total + 1))
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise MediaRejected(f"too large: over {limit} bytes")
            chunks.append(chunk)
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise MediaRejected(f"timed out after {policy.timeout_s:g} s") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise MediaRejected(f"download broken ({type(exc).__name__})") from None
    if total == 0:
        raise MediaRejected("empty file")
    return b"".join(chunks)


def _left(deadline: float, policy: MediaPolicy) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaRejected(f"timed out after {policy.timeout_s:g} s")
    return left


def _set_socket_timeout(resp: urllib3.BaseHTTPResponse, seconds: float) -> None:
    # The read timeout counts per recv; setting it to what is left of the deadline before
    # each read makes the deadline hold for a server that drips a byte at a time.
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def store(conn: Connection, fetched_items: Iterable[Fetched], *, retention_s: float,
          direction: str) -> list[StoredMedia]:
    """Store every attachment in one transaction, each behind a fresh 256-bit token.

    ``direction`` is ``outbound`` (CXone → Twilio) or ``inbound`` (Twilio → CXone).
    """
    if retention_s <= 0:
        raise ValueError("retention_s must be positive")
    stored = []
    with conn.transaction():
        for item in fetched_items:
            token = secrets.token_urlsafe(32)
            media_id = db_media.insert(
                conn, token=token, direction=direction, content_type=item.content_type,
                data=item.data, sha256=hashlib.sha256(item.data).hexdigest(),
                retention_s=retention_s)
            stored.append(StoredMedia(media_id, token, item.content_type, len(item.data)))
    return stored


def public_url(base_url: str, stored: StoredMedia) -> str:
    """``{base}/media/{token}{.ext}``: what Twilio or CXone is given to fetch the file."""
    return f"{base_url.rstrip('/')}/media/{stored.token}{extension(stored.content_type)}"
