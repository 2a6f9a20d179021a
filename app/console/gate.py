"""The console's blueprint and the gate every console request passes.

- ADMIN_TOKEN unset: everything under /console/ is 404.
- A POST without the session's CSRF token is refused (403) before any view runs,
  so nothing is changed.
- Pages need a signed-in, unexpired session that was not signed out; otherwise
  the browser goes to the sign-in page (the overview's refresh gets a 401).
- Every answer carries a Content-Security-Policy of 'self' and is not cached.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from app.console import session as sessions
from app.console.session import ConsoleSession
from app.errors import DatabaseUnavailable
from app.logs import event
from app.services import Services
from db import console as console_q

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'")
# Views a visitor may reach without signing in.
OPEN_ENDPOINTS = frozenset({"console.login", "console.static"})
# The CSV import may be larger than the app-wide limit for webhooks.
UPLOAD_ENDPOINTS = frozenset({"console.consent_import"})
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
_NEXT = re.compile(r"/console/[A-Za-z0-9/_.%?=&+:@-]{0,300}")


def services() -> Services:
    found: Services = current_app.extensions["services"]
    return found


def clock() -> float:
    """Epoch seconds; tests put a fake clock in ``app.extensions["console_clock"]``."""
    now: float = current_app.extensions.get("console_clock", time.time)()
    return now


def session_ttl_s() -> float:
    """CONSOLE_SESSION_TTL_S (8 hours unless set)."""
    return services().settings.console_session_ttl_s


def current_session() -> ConsoleSession | None:
    found: ConsoleSession | None = g.get("console_session")
    return found


def start_session(*, signed_in: bool) -> ConsoleSession:
    """A new session (new id, new CSRF token); its cookie is set on the answer."""
    ttl = session_ttl_s() if signed_in else sessions.VISITOR_TTL_S
    started = sessions.new_session(signed_in=signed_in, now=clock(), ttl_s=ttl)
    g.console_session = started
    g.console_set_cookie = started
    return started


def end_session() -> None:
    """Sign out: this session id is refused from now on, on every web process."""
    ended = current_session()
    if ended is not None and ended.signed_in:
        with services().db.connection() as conn:
            console_q.end_session(conn, ended.session_id, ended.expires_at)
    g.console_session = None
    g.console_clear_cookie = True


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target and _NEXT.fullmatch(target) and "//" not in target and "/../" not in target:
        return target
    return url_for("console.overview")


@bp.before_request
def gate() -> Any:
    admin_token = services().settings.admin_token
    if not admin_token:
        return current_app.make_response(("", 404))  # the console is off
    if request.endpoint == "console.static":
        return None
    if request.endpoint in UPLOAD_ENDPOINTS:
        with contextlib.suppress(AttributeError):  # per-request limits need Flask >= 3.1
            request.max_content_length = MAX_UPLOAD_BYTES
    found = sessions.decode(request.cookies.get(sessions.COOKIE_NAME), admin_token, clock())
    if found is not None and found.signed_in and _was_signed_out(found):
        found = None
    g.console_session = found
    if request.method == "POST" and not sessions.csrf_matches(
            found, request.form.get("csrf_token")):
        event(log, "console.csrf_refused", logging.WARNING, endpoint=request.endpoint)
        return render_error(403, "This form has expired or did not come from the console. "
                                 "Nothing was changed; reload the page and try again.")
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return None
    if found is None or not found.signed_in:
        if request.headers.get("X-Console-Refresh"):
            return current_app.make_response(("sign in again", 401))
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=target))
    return None


def _was_signed_out(found: ConsoleSession) -> bool:
    with services().db.connection() as conn:
        return console_q.session_ended(conn, found.session_id)


@bp.after_request
def secure_answer(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    secure = request.is_secure or services().settings.public_base_url.startswith("https://")
    new: ConsoleSession | None = g.get("console_set_cookie")
    admin_token = services().settings.admin_token
    if new is not None and admin_token:
        response.set_cookie(sessions.COOKIE_NAME, sessions.encode(new, admin_token),
                            max_age=int(new.expires_at - clock()), path="/console/",
                            httponly=True, samesite="Strict", secure=secure)
    elif g.get("console_clear_cookie"):
        response.delete_cookie(sessions.COOKIE_NAME, path="/console/", httponly=True,
                               samesite="Strict", secure=secure)
    return response


@bp.context_processor
def page_context() -> dict[str, Any]:
    found = current_session()
    return {"csrf_token": found.csrf_token if found else "",
            "signed_in": bool(found and found.signed_in)}


def render_error(status: int, message: str) -> Any:
    return render_template("console/error.html", status=status, message=message), status


@bp.errorhandler(HTTPException)
def error_page(exc: HTTPException) -> Any:
    if not services().settings.admin_token:
        return current_app.make_response(("", 404))
    return render_error(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(DatabaseUnavailable)
def database_unavailable(exc: DatabaseUnavailable) -> Any:
    event(log, "console.database_unavailable", logging.ERROR, error=str(exc))
    return render_error(503, "The database is not answering; try again in a moment.")
