"""Overview: the queue, lag, workers, dead letters, the last hour and the senders.

The page holds the figures in a fragment (``/console/overview/live``) that the
page's script fetches again every few seconds and swaps in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import render_template

from app.config import Settings
from app.console import chart
from app.console.gate import bp, services
from app.console.last_hour import SEND_OUTCOMES, add_up
from db import admin
from db import console as console_q
from db.pool import Connection

RECEIPT_ORDER = ("accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed",
                 "canceled", "received", "read")
QUEUE_STATES = ("runnable", "running", "scheduled", "dead")
REFRESH_S = 5
WORKER_FRESH_S = 30.0  # as /readyz and `smsgw status`
# Up to this many queued jobs the queue is counted exactly; beyond, it is estimated
# from a sample of about SAMPLE_ROWS rows, so a big backlog never slows the page.
QUEUE_EXACT_UP_TO = 5_000
SAMPLE_ROWS = 10_000


@bp.get("/")
def overview() -> Any:
    return render_template("console/overview.html", o=_figures(), refresh_s=REFRESH_S)


@bp.get("/overview/live")
def overview_live() -> Any:
    return render_template("console/_live.html", o=_figures())


def _figures() -> dict[str, Any]:
    with services().db.connection() as conn:
        return gather(conn, services().settings)


def gather(conn: Connection, settings: Settings) -> dict[str, Any]:
    """Every figure of the overview: six reads, each bounded by an index."""
    status = console_q.overview_status(conn, WORKER_FRESH_S)
    queue, estimated = queue_figures(conn)
    hour = add_up(status["this_minute"], console_q.send_events_by_minute(conn),
                  console_q.receipts_by_minute(conn))
    return {
        **status,
        "queue": queue_table(queue),
        "queue_estimated": estimated,
        "queue_exact_up_to": QUEUE_EXACT_UP_TO,
        "sends": [(outcome, hour.sends[outcome]) for outcome in SEND_OUTCOMES.values()],
        "receipts": ordered(dict(hour.receipts), RECEIPT_ORDER),
        "chart": chart.build(hour.minutes),
        "senders": senders_table(console_q.sender_slots(conn), dict(hour.by_sender), settings),
    }


def queue_figures(conn: Connection) -> tuple[list[dict[str, Any]], bool]:
    """Jobs by kind and state; True when the queued ones are estimated (a long queue)."""
    if console_q.queued_up_to(conn, QUEUE_EXACT_UP_TO) < QUEUE_EXACT_UP_TO:
        return admin.queue_depth(conn), False
    return console_q.queue_estimate(conn, sample_percent(console_q.outbox_rows(conn))), True


def sample_percent(table_rows: float) -> float:
    """The share of the outbox's pages to read for about SAMPLE_ROWS rows (1 to 100 %)."""
    return min(100.0, max(1.0, 100.0 * SAMPLE_ROWS / max(table_rows, 1.0)))


def queue_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per job kind with its count in each state (and the total)."""
    kinds: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = kinds.setdefault(row["kind"], {"kind": row["kind"], "total": 0,
                                               **dict.fromkeys(QUEUE_STATES, 0)})
        entry[row["state"]] = entry.get(row["state"], 0) + int(row["jobs"])
        entry["total"] += int(row["jobs"])
    return [kinds[k] for k in sorted(kinds)]


def ordered(counts: dict[str, int], order: tuple[str, ...]) -> list[tuple[str, int]]:
    """Known statuses in lifecycle order, then any other, by name."""
    known = [(s, counts[s]) for s in order if s in counts]
    return known + sorted((s, n) for s, n in counts.items() if s not in order)


def senders_table(slots: Iterable[dict[str, Any]], sends: dict[str, int],
                  settings: Settings) -> list[dict[str, Any]]:
    """Each sender: its next free slot, its backlog and its sends in the last hour.

    The backlog is read from the pacing state itself: every booked send moved the
    sender's next slot on by one spacing, so (next slot - now) * rate is the
    number of sends booked and not yet due, without counting the queue.
    """
    rows: dict[str, dict[str, Any]] = {}

    def row(key: str, number: str | None) -> dict[str, Any]:
        return rows.setdefault(key, {"number": number, "next_slot": None, "backlog_s": 0.0,
                                     "backlog": 0, "sends": 0})

    for number in settings.sender_numbers:
        row(f"sender:{number}", number)
    for slot in slots:
        kind, _, ident = str(slot["key"]).partition(":")
        rate = settings.sender_mps if kind == "sender" else settings.effective_service_mps
        entry = row(str(slot["key"]), ident if kind == "sender" else None)
        backlog_s = float(slot["backlog_s"] or 0)
        entry.update(next_slot=slot["next_slot"], backlog_s=backlog_s,
                     backlog=round(backlog_s * rate))
    for sender, count in sends.items():
        row(f"sender:{sender}", sender)["sends"] = count
    return sorted(rows.values(), key=lambda r: (r["number"] is None, r["number"] or ""))

