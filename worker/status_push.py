"""The CXone status job: push a message's pending status updates, in order, forward only.

One job per CXone message (dedupe key ``cxone_status:<id>``), so its updates
never race each other. A failed PUT retries this job alone: it never re-sends
the SMS. 404 and 409 are final answers, logged and recorded.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from app import metrics
from app.errors import Conflict, NotFound
from app.logs import event
from app.statuses import cxone_moves_forward
from db import cxone_state
from db.outbox import Job
from worker.jobs import Done, JobContext, Outcome

log = logging.getLogger(__name__)


def handle_cxone_status(ctx: JobContext, job: Job) -> Outcome:
    """Push every pending update of one message (kind ``cxone_status``)."""
    message_id = job.payload["message_id"]
    with ctx.db.connection() as conn:
        pending = cxone_state.pending_status_updates(conn, message_id)
    current = pending[0]["current_status"] if pending else None
    for update in pending:
        if not cxone_moves_forward(current, update["status"]):
            _finish(ctx, update, "skipped", current)
            continue
        try:
            ctx.services.cxone.update_status(message_id, put_body(update))
        except NotFound:
            _finish(ctx, update, "not_found", current)
            event(log, "cxone.update_not_found", logging.WARNING, message_id=message_id,
                  status=update["status"])
            continue
        except Conflict:
            _finish(ctx, update, "conflict", current)
            event(log, "cxone.update_conflict", message_id=message_id, status=update["status"])
            continue
        except Exception:
            metrics.CXONE_UPDATES.labels(update["status"], "retry").inc()
            raise
        current = update["status"]
        _finish(ctx, update, "pushed", current)
    return Done()


def put_body(update: dict[str, Any]) -> dict[str, Any]:
    """The PUT body for one update (contract: SENT carries externalId; failures a reason)."""
    status = update["status"]
    body: dict[str, Any] = {"status": status}
    if status == "SENT":
        if update["external_id"]:
            body["externalId"] = update["external_id"]
        return body
    receipt_at = update["receipt_at"] or update["created_at"]
    body["deliveryReceipt"] = {"status": status,
                               "timestamp": receipt_at.astimezone(UTC).strftime(
                                   "%Y-%m-%dT%H:%M:%SZ")}
    if status in ("FAILED", "UNDELIVERABLE"):
        body["reason"] = {"code": str(update["reason_code"] or "unknown"),
                          "message": update["reason_message"] or "Message not delivered"}
    return body


def _finish(ctx: JobContext, update: dict[str, Any], outcome: str, previous: str | None) -> None:
    with ctx.db.connection() as conn:
        cxone_state.finish_status_update(conn, update, outcome, previous)
    metrics.CXONE_UPDATES.labels(update["status"], outcome).inc()
    if outcome == "pushed":
        event(log, "cxone.status_pushed", message_id=update["cxone_message_id"],
              status=update["status"])
