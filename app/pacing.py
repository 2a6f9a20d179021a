"""Which pacing key a send counts against, and placing new sends on their slots.

A send from a number of the pool counts against that sender (SENDER_MPS); any
other send (Twilio picks the sender from the Messaging Service) against the
service (SERVICE_MPS). New sends are placed when they are enqueued, a poll page
in one statement, so the dispatcher only ever claims sends whose slot is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.config import Settings
from db import throttle
from db.pool import Connection


@dataclass(frozen=True)
class Pace:
    """The sender a send goes out from (None: Twilio picks) and the key it is paced under."""

    sender: str | None
    key: str
    spacing_s: float


def pace_for(settings: Settings, payload: dict[str, Any]) -> Pace:
    """A re-dispatch names its sender; otherwise the CXone ``from``, when it is ours."""
    wanted = payload["sender"] if "sender" in payload else payload.get("from")
    if wanted in settings.sender_numbers:
        return Pace(wanted, f"sender:{wanted}", 1.0 / settings.sender_mps)
    return Pace(None, f"service:{settings.twilio_messaging_service_sid}",
                1.0 / settings.effective_service_mps)


def place_new_sends(conn: Connection, settings: Settings,
                    jobs: list[tuple[int, dict[str, Any]]]) -> None:
    """Give just-enqueued send jobs (id, payload) their slots: run_at becomes the slot."""
    if not jobs:
        return
    spec = []
    for order, (job_id, payload) in enumerate(jobs):
        pace = pace_for(settings, payload)
        spec.append({"id": job_id, "claims": 0, "key": pace.key, "spacing": pace.spacing_s,
                     "ord": order})
    throttle.place_sends(conn, spec, hold_s=0.0, lookahead_s=0.0, take=False)
