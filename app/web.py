"""The Flask app of the ``web`` process: webhooks, push endpoint, health, metrics, admin.

Built by :func:`app.create_app`; blueprints stay thin (verify, parse, call one
service function, answer). Every error answers JSON, never an HTML page or a
traceback.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, jsonify
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
    app.extensions["services"] = services
    _register_blueprints(app)
    _register_error_handlers(app)
    return app


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
    from app.console import bp as console_bp
    from app.health import bp as health_bp
    from app.push import bp as push_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(push_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(console_bp)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        body = {"error": (exc.name or "error").lower().replace(" ", "_"),
                "message": exc.description or exc.name}
        return jsonify(body), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        from app.errors import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            event(log, "web.database_unavailable", logging.ERROR, error=str(exc))
            return jsonify({"error": "unavailable", "message": "database unavailable"}), 503
        log.exception("web.unhandled_error")
        return jsonify({"error": "internal_error", "message": "internal error"}), 500
