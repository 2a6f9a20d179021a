"""Sign in with the admin token, sign out."""

from __future__ import annotations

import logging
from typing import Any

from flask import redirect, render_template, request, url_for

from app.console import session as sessions
from app.console.gate import (
    bp,
    current_session,
    end_session,
    safe_next,
    services,
    start_session,
)
from app.logs import event

log = logging.getLogger(__name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """GET: the form (a visitor's session holds its CSRF token). POST: check the token."""
    target = request.values.get("next")
    found = current_session()
    if request.method == "GET":
        if found is not None and found.signed_in:
            return redirect(safe_next(target))
        if found is None:
            start_session(signed_in=False)
        return render_template("console/login.html", next=target,
                               signed_out=request.args.get("signed_out") == "1")
    admin_token = services().settings.admin_token or ""
    if not sessions.token_matches(request.form.get("token"), admin_token):
        event(log, "console.sign_in_refused", logging.WARNING, remote=request.remote_addr)
        return render_template("console/login.html", next=target,
                               error="That is not the admin token."), 200
    start_session(signed_in=True)
    event(log, "console.signed_in", remote=request.remote_addr)
    return redirect(safe_next(target), 303)


@bp.post("/logout")
def logout() -> Any:
    end_session()
    event(log, "console.signed_out", remote=request.remote_addr)
    return redirect(url_for("console.login", signed_out="1"), 303)
