"""Attachment URLs and the fetch allowlist, compared as exact origins (scheme, host, port).

Allowlist entries (MEDIA_FETCH_ALLOWED_HOSTS): ``host`` allows HTTPS to that host
on port 443 only (an explicit ``:443`` in a URL is the same thing); ``host:port``
allows HTTPS on exactly that port; ``http://host[:port]`` allows plain HTTP
(port 80 by default) and is meant for tests and local simulators. Host names
compare case-insensitively, without a trailing dot; no wildcards.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_CHARS = 4096
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# Kept as they are in a path or query; anything else (spaces, non-ASCII) is %-encoded.
_URL_SAFE = "/?&=%:@!$'()*+,;-._~"


@dataclass(frozen=True)
class Origin:
    """Scheme, canonical host (IPv6 without brackets) and port."""

    scheme: str
    host: str
    port: int

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """For reasons and logs: ``host:port``, ``http://`` in front for plain HTTP."""
        return ("http://" if self.scheme == "http" else "") + self.host_port


@dataclass(frozen=True)
class Target:
    """A URL to fetch, split for a connection to a resolved address."""

    url: str
    origin: Origin
    path: str  # path and query, %-encoded

    @property
    def scheme(self) -> str:
        return self.origin.scheme

    @property
    def host(self) -> str:
        return self.origin.host

    @property
    def port(self) -> int:
        return self.origin.port

    @property
    def host_header(self) -> str:
        if self.port == DEFAULT_PORTS[self.scheme]:
            return self.origin.host_port.rsplit(":", 1)[0]
        return self.origin.host_port


def parse_allowed(entries: Iterable[str]) -> frozenset[Origin]:
    """The origins ``entries`` allow; ValueError naming a malformed entry."""
    origins = set()
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        scheme = "https"
        for prefix in ("http://", "https://"):
            if text.lower().startswith(prefix):
                scheme, text = prefix[:-3], text[len(prefix):]
        try:
            parts = urlsplit("//" + text)
            port = parts.port or DEFAULT_PORTS[scheme]
            if parts.path or parts.query or parts.fragment or parts.username is not None:
                raise ValueError("has more than host and port")
            host = canonical_host(parts.hostname or "")
        except ValueError as exc:
            raise ValueError(f"allowed media host {entry!r} is not host or host:port "
                             f"({exc})") from None
        origins.add(Origin(scheme, host, port))
    return frozenset(origins)


def canonical_host(host: str) -> str:
    """Lower case, no trailing dot, an IP address in its usual form; ValueError otherwise."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"bad host name {host[:80]!r}")
    return host


def parse_target(url: str, *, base: str | None = None) -> Target:
    """``url`` (relative to ``base``, as a Location header may be); ValueError with a reason."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise ValueError("empty or longer than 4096 characters")
    if base is not None:
        url = urljoin(base, url)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("not http or https")
    if parts.username is not None or "@" in parts.netloc:
        raise ValueError("credentials in the URL")
    host = canonical_host(parts.hostname or "")
    port = parts.port or DEFAULT_PORTS[scheme]
    path = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_URL_SAFE)
    return Target(url=url, origin=Origin(scheme, host, port), path=path)
