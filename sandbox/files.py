"""Test files a simulator serves at ``/_sandbox/files/<name>`` (attachment and media URLs).

``POST /_sandbox/files`` stores one: ``{"name", "content_type", "data_base64" | "text" |
"size", "require_token"?, "ttl_s"?}`` (``size`` generates that many deterministic
bytes). The answer gives its ``url``, ``size`` and ``sha256``, so a test can
point an attachment at it and later check what a fetcher got. ``GET`` serves
the bytes with the content type (401 without the simulator's bearer token when
``require_token``; 404 once ``ttl_s`` has passed, like a short-lived link) and
logs every fetch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, request

from sandbox.control import (
    ControlError,
    RequestLog,
    answer,
    bad_request,
    int_field,
    json_body,
    str_field,
)
from sandbox.faults import FaultAction, FaultSwitches, drop_connection, run_with_faults, stamp

NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(; ?[\w-]+=[\w.\"-]+)?")
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FILES = 1000


@dataclass
class StoredFile:
    name: str
    content_type: str
    data: bytes
    require_token: bool = False
    expires_at: float | None = None
    fetches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {"name": self.name, "url": f"{base_url}/_sandbox/files/{self.name}",
                "content_type": self.content_type, "size": len(self.data),
                "sha256": self.sha256, "require_token": self.require_token,
                "expires_at": self.expires_at, "fetches": list(self.fetches)}


def generated_bytes(name: str, size: int) -> bytes:
    """``size`` bytes that depend only on ``name`` (so two runs agree)."""
    block = hashlib.sha256(name.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


class FileStore:
    """The files of one simulator; thread-safe."""

    def __init__(self, require_token_by_default: bool) -> None:
        self.require_token_by_default = require_token_by_default
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def put(self, spec: dict[str, Any], now: float) -> StoredFile:
        """Store a file from a control body (ControlError 400 on a bad one)."""
        name = str(str_field(spec, "name", required=True, max_len=128))
        if not NAME.fullmatch(name):
            raise bad_request("name must be 1-128 of A-Z a-z 0-9 . _ - (not starting with .)")
        content_type = str(str_field(spec, "content_type", "application/octet-stream",
                                     max_len=255))
        if not CONTENT_TYPE.fullmatch(content_type):
            raise bad_request("content_type must look like image/jpeg")
        require_token = spec.get("require_token", self.require_token_by_default)
        if not isinstance(require_token, bool):
            raise bad_request("require_token must be a boolean")
        ttl = int_field(spec, "ttl_s", None, 1, 86_400)
        stored = StoredFile(name, content_type, _content(spec, name), require_token,
                            None if ttl is None else now + ttl)
        with self._lock:
            if name not in self._files and len(self._files) >= MAX_FILES:
                raise bad_request(f"at most {MAX_FILES} files: reset first")
            self._files[name] = stored
        return stored

    def get(self, name: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(name)

    def note_fetch(self, stored: StoredFile, status: int, with_token: bool) -> None:
        """Log one fetch: the status answered and whether a valid token came with it."""
        with self._lock:
            stored.fetches.append({"at": stamp(), "status": status, "with_token": with_token})

    def list(self, base_url: str) -> list[dict[str, Any]]:
        with self._lock:
            return [stored.to_json(base_url) for stored in self._files.values()]

    def clear(self) -> None:
        with self._lock:
            self._files.clear()


def _content(spec: dict[str, Any], name: str) -> bytes:
    given = [key for key in ("data_base64", "text", "size") if spec.get(key) is not None]
    if len(given) != 1:
        raise bad_request("give exactly one of data_base64, text or size")
    if given[0] == "size":
        return generated_bytes(name, int_field(spec, "size", 0, 0, MAX_FILE_BYTES) or 0)
    if given[0] == "text":
        return str(str_field(spec, "text", max_len=MAX_FILE_BYTES)).encode()
    raw = str_field(spec, "data_base64", max_len=MAX_FILE_BYTES * 4 // 3 + 4)
    try:
        data = base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("data_base64 must be base64") from None
    if len(data) > MAX_FILE_BYTES:
        raise bad_request(f"a file holds at most {MAX_FILE_BYTES} bytes")
    return data


def add_file_routes(control: Blueprint, store: Callable[[], FileStore],
                    authorized: Callable[[], bool], faults: Callable[[], FaultSwitches],
                    log: Callable[[], RequestLog]) -> None:
    """``POST``/``GET /files`` and ``GET /files/<name>`` on ``control``.

    A fetch goes through the fault target ``files`` and is counted as ``files``.
    """

    def upload() -> Response:
        stored = store().put(json_body(), time.time())
        return answer(stored.to_json(_base_url()), 201)

    def listing() -> Response:
        return answer({"items": store().list(_base_url())})

    def fetch(name: str) -> Response:
        log().count("files")
        plan = faults().plan("files")
        _, response = run_with_faults(plan, lambda: _serve_file(store(), name, authorized),
                                      _fault_response)
        applied = plan.before if plan.before is not None else plan.after
        log().record("files", None if applied and applied.drop else response.status_code)
        return response

    control.add_url_rule("/files", "upload_file", upload, methods=["POST"])
    control.add_url_rule("/files", "list_files", listing, methods=["GET"])
    control.add_url_rule("/files/<name>", "fetch_file", fetch, methods=["GET"])


def _serve_file(store: FileStore, name: str, authorized: Callable[[], bool]) -> Response:
    stored = store.get(name)
    if stored is None:
        return ControlError(404, "not_found", f"no file {name!r}").response()
    token_ok = authorized()
    if stored.require_token and not token_ok:
        store.note_fetch(stored, 401, False)
        response = ControlError(401, "invalid_token", "this file needs the bearer token").response()
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    if stored.expires_at is not None and time.time() >= stored.expires_at:
        store.note_fetch(stored, 404, token_ok)
        return ControlError(404, "expired", f"file {name!r} has expired").response()
    store.note_fetch(stored, 200, token_ok)
    return Response(stored.data, status=200, mimetype=None,
                    headers={"Content-Type": stored.content_type})


def _fault_response(action: FaultAction) -> Response:
    if action.drop or action.status is None:
        return drop_connection()
    error = ControlError(action.status, "sandbox_fault",
                         f"injected by sandbox fault rule {action.rule_id}")
    response = error.response()
    response.headers.update(action.headers())
    return response


def _base_url() -> str:
    return request.host_url.rstrip("/")
