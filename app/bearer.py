"""Bearer-token gates for the push endpoint and the admin API."""

from __future__ import annotations

import hmac
from typing import Any

from flask import abort, jsonify, request


def bearer_matches(header: str | None, expected: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <expected>``."""
    scheme, _, token = (header or "").partition(" ")
    candidate = token.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(candidate.encode(), expected.encode())


def require_bearer(expected: str | None, realm: str) -> Any:
    """404 when the feature is off (no token configured); a 401 answer, or None when allowed."""
    if not expected:
        abort(404)
    if bearer_matches(request.headers.get("Authorization"), expected):
        return None
    return unauthorized(realm)


def unauthorized(realm: str) -> Any:
    """The 401 answer: JSON, with ``WWW-Authenticate: Bearer`` naming the realm."""
    response = jsonify({"error": "unauthorized", "message": "bearer token required"})
    response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    return response, 401
