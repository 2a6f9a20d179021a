"""The BYOC form's admin actions: Add (connect one of our numbers as a new channel),
Reconnect and Remove (CXONE_MODE=dfo; docs/contracts/cxone-dfo.md "Admin actions").

Add: CXone opens ``/byoc/actions/add`` with a one-time token; we verify it with DFO,
keep the access token it gives server-side under a random nonce, show a small page
to pick the number and name, create the channel with DFO, store the mapping and send
the admin back to ``backUrl``. A bad or used token shows an error page and stores
nothing.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, Response, redirect, render_template_string, request

from app.cxone.dfo import Dfo
from app.errors import GatewayError
from app.inputs import InvalidInput, canonical_phone, external_id, text
from app.logs import event
from app.services import current_services
from db import dfo

log = logging.getLogger(__name__)

bp = Blueprint("byoc_actions", __name__, url_prefix="/byoc/actions")

PENDING_TTL_S = 900.0
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:1rem 0 .3rem}input,select{font-size:1rem;padding:.3rem;width:100%}
button{margin-top:1.2rem;font-size:1rem;padding:.4rem 1rem}.error{color:#a40000}</style>
</head><body><h1>{{ title }}</h1>
{% if error %}<p class="error">{{ error }}</p>
{% else %}<p>Connect one of this gateway's Twilio numbers to CXone brand
<strong>{{ brand }}</strong> as a new SMS channel.</p>
<form method="post" action="add">
<input type="hidden" name="nonce" value="{{ nonce }}">
<label for="number">Twilio number</label>
<select id="number" name="number">{% for n in numbers %}<option>{{ n }}</option>{% endfor %}
</select>
<label for="name">Channel name</label>
<input id="name" name="name" maxlength="80" value="SMS {{ numbers[0] if numbers else '' }}">
<button type="submit">Create channel</button></form>{% endif %}
</body></html>"""


@bp.before_request
def dfo_mode_only() -> Any:
    if current_services().settings.cxone_mode != "dfo":
        return _page("Not available", "This gateway does not run in DFO mode.", 404)
    return None


@bp.get("/add")
def add_page() -> Any:
    """Verify the one-time token, then show the page that creates the channel."""
    args = request.args
    try:
        brand_id = external_id(args.get("brandId"), "brandId")
        user_id = external_id(args.get("userId"), "userId")
        token = text(args.get("token") or "", "token", max_length=2000, allow_empty=False)
        back_url = _back_url(args.get("backUrl"))
    except InvalidInput as exc:
        return _page("Cannot add a channel", f"The link is incomplete: {exc}.", 400)
    services = current_services()
    try:
        verified = _dfo().verify_one_time_token(brand_id=brand_id, user_id=user_id,
                                                token=token)
    except GatewayError as exc:
        event(log, "byoc.add_refused", logging.WARNING, error=str(exc)[:200])
        return _page("Cannot add a channel", "CXone did not accept this link (it may have "
                     "been used already or expired). Start again from the CXone form.", 400)
    access_token = verified.get("accessToken")
    if not isinstance(access_token, str) or not access_token:
        return _page("Cannot add a channel", "CXone's answer held no access token.", 502)
    nonce = secrets.token_urlsafe(24)
    with services.db.connection() as conn:
        dfo.save_pending_add(conn, nonce=nonce, access_token=access_token, brand_id=brand_id,
                             user_id=user_id, back_url=back_url, ttl_s=PENDING_TTL_S)
    brand: dict[str, Any] = verified["brand"] if isinstance(verified.get("brand"), dict) \
        else {}
    return _page("Add an SMS channel", None, 200, nonce=nonce,
                 brand=str(brand.get("friendlyName") or brand_id)[:80],
                 numbers=services.settings.our_numbers)


@bp.post("/add")
def add_channel() -> Any:
    """Create the channel with DFO, store which number serves it, go back to CXone."""
    services = current_services()
    form = request.form
    try:
        nonce = external_id(form.get("nonce"), "nonce")
        number = canonical_phone(form.get("number"), "number")
        name = text(form.get("name") or "", "name", max_length=80) or f"SMS {number}"
    except InvalidInput as exc:
        return _page("Cannot add a channel", str(exc), 400)
    if number not in services.settings.our_numbers:
        return _page("Cannot add a channel", "That is not one of this gateway's numbers.", 400)
    with services.db.connection() as conn:
        pending = dfo.take_pending_add(conn, nonce)
    if pending is None:
        return _page("Cannot add a channel", "This page expired or was used already. Start "
                     "again from the CXone form.", 400)
    channel_id = f"sms-{number.lstrip('+')}-{secrets.token_hex(3)}"
    body = {"id": channel_id, "idOnExternalPlatform": number,
            "channelIntegrationId": services.settings.byoc_client_id or "smsgw",
            "realExternalPlatformId": "sms", "name": name, "isPrivate": True,
            "hasTreeStructure": False}
    try:
        _dfo().create_channel(pending["access_token"], body)
    except GatewayError as exc:
        event(log, "byoc.channel_create_failed", logging.WARNING, error=str(exc)[:200])
        return _page("Cannot add a channel", "CXone refused to create the channel; nothing "
                     "was stored. Start again from the CXone form.", 502)
    with services.db.connection() as conn:
        dfo.add_channel(conn, channel_id=channel_id, number=number, name=name,
                        brand_id=pending["brand_id"])
    event(log, "byoc.channel_added", channel_id=channel_id, number=number)
    return redirect(pending["back_url"], code=302)


@bp.post("/reconnect")
def reconnect() -> Any:
    return {"status": "ok"}


@bp.post("/remove")
def remove() -> Any:
    return {"status": "ok"}


def _dfo() -> Dfo:
    cxone = current_services().cxone
    assert isinstance(cxone, Dfo)  # dfo_mode_only saw to it
    return cxone


def _back_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) \
            or len(value) > 2048 or not value.isprintable():
        raise InvalidInput("backUrl", "must be an http(s) URL")
    return value


def _page(title: str, error: str | None, status: int, **context: Any) -> Response:
    html = render_template_string(PAGE, title=title, error=error, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:")
    response.headers["X-Frame-Options"] = "DENY"
    return response
