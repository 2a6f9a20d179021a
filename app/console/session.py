"""Console sessions: a signed cookie that carries the session's id, CSRF token and expiry.

The signing key is HMAC-SHA256(ADMIN_TOKEN, a fixed label): every web process
derives the same key with no shared state, and rotating ADMIN_TOKEN ends every
session at once. Nothing secret is in the cookie (it is signed, not encrypted):
a random session id, a random CSRF token, whether the visitor signed in, and
when it expires. Pure functions; the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE_NAME = "smsgw_console"
# How long a sign-in lasts unless CONSOLE_SESSION_TTL_S says otherwise (a working day).
DEFAULT_SESSION_TTL_S = 8 * 3600.0
# A visitor who has not signed in only holds the sign-in form's CSRF token.
VISITOR_TTL_S = 3600.0
_KEY_LABEL = b"smsgw console session v1"
_MAX_COOKIE_CHARS = 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


@dataclass(frozen=True)
class ConsoleSession:
    """One browser's session; ``signed_in`` is False for the sign-in form's visitor."""

    session_id: str
    csrf_token: str
    signed_in: bool
    expires_at: float


def signing_key(admin_token: str) -> bytes:
    """The cookie signing key: derived from ADMIN_TOKEN, never the token itself."""
    return hmac.new(admin_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def new_session(*, signed_in: bool, now: float, ttl_s: float) -> ConsoleSession:
    """A fresh session with a new id and CSRF token (a sign-in never reuses the old ones)."""
    return ConsoleSession(session_id=secrets.token_urlsafe(18),
                          csrf_token=secrets.token_urlsafe(24),
                          signed_in=signed_in, expires_at=now + ttl_s)


def encode(session: ConsoleSession, admin_token: str) -> str:
    """The cookie value."""
    return str(_serializer(admin_token).dumps({
        "s": session.session_id, "c": session.csrf_token, "in": session.signed_in,
        "exp": round(session.expires_at, 3)}))


def decode(value: str | None, admin_token: str, now: float) -> ConsoleSession | None:
    """The session a cookie holds; None when absent, tampered with, malformed or expired."""
    if not value or len(value) > _MAX_COOKIE_CHARS:
        return None
    try:
        data: Any = _serializer(admin_token).loads(value)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    sid, csrf, signed_in, expires = (data.get(k) for k in ("s", "c", "in", "exp"))
    if not (isinstance(sid, str) and _TOKEN.fullmatch(sid) and isinstance(csrf, str)
            and _TOKEN.fullmatch(csrf) and isinstance(signed_in, bool)
            and isinstance(expires, int | float) and not isinstance(expires, bool)):
        return None
    if expires <= now:
        return None
    return ConsoleSession(session_id=sid, csrf_token=csrf, signed_in=signed_in,
                          expires_at=float(expires))


def csrf_matches(session: ConsoleSession | None, submitted: str | None) -> bool:
    """Constant-time check of a form's ``csrf_token`` against the session's."""
    if session is None or not submitted or len(submitted) > 128:
        return False
    return hmac.compare_digest(submitted.encode(), session.csrf_token.encode())


def token_matches(submitted: str | None, admin_token: str) -> bool:
    """Constant-time check of the token typed at sign-in."""
    if not submitted or len(submitted) > 1024:
        return False
    return hmac.compare_digest(submitted.strip().encode(), admin_token.encode())


def _serializer(admin_token: str) -> URLSafeSerializer:
    return URLSafeSerializer(signing_key(admin_token), salt="smsgw-console-session")
