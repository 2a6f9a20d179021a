"""Housekeeping: keep the hot tables small. One worker at a time, every minute.

Done jobs go after OUTBOX_RETENTION_S (7 days), expired idempotency keys at
once, receipt/inbound dedupe rows and finished CXone updates after
DEDUPE_RETENTION_S (30 days). Deletes run in batches of 1,000 with a pause
between, so no statement holds locks for long. The audit trail and the
message mapping are never deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.logs import event
from app.services import Services
from db.pool import Connection
from db.queries import Q
from worker.jobs import JobContext
from worker.leader import run_as_leader

log = logging.getLogger(__name__)

INTERVAL_S = 60.0
BATCH = 1000
PAUSE_S = 0.05
MAX_BATCHES_PER_TABLE = 200  # at most 200,000 rows per table per pass
WEEK_S = 7 * 86400.0


def run_housekeeping(ctx: JobContext) -> None:
    """Clean up on an interval while this worker holds the housekeeping role."""

    def step(_conn: Connection) -> float:
        housekeep_once(ctx.services, pause=ctx.sleep)
        return INTERVAL_S

    run_as_leader(ctx, "housekeeping", step)


def retention_plan(services: Services) -> list[tuple[str, float]]:
    """(query, retention in seconds) for every table housekeeping trims."""
    s = services.settings
    return [
        ("housekeeping.done_jobs", s.outbox_retention_s),
        ("housekeeping.expired_idempotency_keys", 0.0),
        ("housekeeping.old_receipts", s.dedupe_retention_s),
        ("housekeeping.old_inbound", s.dedupe_retention_s),
        ("housekeeping.old_status_updates", s.dedupe_retention_s),
        ("housekeeping.old_heartbeats", WEEK_S),
        ("housekeeping.idle_throttle_keys", WEEK_S),
        ("housekeeping.expired_byoc_tokens", 0.0),
        ("housekeeping.old_dfo_replies", s.dedupe_retention_s),
        ("housekeeping.expired_pending_adds", 0.0),
        ("media.delete_expired", 0.0),
        ("housekeeping.old_message_media", s.media_retention_s),
    ]


def housekeep_once(services: Services, *,
                   pause: Callable[[float], bool] | None = None) -> dict[str, int]:
    """One pass over every table; returns rows deleted per query."""
    deleted: dict[str, int] = {}
    for query, retention_s in retention_plan(services):
        total = 0
        for _ in range(MAX_BATCHES_PER_TABLE):
            with services.db.connection() as conn:
                count = conn.execute(Q[query], {"retention_s": retention_s,
                                                "batch": BATCH}).rowcount
            total += count
            if count < BATCH:
                break
            if pause is not None and not pause(PAUSE_S):
                break  # the worker is stopping
        deleted[query.split(".", 1)[1]] = total
    if any(deleted.values()):
        event(log, "housekeeping.done", **deleted)
    return deleted
