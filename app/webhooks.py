"""Twilio's webhooks: ``/twilio/receipts`` and ``/twilio/inbound``.

Thin: verify the signature against PUBLIC_BASE_URL + path + query (never the
proxied Host), parse, one service call in one transaction, answer at once.
A bad or missing signature answers 403 and changes nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.datastructures import MultiDict

from app import metrics
from app.config import is_e164
from app.inbound import InboundText, record_inbound_text
from app.logs import event
from app.receipts import Receipt, parse_error_code, record_receipt
from app.services import Services
from app.statuses import TWILIO_KNOWN

log = logging.getLogger(__name__)

bp = Blueprint("twilio_webhooks", __name__)

MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def _services() -> Services:
    services: Services = current_app.extensions["services"]
    return services


def signed(endpoint: str) -> Callable[[Callable[[MultiDict[str, str]], Any]], Callable[[], Any]]:
    """Verify X-Twilio-Signature, time the request, pass the form to the view."""

    def decorate(view: Callable[[MultiDict[str, str]], Any]) -> Callable[[], Any]:
        @wraps(view)
        def wrapper() -> Any:
            started = time.perf_counter()
            status = 500
            try:
                form = request.form
                services = _services()
                url = services.settings.public_base_url + request.path
                if request.query_string:
                    url += "?" + request.query_string.decode("latin-1")
                signature = request.headers.get("X-Twilio-Signature")
                if not services.twilio_validator.signature_is_valid(url, form, signature):
                    event(log, "webhook.bad_signature", logging.WARNING, endpoint=endpoint,
                          signed=bool(signature))
                    status = 403
                    abort(403, description="invalid or missing X-Twilio-Signature")
                response = view(form)
                status = response.status_code if isinstance(response, Response) else 200
                return response
            except Exception as exc:
                status = getattr(exc, "code", 500) or 500
                raise
            finally:
                metrics.WEBHOOK_SECONDS.labels(endpoint, str(status)).observe(
                    time.perf_counter() - started)

        return wrapper

    return decorate


@bp.post("/twilio/receipts")
@signed("receipts")
def receipts(form: MultiDict[str, str]) -> Response:
    """A status callback: record it (deduped, forward only) and answer 200."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not MESSAGE_SID.match(sid):
        abort(400, description="MessageSid is missing or malformed")
    if status not in TWILIO_KNOWN:
        abort(400, description="MessageStatus is missing or unknown")
    receipt = Receipt(sid=sid, status=status, error_code=parse_error_code(form.get("ErrorCode")),
                      from_=form.get("From") or None)
    services = _services()
    # One statement, unless Python must act afterwards (then one transaction).
    scope = services.db.transaction if receipt.needs_follow_up else services.db.connection
    with scope() as conn:
        result = record_receipt(conn, services.settings, receipt)
    event(log, "receipt.received", logging.DEBUG, sid=sid, status=status,
          error_code=receipt.error_code, result=result)
    return Response("", status=200)


@bp.post("/twilio/inbound")
@signed("inbound")
def inbound(form: MultiDict[str, str]) -> Response:
    """A customer's text: record it and answer empty TwiML at once."""
    text = parse_inbound(form)
    services = _services()
    with services.db.transaction() as conn:
        record_inbound_text(conn, services.settings, text)
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


def parse_inbound(form: MultiDict[str, str]) -> InboundText:
    """The inbound webhook's fields; 400 naming the first bad one."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    if not MESSAGE_SID.match(sid):
        abort(400, description="MessageSid is missing or malformed")
    sender, to = form.get("From", ""), form.get("To", "")
    if not is_e164(sender):
        abort(400, description="From must be an E.164 number")
    if not is_e164(to):
        abort(400, description="To must be an E.164 number")
    try:
        num_media = min(int(form.get("NumMedia") or 0), 10)
    except ValueError:
        abort(400, description="NumMedia must be a number")
    media = []
    for n in range(num_media):
        url = form.get(f"MediaUrl{n}")
        if url:
            media.append({"url": url,
                          "content_type": form.get(f"MediaContentType{n}") or
                          "application/octet-stream"})
    return InboundText(sid=sid, from_=sender, to=to, body=form.get("Body") or "", media=media,
                       opt_out_type=form.get("OptOutType") or None)
