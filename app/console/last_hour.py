"""The overview's last hour, from per-minute counts: totals, per minute, per sender.

Pure. The database groups the last 60 minutes of audit events and receipts by
minute (two index scans); the figures and the chart are both added up here, so
the totals and the chart always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MINUTES = 60
# Audit events → the outcome names of smsgw_sends_total (README, Metrics).
SEND_OUTCOMES = {"send.created": "sent", "send.adopted": "adopted", "send.failed": "failed",
                 "send.refused": "refused", "job.retry": "retry",
                 "message.no_receipt": "no_receipt"}
SENT = ("sent", "adopted")
FAILED_RECEIPTS = ("failed", "undelivered")


@dataclass
class LastHour:
    sends: Counter[str]  # by outcome
    receipts: Counter[str]  # by status
    by_sender: Counter[str]  # created or adopted sends
    minutes: list[dict[str, Any]]  # oldest first: minute, sends, deliveries, failures


def add_up(this_minute: datetime, events: Iterable[dict[str, Any]],
           receipts: Iterable[dict[str, Any]]) -> LastHour:
    """Rows of (minute, event, sender, n) and (minute, status, n) → the last hour."""
    minutes = {this_minute - timedelta(minutes=MINUTES - 1 - i):
               {"sends": 0, "deliveries": 0, "failures": 0} for i in range(MINUTES)}
    hour = LastHour(Counter(), Counter(), Counter(), [])
    for row in events:
        outcome, n = SEND_OUTCOMES.get(row["event"]), int(row["n"])
        if outcome is None or row["minute"] not in minutes:
            continue
        hour.sends[outcome] += n
        if outcome in SENT:
            minutes[row["minute"]]["sends"] += n
            if row.get("sender"):
                hour.by_sender[row["sender"]] += n
        elif outcome == "failed":
            minutes[row["minute"]]["failures"] += n
    for row in receipts:
        status, n = row["status"], int(row["n"])
        if row["minute"] not in minutes:
            continue
        hour.receipts[status] += n
        if status == "delivered":
            minutes[row["minute"]]["deliveries"] += n
        elif status in FAILED_RECEIPTS:
            minutes[row["minute"]]["failures"] += n
    hour.minutes = [{"minute": minute, **counts} for minute, counts in minutes.items()]
    return hour
