"""The operations console: server-rendered pages under /console/ (on when ADMIN_TOKEN is set).

Register ``bp`` on the web app. The pages talk to the rest of the gateway only
through app.operations, app.consent and the console's own read queries
(db/console.py).
"""

from __future__ import annotations

# Importing the page modules attaches their routes to the blueprint.
from app.console import auth, consent, dead_letters, helpers, messages, overview  # noqa: F401
from app.console.gate import bp

__all__ = ["bp"]
