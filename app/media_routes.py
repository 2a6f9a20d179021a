"""``GET /media/<token>``: a stored attachment, to whoever holds its unguessable URL.

Twilio fetches outbound attachments from here (a HEAD, then a GET, checking the
Content-Type), CXone inbound ones. The token is the only credential, so it is
bounded and checked before any query, and an unknown, expired or malformed one
gets the same JSON 404. The database comes from ``current_app.extensions["services"]``.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request

from app.media_rules import extension
from db import media as db_media

bp = Blueprint("media", __name__)

# 32 to 86 URL-safe characters (secrets.token_urlsafe(32) gives 43), optional extension.
_NAME = re.compile(r"(?P<token>[A-Za-z0-9_-]{32,86})(?:\.[a-z0-9]{1,5})?")
# Twilio and CXone fetch once or twice, soon after they are given the URL.
MAX_CACHE_S = 24 * 3600


@bp.get("/media/<name>")
def serve_media(name: str) -> Response | tuple[Response, int]:
    """The file's bytes with its Content-Type (HEAD: the headers only)."""
    match = _NAME.fullmatch(name)
    if match is None:
        return _not_found()
    services = current_app.extensions["services"]
    with services.db.connection() as conn:
        media = db_media.find_live(conn, match["token"], with_data=request.method != "HEAD")
    if media is None:
        return _not_found()
    response = Response(media.data, status=200, content_type=media.content_type)
    response.headers["Content-Length"] = str(media.size)
    response.headers["Cache-Control"] = f"private, max-age={min(media.ttl_s, MAX_CACHE_S)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Twilio shows this name to the recipient: short, no spaces (its media docs).
    response.headers["Content-Disposition"] = (
        f'inline; filename="media{extension(media.content_type)}"')
    # Served from the gateway's own domain: never let a file act as a page.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _not_found() -> tuple[Response, int]:
    return jsonify({"error": "not_found", "message": "no such media, or it has expired"}), 404
