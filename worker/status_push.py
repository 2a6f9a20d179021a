"""The CXone status job: push a message's pending status reports, in order, forward only.

One job per message (app/jobs.py StatusJob), so its reports never race each
other. A failed push retries this job alone: it never re-sends the SMS. NotFound
and Conflict are final answers, logged and recorded. The CXone port decides the
wire format (and whether its dialect has anything to say for a status at all).
"""

from __future__ import annotations

import logging
from typing import Any

from app import metrics
from app.cxone import StatusReport
from app.errors import Conflict, NotFound
from app.jobs import StatusJob
from app.logs import event
from app.statuses import cxone_moves_forward
from db import cxone_state
from db.outbox import Job
from worker.jobs import Done, JobContext, Outcome, wait_for_call_turn

log = logging.getLogger(__name__)


def handle_cxone_status(ctx: JobContext, job: Job) -> Outcome:
    """Push every pending report of one message (kind ``cxone_status``)."""
    message_id = StatusJob.from_payload(job.payload).message_id
    with ctx.db.connection() as conn:
        pending = cxone_state.pending_status_updates(conn, message_id)
    current = pending[0]["current_status"] if pending else None
    for row in pending:
        if not cxone_moves_forward(current, row["status"]):
            _finish(ctx, row, "skipped", current)
            continue
        wait = wait_for_call_turn(ctx, row["thread_id"])
        if wait is not None:
            return wait  # the rest of the reports stay pending
        try:
            said = ctx.services.cxone.report_status(message_id, _report(row),
                                                    channel_id=row["channel_id"])
        except NotFound:
            _finish(ctx, row, "not_found", current)
            event(log, "cxone.update_not_found", logging.WARNING, message_id=message_id,
                  status=row["status"])
            continue
        except Conflict:
            _finish(ctx, row, "conflict", current)
            event(log, "cxone.update_conflict", message_id=message_id, status=row["status"])
            continue
        except Exception:
            metrics.CXONE_UPDATES.labels(row["status"], "retry").inc()
            raise
        current = row["status"]
        _finish(ctx, row, "pushed" if said else "not_needed", current)
    return Done()


def _report(row: dict[str, Any]) -> StatusReport:
    return StatusReport(status=row["status"], reason_code=row["reason_code"],
                        reason_message=row["reason_message"], external_id=row["external_id"],
                        at=row["receipt_at"] or row["created_at"])


def _finish(ctx: JobContext, row: dict[str, Any], outcome: str, previous: str | None) -> None:
    with ctx.db.connection() as conn:
        cxone_state.finish_status_update(conn, row, outcome, previous)
    metrics.CXONE_UPDATES.labels(row["status"], outcome).inc()
    if outcome == "pushed":
        event(log, "cxone.status_pushed", message_id=row["cxone_message_id"],
              status=row["status"])
