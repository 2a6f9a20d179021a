"""Media of the Twilio simulator: fetching a create's ``MediaUrl``s, hosting inbound media.

Outbound: Twilio downloads each ``MediaUrl`` itself, after accepting the create.
The simulator does the same in the background (GET, no redirects followed, a
short timeout, at most 5 MB read) and records what it got per URL, so a test
can check the gateway handed over a URL that serves the right bytes. Only hosts
in ``media_fetch_hosts`` are fetched (loopback by default, ``*`` for any): the
sandbox never reaches the internet by accident.

Inbound: media given as bytes are hosted at Twilio's path shape
``/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}``,
behind HTTP Basic like the rest of the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox.files import generated_bytes
from sandbox.twilio_sim_model import API_VERSION, new_sid

MAX_MEDIA_BYTES = 5 * 1024 * 1024  # Twilio's limit for one MMS
USER_AGENT = "TwilioProxy/1.1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def fetch_one(url: str, timeout_s: float, allowed_hosts: tuple[str, ...]) -> dict[str, Any]:
    """GET ``url`` as Twilio would; what came back (status, type, size, sha256) or an error."""
    result: dict[str, Any] = {"url": url, "fetched_at": time.time()}
    host = urlsplit(url).hostname or ""
    if "*" not in allowed_hosts and host not in allowed_hosts:
        return {**result, "skipped": f"host {host!r} is not in media_fetch_hosts"}
    started = time.monotonic()
    try:
        with requests.get(url, allow_redirects=False, timeout=timeout_s, stream=True,
                          headers={"User-Agent": USER_AGENT}) as response:
            data = response.raw.read(MAX_MEDIA_BYTES + 1, decode_content=True)
            result.update(status=response.status_code,
                          content_type=response.headers.get("Content-Type"),
                          location=response.headers.get("Location"))
    except (requests.RequestException, OSError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    else:
        result.update(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                      too_large=len(data) > MAX_MEDIA_BYTES)
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def fetch_in_background(urls: list[str], timeout_s: float, allowed_hosts: tuple[str, ...],
                        record: Callable[[int, dict[str, Any]], None]) -> None:
    """Fetch each URL on its own thread (a greenlet under gevent); ``record(index, result)``."""
    for index, url in enumerate(urls):
        thread = threading.Thread(
            target=lambda i=index, u=url: record(i, fetch_one(u, timeout_s, allowed_hosts)),
            name="twilio-sim-media", daemon=True)
        thread.start()


@dataclass
class HostedMedia:
    sid: str
    message_sid: str
    content_type: str
    data: bytes


class MediaStore:
    """Inbound media the simulator serves; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._media: dict[str, HostedMedia] = {}

    def host(self, message_sid: str, item: dict[str, Any]) -> HostedMedia:
        """Store one media item given as ``data_base64``, ``text`` or ``size`` bytes."""
        media = HostedMedia(new_sid("ME"), message_sid, item["content_type"], media_bytes(item))
        with self._lock:
            self._media[media.sid] = media
        return media

    def get(self, message_sid: str | None, media_sid: str) -> HostedMedia | None:
        """The media ``media_sid`` (of ``message_sid`` unless None)."""
        with self._lock:
            media = self._media.get(media_sid)
        if media is None or message_sid not in (None, media.message_sid):
            return None
        return media

    def clear(self) -> None:
        with self._lock:
            self._media.clear()


def media_bytes(item: dict[str, Any]) -> bytes:
    """The bytes of an inbound media item (ValueError when they cannot be had)."""
    if item.get("data_base64") is not None:
        try:
            return base64.b64decode(item["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("media data_base64 must be base64") from None
    if item.get("text") is not None:
        return str(item["text"]).encode()
    return generated_bytes(item.get("name") or "media", int(item.get("size") or 0))


def media_url(base_url: str, account_sid: str, message_sid: str, media_sid: str) -> str:
    """Twilio's media URL shape (no extension: the bytes, not the JSON)."""
    return f"{base_url}/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}/Media/" \
           f"{media_sid}"
