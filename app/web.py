"""The Flask app of the ``web`` process: webhooks, push endpoint, health, metrics, admin.

Built by :func:`app.create_app`; blueprints stay thin (verify, parse, call one
service function, answer). Every error answers JSON, never an HTML page or a
traceback.
"""

from __future__ import annotations

import io
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from app.config import Settings, load_dotenv_file
from app.logs import configure_logging, event
from app.services import Services, build_services

log = logging.getLogger(__name__)

# Twilio's webhooks are small; CXone Message JSON too. Anything larger is refused (413).
MAX_CONTENT_LENGTH = 64 * 1024


def build_app(settings: Settings | None = None, *, services: Services | None = None,
              **_: Any) -> Flask:
    """Create the app. ``services`` is the test seam (a test database, simulator URLs)."""
    if services is None:
        if settings is None:
            load_dotenv_file()
            settings = Settings.from_env()
            configure_logging(settings.log_level, process_name="web")
        services = build_services(settings, process_name="web")
    app = Flask("app")
    app.json = _JsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.wsgi_app = Admission(  # type: ignore[method-assign]
        BodyDeadline(app.wsgi_app, timeout_s=services.settings.web_body_timeout_s,
                     max_bytes=MAX_CONTENT_LENGTH),
        limit=IN_FLIGHT_PER_CONNECTION * services.db.max_size)
    app.extensions["services"] = services
    _register_blueprints(app)
    _register_error_handlers(app)
    return app


# Requests one web process works on at once, per database connection it may hold.
IN_FLIGHT_PER_CONNECTION = 4


class Admission:
    """WSGI middleware: beyond ``limit`` requests in progress, answer 503 at once.

    Under gevent every accepted connection is a greenlet, and a process offered more
    than its CPU can serve would otherwise work on all of them a little at a time:
    every answer slows down together until they all miss Twilio's 15 s. Refusing
    the excess before any work (no body read, no signature, no database) keeps the
    admitted ones fast; Twilio retries a 503. ``/healthz`` is always answered.
    """

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0  # greenlets switch only at I/O: no lock needed

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.in_flight >= self.limit and environ.get("PATH_INFO") != "/healthz":
            from app.metrics import REFUSED_BUSY

            REFUSED_BUSY.inc()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"), ("Retry-After", "1"),
                ("Connection", "close")])
            return [b'{"error": "busy", "message": "too many requests in progress; retry"}']
        self.in_flight += 1
        try:
            return self.app(environ, start_response)
        finally:
            self.in_flight -= 1


class BodyDeadline:
    """WSGI middleware: the whole request body must arrive within ``timeout_s``.

    gunicorn bounds the wait for a request's headers (its keepalive timeout) but not
    for its body: a client trickling a body could hold a connection slot for ever,
    and enough of them starve the web tier. Under gevent the body is read here, under
    a deadline, before the app sees it; a slow one gets 408 and the connection closes.
    """

    def __init__(self, app: Any, *, timeout_s: float, max_bytes: int) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
        if not chunked and length in ("", "0"):
            return self.app(environ, start_response)
        if not chunked and not (length.isdigit() and int(length) <= self.max_bytes):
            return self.app(environ, start_response)  # Flask answers 413 or 400 itself
        try:
            body = self._read(environ["wsgi.input"], int(length) if not chunked else None)
        except TimeoutError:
            start_response("408 Request Timeout", [("Content-Type", "application/json"),
                                                   ("Connection", "close")])
            return [b'{"error": "request_timeout", "message": "the body came too slowly"}']
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    def _read(self, stream: Any, length: int | None) -> bytes:
        if not _under_gevent():
            return bytes(stream.read(length if length is not None else self.max_bytes + 1))
        import gevent

        with gevent.Timeout(self.timeout_s, TimeoutError):
            if length is not None:
                return bytes(stream.read(length))
            return bytes(stream.read(self.max_bytes + 1))


def _under_gevent() -> bool:
    """True in a monkey-patched process (gunicorn's gevent workers)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


class _JsonProvider(DefaultJSONProvider):
    """ISO 8601 dates and plain numbers (Postgres numerics) in every JSON answer."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return float(o)
        return DefaultJSONProvider.default(o)


def _register_blueprints(app: Flask) -> None:
    from app.admin import bp as admin_bp
    from app.byoc import bp as byoc_bp
    from app.byoc_actions import bp as byoc_actions_bp
    from app.console import bp as console_bp
    from app.health import bp as health_bp
    from app.media_routes import bp as media_bp
    from app.push import bp as push_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(push_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(byoc_bp)
    app.register_blueprint(byoc_actions_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(console_bp)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        body = {"error": (exc.name or "error").lower().replace(" ", "_"),
                "message": exc.description or exc.name}
        return jsonify(body), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        from app.errors import DatabaseBusy, DatabaseUnavailable, RejectedByDatabase

        if isinstance(exc, DatabaseBusy):
            event(log, "web.database_busy", logging.WARNING, error=str(exc))
            return jsonify({"error": "busy", "message": "busy, try again"}), 503
        if isinstance(exc, DatabaseUnavailable):
            event(log, "web.database_unavailable", logging.ERROR, error=str(exc))
            return jsonify({"error": "unavailable", "message": "database unavailable"}), 503
        if isinstance(exc, RejectedByDatabase):
            event(log, "web.rejected_by_database", logging.WARNING, error=str(exc),
                  path=request.path)
            return jsonify({"error": "bad_request",
                            "message": "the request holds a value that cannot be stored"}), 400
        log.exception("web.unhandled_error")
        return jsonify({"error": "internal_error", "message": "internal error"}), 500
