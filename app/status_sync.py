"""Queue CXone status updates. One job per CXone message pushes its updates in order."""

from __future__ import annotations

from datetime import datetime

from app.statuses import CxoneUpdate
from db import cxone_state
from db.pool import Connection

# The job kind; its dedupe key is "cxone_status:<message id>" (smsgw_queue_cxone_update).
CXONE_STATUS_KIND = "cxone_status"


def enqueue_cxone_update(conn: Connection, message_id: str, update: CxoneUpdate, *,
                         external_id: str | None = None,
                         receipt_at: datetime | None = None) -> None:
    """Record an update for CXone and make sure the message's status job will run."""
    cxone_state.queue_update(
        conn, message_id, update.status, reason_code=update.reason_code,
        reason_message=update.reason_message, external_id=external_id, receipt_at=receipt_at)
