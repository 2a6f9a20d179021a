"""Consent ledger service: read the current state, record changes (with history and audit)."""

from __future__ import annotations

import logging
from typing import Any

from app import metrics
from app.logs import event
from db import audit
from db import consent as ledger
from db.pool import Connection

log = logging.getLogger(__name__)


def record_consent(conn: Connection, number: str, status: str, *, source: str,
                   evidence: dict[str, Any] | None = None) -> str | None:
    """Set ``number``'s consent; appends history and audit. Returns the previous status."""
    evidence = evidence or {}
    previous = ledger.set_status(conn, number, status, source=source, evidence=evidence)
    audit.append(conn, "consent.changed", source=source, phone=number, from_state=previous,
                 to_state=status, details=evidence)
    metrics.CONSENT_CHANGES.labels(status, source).inc()
    event(log, "consent.changed", number=number, status=status, previous=previous, source=source)
    return previous
