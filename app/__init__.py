"""The CXone ⇄ Twilio SMS gateway: code shared by the web and worker processes.

Nothing is built at import time, and nothing heavy is imported here, so that a
process entry point can monkey-patch with gevent before anything else loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the Flask app (gunicorn: ``'app:create_app()'``)."""
    from app.web import build_app

    return build_app(settings, **overrides)
