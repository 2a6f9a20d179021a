"""The rules of the simulated Twilio account: what a create must look like,
what the carrier does to each destination, which endpoints faults can target.

Pure: no HTTP, no threads. Error codes are Twilio's (Error and Warning
Dictionary, twilio.com/docs/api/errors), checked one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sandbox.twilio_sim_model import (
    E164,
    MAGIC_TO_ERRORS,
    MAX_BODY_CHARS,
    MAX_MEDIA_URLS,
    MAX_VALIDITY_PERIOD_S,
    SERVICE_SID,
    DeliveryPlan,
    TwilioError,
)

if TYPE_CHECKING:
    from sandbox.twilio_sim import TwilioSimConfig

OUTCOMES = ("delivered", "undelivered", "failed", "no_receipt", "create_error")
CALLBACK_MODES = ("normal", "duplicate", "reorder", "drop")
# Endpoint names (as counted in /_sandbox/stats) and the fault targets that hit them.
ENDPOINTS = ("create", "fetch", "list", "update", "media")
FAULT_TARGETS: dict[str, frozenset[str]] = {
    **{name: frozenset({name}) for name in ENDPOINTS},
    "any": frozenset(ENDPOINTS),
}
DEFAULT_ERROR_CODES = {"undelivered": 30003, "failed": 30008}


@dataclass
class DestinationRule:
    """What happens to messages sent to one destination number."""

    to: str
    outcome: str = "delivered"
    error_code: int | None = None
    callbacks: str = "normal"
    delay_ms: int = 0
    create_error: dict[str, int] | None = None  # {"code": 21211, "status": 400}

    def plan(self) -> DeliveryPlan:
        code = self.error_code or DEFAULT_ERROR_CODES.get(self.outcome)
        return DeliveryPlan(self.outcome, code, self.callbacks, self.delay_ms)


def lifecycle_steps(initial: str, outcome: str) -> list[str]:
    """The statuses a message walks after ``initial`` for a carrier ``outcome``."""
    steps = ["queued"] if initial == "accepted" else []
    if outcome == "failed":
        return [*steps, "sending", "failed"]
    steps += ["sending", "sent"]
    if outcome in ("delivered", "undelivered"):
        steps.append(outcome)
    return steps


def validate_create(form: Any, config: TwilioSimConfig, rule: DestinationRule | None,
                    body: str) -> None:
    """Refuse a create request the way Twilio would (raises TwilioError).

    ``body`` is the body as it would be sent (after Smart Encoding).
    """
    to = form.get("To") or ""
    sender = form.get("From") or ""
    service = form.get("MessagingServiceSid") or ""
    media = form.getlist("MediaUrl") if hasattr(form, "getlist") else []
    if not to:
        raise TwilioError(21604)
    if not sender and not service:
        raise TwilioError(21603)
    if service and not SERVICE_SID.match(service):
        raise TwilioError(21705)
    if service and service != config.messaging_service_sid:
        raise TwilioError(21701)
    if service and not sender and not config.sender_numbers:
        raise TwilioError(21704)
    if not body and not media:
        raise TwilioError(21602)
    if len(body) > MAX_BODY_CHARS:
        raise TwilioError(21617)
    if len(media) > MAX_MEDIA_URLS:
        raise TwilioError(21623)
    if any(not _is_http_url(url) for url in media):
        raise TwilioError(21620)
    _validate_validity_period(form.get("ValidityPeriod"))
    _validate_callback_url(form.get("StatusCallback"))
    if rule is not None and rule.outcome == "create_error":
        spec = rule.create_error or {"code": 21211, "status": 400}
        raise TwilioError(int(spec["code"]), int(spec.get("status", 400)), to=to, from_=sender)
    _validate_to(to, sender)
    if sender and sender not in config.sender_numbers:
        # The simulated account owns exactly the service's pool.
        raise TwilioError(21606, from_=sender)


def _validate_to(to: str, sender: str) -> None:
    if to in MAGIC_TO_ERRORS:
        raise TwilioError(MAGIC_TO_ERRORS[to], to=to)
    if not E164.match(to):
        raise TwilioError(21211, to=to)
    if to == sender:
        raise TwilioError(21266)


def _validate_validity_period(raw: str | None) -> None:
    if not raw:
        return
    try:
        seconds = int(raw)
    except ValueError:
        raise TwilioError(21624) from None
    if not 1 <= seconds <= MAX_VALIDITY_PERIOD_S:
        raise TwilioError(21624)


def _validate_callback_url(raw: str | None) -> None:
    if raw and not _is_http_url(raw):
        raise TwilioError(21609, url=raw)


def _is_http_url(raw: str) -> bool:
    try:
        parsed = urlparse(raw)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 host
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and "\x00" not in raw
