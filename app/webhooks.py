"""Twilio's webhooks: ``/twilio/receipts`` and ``/twilio/inbound``.

Thin: verify the signature against PUBLIC_BASE_URL + path + query (never the
proxied Host), parse, one service call in one transaction, answer at once.
A bad or missing signature answers 403 and changes nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, request
from werkzeug.datastructures import MultiDict

from app import metrics
from app.inbound import InboundText, record_inbound_text
from app.inputs import InvalidInput, canonical_phone, is_twilio_sid, text
from app.logs import event
from app.receipts import Receipt, parse_error_code, record_receipt
from app.services import current_services
from app.statuses import TWILIO_KNOWN

log = logging.getLogger(__name__)

bp = Blueprint("twilio_webhooks", __name__)

# Twilio concatenates an inbound text of up to 1,600 characters.
MAX_INBOUND_BODY = 1600
MAX_MEDIA_URL = 2048
MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9.+-]{0,63}",
                        re.ASCII)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'



def signed(endpoint: str) -> Callable[[Callable[[MultiDict[str, str]], Any]], Callable[[], Any]]:
    """Verify X-Twilio-Signature, time the request, pass the form to the view."""

    def decorate(view: Callable[[MultiDict[str, str]], Any]) -> Callable[[], Any]:
        @wraps(view)
        def wrapper() -> Any:
            started = time.perf_counter()
            status = 500
            try:
                form = request.form
                services = current_services()
                url = services.settings.public_base_url + request.path
                if request.query_string:
                    url += "?" + request.query_string.decode("latin-1")
                signature = request.headers.get("X-Twilio-Signature")
                if not services.twilio_validator.signature_is_valid(url, form, signature):
                    BAD_SIGNATURES.count(endpoint, signed=bool(signature))
                    status = 403
                    return _forbidden()
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


class BadSignatureLog:
    """Counts refused signatures and logs one line per endpoint at most every ``every_s``.

    A flood of forged requests must not become a flood of log lines.
    """

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, bool], int] = {}
        self._last_logged = 0.0

    def count(self, endpoint: str, *, signed: bool) -> None:
        now = time.monotonic()
        with self._lock:
            key = (endpoint, signed)
            self._counts[key] = self._counts.get(key, 0) + 1
            if now - self._last_logged < self.every_s:
                return
            counts, self._counts, self._last_logged = self._counts, {}, now
        by_endpoint = {f"{name}:{'signed' if was_signed else 'unsigned'}": n
                       for (name, was_signed), n in sorted(counts.items())}
        event(log, "webhook.bad_signature", logging.WARNING, count=sum(counts.values()),
              by_endpoint=by_endpoint, window_s=self.every_s)


BAD_SIGNATURES = BadSignatureLog()


def _forbidden() -> Response:
    return Response('{"error": "forbidden", "message": "invalid or missing '
                    'X-Twilio-Signature"}', status=403, mimetype="application/json")


@bp.post("/twilio/receipts")
@signed("receipts")
def receipts(form: MultiDict[str, str]) -> Response:
    """A status callback: record it (deduped, forward only) and answer 200."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not is_twilio_sid(sid):
        abort(400, description="MessageSid is missing or malformed")
    if status not in TWILIO_KNOWN:
        abort(400, description="MessageStatus is missing or unknown")
    # From is informative (the sender Twilio picked); a malformed one is ignored.
    sender = _phone_or_none(form.get("From"))
    receipt = Receipt(sid=sid, status=status, error_code=parse_error_code(form.get("ErrorCode")),
                      from_=sender)
    services = current_services()
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
    services = current_services()
    with services.db.transaction() as conn:
        record_inbound_text(conn, services.settings, text)
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


def parse_inbound(form: MultiDict[str, str]) -> InboundText:
    """The inbound webhook's fields; 400 naming the first bad one."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    if not is_twilio_sid(sid):
        abort(400, description="MessageSid is missing or malformed")
    try:
        sender = canonical_phone(form.get("From", ""), "From")
        to = canonical_phone(form.get("To", ""), "To")
        body = text(form.get("Body") or "", "Body", max_length=MAX_INBOUND_BODY)
        opt_out_type = text(form.get("OptOutType") or "", "OptOutType", max_length=20)
    except InvalidInput as exc:
        abort(400, description=str(exc))
    raw_count = form.get("NumMedia") or "0"
    if not (raw_count.isascii() and raw_count.isdigit() and len(raw_count) <= 3):
        abort(400, description="NumMedia must be a number")
    media = []
    for n in range(min(int(raw_count), 10)):
        url = form.get(f"MediaUrl{n}") or ""
        if not (url.startswith(("https://", "http://")) and len(url) <= MAX_MEDIA_URL
                and url.isprintable()):
            if url:  # never forward a file:// or otherwise odd URL; the text still counts
                event(log, "inbound.media_url_refused", logging.WARNING, sid=sid, index=n)
            continue
        content_type = form.get(f"MediaContentType{n}") or ""
        if not MEDIA_TYPE.fullmatch(content_type):
            content_type = "application/octet-stream"
        media.append({"url": url, "content_type": content_type})
    return InboundText(sid=sid, from_=sender, to=to, body=body, media=media,
                       opt_out_type=opt_out_type or None)


def _phone_or_none(value: str | None) -> str | None:
    try:
        return canonical_phone(value, "From") if value else None
    except InvalidInput:
        return None
