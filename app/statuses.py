"""The status state machine and the Twilio → CXone mapping (pure, no I/O).

Twilio status callbacks arrive late, twice and out of order; a status only
ever moves forward. Only final Twilio statuses produce a CXone update, and a
CXone status never moves backwards either.
"""

from __future__ import annotations

from app.cxone import StatusReport

# Twilio message statuses in lifecycle order (same rank = same stage).
_TWILIO_RANK = {
    "accepted": 0, "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4,
}
TWILIO_FINAL = frozenset({"delivered", "undelivered", "failed", "canceled"})
TWILIO_KNOWN = frozenset(_TWILIO_RANK) | {"receiving", "received", "partially_delivered"}

CXONE_FINAL = frozenset({"DELIVERED", "FAILED", "UNDELIVERABLE"})
_CXONE_RANK = {"PENDING": 0, "SENT": 1, "DELIVERED": 2, "FAILED": 2, "UNDELIVERABLE": 2}

# Twilio errors after which the message is re-dispatched (from another sender) rather
# than reported: carrier throttling (seed edge case 1) and 10DLC rate limits.
REDISPATCH_ERRORS = frozenset({30008, 30022})

# Create-time errors that are final for the message (contract: error codes table).
OPT_OUT_ERROR = 21610

ERROR_MESSAGES = {
    20429: "Too many requests",
    21211: "Invalid 'To' phone number",
    21408: "Permission to send an SMS has not been enabled for the region",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered by carrier",
    30008: "Unknown error",
    30022: "US A2P 10DLC rate limits exceeded",
}


def twilio_rank(status: str) -> int:
    """Lifecycle rank of a Twilio status; unknown statuses rank below everything.

    A status is applied only when its rank is higher than the message's current one
    and the current one is not final (smsgw_apply_receipt does that with these values).
    """
    return _TWILIO_RANK.get(status, -1)


def is_final(status: str) -> bool:
    """A final Twilio status: the message's story at Twilio ends here."""
    return status in TWILIO_FINAL


def cxone_moves_forward(current: str | None, new: str) -> bool:
    """True when pushing ``new`` to CXone would not move the message backwards."""
    if current in CXONE_FINAL:
        return False
    return _CXONE_RANK.get(new, -1) > _CXONE_RANK.get(current or "PENDING", 0)


def error_message(code: int | None) -> str:
    """A short human description of a Twilio error code."""
    if code is None:
        return "Unknown error"
    return ERROR_MESSAGES.get(code, f"Twilio error {code}")


def report_for_final(status: str, error_code: int | None) -> StatusReport | None:
    """What CXone hears when a final Twilio status ends a message (None: not final)."""
    if status == "delivered":
        return StatusReport("DELIVERED")
    if status == "undelivered":
        return StatusReport("UNDELIVERABLE", _code(error_code), error_message(error_code))
    if status == "failed":
        return StatusReport("FAILED", _code(error_code), error_message(error_code))
    if status == "canceled":
        return StatusReport("FAILED", _code(error_code) or "canceled",
                            error_message(error_code) if error_code else "Message canceled")
    return None


def failed_report(code: int | str | None, message: str) -> StatusReport:
    """FAILED for a message the gateway could not (or would not) send."""
    return StatusReport("FAILED", None if code is None else str(code), message)


# What CXone hears once a message was handed to Twilio (Open Messaging: SENT; DFO: nothing).
SENT = "SENT"


def should_redispatch(status: str, error_code: int | None) -> bool:
    """``failed`` with 30008/30022 is not final: send again later from another sender."""
    return status == "failed" and error_code in REDISPATCH_ERRORS


def _code(error_code: int | None) -> str | None:
    return None if error_code is None else str(error_code)
