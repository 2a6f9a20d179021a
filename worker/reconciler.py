"""The reconciler (seed edge cases 2 and 3): repair what callbacks and status updates missed.

One worker at a time (advisory lock), on an interval, and on demand
(``smsgw reconcile``):

- a SENT message with no final receipt after RECONCILE_SENT_AFTER_S: fetch it
  from Twilio and apply what Twilio says exactly as a receipt would;
- no final receipt after RECEIPT_MAX_AGE_S: end in an explicit ``no_receipt``;
- a CXone message still PENDING after RECONCILE_PENDING_AFTER_S (its own query;
  the poller's cursor is never touched): if we sent it, push its true status;
  if we never saw it, enqueue it (dedupe keeps that safe);
- receipts kept while their SID was unknown are applied once it is known.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from app import metrics
from app.cxone import InvalidReply, OutboundReply, StatusReport
from app.errors import NotFound
from app.logs import event
from app.outbound import enqueue_replies, reject_reply
from app.receipts import Receipt, apply_pending_receipts, record_receipt
from app.services import Services
from app.status_sync import queue_report
from app.statuses import CXONE_FINAL, SENT, report_for_final
from db import audit, cxone_state, messages, ops, outbox
from db import reconcile as q
from db.pool import Connection
from worker.jobs import JobContext
from worker.leader import run_as_leader

log = logging.getLogger(__name__)

BATCH = 200
PENDING_PAGES_MAX = 20


def interval_s(services: Services) -> float:
    """How often to reconcile: a fifth of the shorter threshold, within 1 to 60 s."""
    s = services.settings
    return max(1.0, min(60.0, min(s.reconcile_sent_after_s, s.reconcile_pending_after_s) / 5))


def run_reconciler(ctx: JobContext) -> None:
    """Reconcile on an interval while this worker holds the reconciler role.

    It starts one interval late: at start-up the poller catches up first.
    """

    def step(_conn: Connection) -> float:
        reconcile_once(ctx.services)
        return interval_s(ctx.services)

    run_as_leader(ctx, "reconciler", step, first_delay_s=interval_s(ctx.services),
                  events="reconcile")


def reconcile_once(services: Services) -> dict[str, Any]:
    """One full pass; returns what it did (also stored in reconciler_runs)."""
    with services.db.connection() as conn:
        started_at = ops.now(conn)
    result: dict[str, Any] = {}
    result["receipts_applied"] = _apply_stranded_receipts(services)
    result.update(_check_stale_sent(services))
    result["no_receipt"] = _expire_no_receipt(services)
    result.update(_check_cxone_pending(services))
    with services.db.connection() as conn:
        q.record_run(conn, "reconciler", started_at, result)
    if any(result.values()):
        event(log, "reconcile.done", **result)
    return result


def _apply_stranded_receipts(services: Services) -> int:
    applied = 0
    with services.db.connection() as conn:
        sids = q.stranded_receipts(conn, BATCH)
    for sid in sids:
        with services.db.transaction() as conn:
            messages.lock_sid(conn, sid)
            applied += apply_pending_receipts(conn, services.settings, sid)
    return applied


def _check_stale_sent(services: Services) -> dict[str, int]:
    """Ask Twilio about messages still waiting for their receipt; apply the answer."""
    settings = services.settings
    with services.db.connection() as conn:
        stale = q.stale_sent(conn, settings.reconcile_sent_after_s, BATCH)
    checked = updated = 0
    for row in stale:
        sid = row["twilio_message_sid"]
        try:
            truth = services.twilio.fetch_message(sid)
        except NotFound:
            truth = None
        checked += 1
        with services.db.transaction() as conn:
            q.mark_reconciled(conn, row["cxone_message_id"])
            if truth is None:
                event(log, "reconcile.sid_unknown_at_twilio", logging.WARNING, sid=sid)
                continue
            result = record_receipt(conn, settings, Receipt(
                sid=sid, status=truth.status, error_code=truth.error_code, from_=truth.from_,
                source="reconcile"))
        if result not in ("duplicate", "stale"):
            updated += 1
            event(log, "reconcile.receipt_applied", sid=sid, status=truth.status, result=result)
    return {"sent_checked": checked, "sent_updated": updated}


def _expire_no_receipt(services: Services) -> int:
    with services.db.transaction() as conn:
        expired = q.expire_no_receipt(conn, services.settings.receipt_max_age_s)
        for row in expired:
            audit.append(conn, "message.no_receipt", source="reconcile",
                         message_id=row["cxone_message_id"], sid=row["twilio_message_sid"],
                         from_state=row["twilio_status"], to_state="no_receipt",
                         reason="no final receipt within RECEIPT_MAX_AGE_S")
    for row in expired:
        metrics.SENDS.labels("no_receipt", "").inc()
        event(log, "message.no_receipt", logging.WARNING, message_id=row["cxone_message_id"],
              sid=row["twilio_message_sid"], last_status=row["twilio_status"])
    return len(expired)


def _check_cxone_pending(services: Services) -> dict[str, int]:
    """CXone messages still PENDING: push what we know, or enqueue what we never saw."""
    with services.db.connection() as conn:
        db_now = ops.now(conn)
    before = db_now - timedelta(seconds=services.settings.reconcile_pending_after_s)
    counts = {"pending_seen": 0, "pending_enqueued": 0, "pending_repushed": 0}
    if not services.cxone.polls:
        return counts  # a dialect without a feed (DFO) has nothing to look up
    cursor = None
    for _ in range(PENDING_PAGES_MAX):
        page = services.cxone.find_stale(before, cursor)
        counts["pending_seen"] += page.size
        for reply in page.replies:
            outcome = _reconcile_pending(services, reply.message_id, reply)
            if outcome in ("enqueued", "repushed"):
                counts[f"pending_{outcome}"] += 1
        for refused in page.refused:
            if refused.message_id:
                _reconcile_pending(services, refused.message_id, refused)
        if page.size < 100 or not page.cursor:
            break
        cursor = page.cursor
    return counts


def _reconcile_pending(services: Services, message_id: str,
                       found: OutboundReply | InvalidReply) -> str:
    with services.db.transaction() as conn:
        job = outbox.get_by_dedupe_key(conn, message_id)
        mapped = messages.state_of_message(conn, message_id)
        if job is None and mapped is None:
            if isinstance(found, InvalidReply):
                reject_reply(conn, found, source="reconcile")
            else:
                enqueue_replies(conn, services.settings, [found], source="reconcile")
            event(log, "reconcile.enqueued_missed", message_id=message_id)
            return "enqueued"
        history = q.status_updates_of(conn, message_id)
        if any(u["finished_at"] is None for u in history):
            return "in_progress"  # an update is on its way
        truth = _true_reports(mapped, history)
        if not truth:
            return "in_progress"  # still being sent (or dead-lettered: the operator's call)
        # CXone says PENDING whatever we believed it had: push the truth again, in order.
        cxone_state.set_cxone_status(conn, message_id, "PENDING")
        for report in truth:
            queue_report(conn, message_id, report)
        audit.append(conn, "reconcile.repushed", source="reconcile", message_id=message_id,
                     from_state="PENDING", to_state=truth[-1].status)
    event(log, "reconcile.repushed", message_id=message_id, status=truth[-1].status)
    return "repushed"


def _true_reports(mapped: dict[str, Any] | None,
                  history: list[dict[str, Any]]) -> list[StatusReport]:
    """The reports CXone should have seen, in order: SENT (with the SID), then the final one."""
    truth: list[StatusReport] = []
    if mapped is not None:
        truth.append(StatusReport(SENT, external_id=mapped["twilio_message_sid"]))
        final = report_for_final(mapped["outcome"] or "", mapped["error_code"])
        if final is not None:
            truth.append(final)
        return truth
    finals = [u for u in history if u["status"] in CXONE_FINAL]
    if finals:
        last = finals[-1]
        truth.append(StatusReport(last["status"], last["reason_code"], last["reason_message"]))
    return truth
