"""What the media proxy may fetch: allowlisted origins, well-formed URLs, content types.

Origins compare exactly: scheme, host, port. Allowlist entries
(MEDIA_FETCH_ALLOWED_HOSTS): ``host`` allows HTTPS to that host
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

# Twilio, "Accepted content types for media",
# https://www.twilio.com/docs/messaging/guides/accepted-mime-types: these it formats
# (resizes) for the handset; the rest it accepts for MMS and passes on unchanged.
TWILIO_FORMATTED_TYPES = frozenset({"image/jpeg", "image/jpg", "image/gif", "image/png"})
TWILIO_ACCEPTED_TYPES = TWILIO_FORMATTED_TYPES | frozenset({
    "image/bmp", "image/tiff", "image/heic", "image/heif",
    "audio/basic", "audio/l24", "audio/mp4", "audio/mpeg", "audio/ogg", "audio/vnd.rn-realaudio",
    "audio/vnd.wave", "audio/3gpp", "audio/3gpp2", "audio/ac3", "audio/webm", "audio/amr-nb",
    "audio/amr", "audio/aac",
    "video/mpeg", "video/mp4", "video/mpeg4", "video/quicktime", "video/webm", "video/3gpp",
    "video/3gpp2", "video/3gpp-tt", "video/h261", "video/h263", "video/h263-1998",
    "video/h263-2000", "video/h264",
    "text/vcard", "text/x-vcard", "text/csv", "text/rtf", "text/richtext", "text/calendar",
    "text/directory",
    "application/pdf", "application/vcard", "application/vnd.apple.pkpass",
})

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


_EXTENSIONS = {
    "image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif",
    "image/bmp": "bmp", "image/tiff": "tiff", "image/heic": "heic", "image/heif": "heif",
    "video/mp4": "mp4", "video/mpeg": "mpeg", "video/quicktime": "mov", "video/3gpp": "3gp",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/ogg": "ogg", "audio/amr": "amr",
    "text/vcard": "vcf", "text/x-vcard": "vcf", "text/calendar": "ics", "text/csv": "csv",
    "application/pdf": "pdf",
}


def extension(content_type: str) -> str:
    """A file extension for ``content_type`` (``.jpg``), or "" when none is usual."""
    ext = _EXTENSIONS.get(content_type)
    return f".{ext}" if ext else ""
