"""Formatting for the console's templates: masked numbers, times, durations."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.console.gate import bp
from app.logs import mask_phone


def when(value: datetime | None) -> str:
    """A timestamp as the operator reads it: UTC, to the second."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def when_precise(value: datetime | None) -> str:
    """A timeline's timestamp: UTC, to the millisecond."""
    if value is None:
        return "—"
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``; a dash when unknown."""
    if seconds is None:
        return "—"
    total = max(round(float(seconds)), 0)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def slot_label(next_slot: datetime | None, backlog_s: float) -> str:
    """'now' when the sender is free, else the time of its next free slot."""
    if next_slot is None or backlog_s <= 0:
        return "now"
    return next_slot.strftime("%H:%M:%S UTC")


def compact_json(value: Any) -> str:
    """Details of an audit entry, on one line (empty when there are none)."""
    if not value:
        return ""
    return json.dumps(value, default=str, sort_keys=True, separators=(", ", ": "))[:500]


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {"mask": mask_phone, "when": when, "when_precise": when_precise,
            "duration": duration, "slot_label": slot_label, "compact_json": compact_json}
