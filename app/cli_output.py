"""What ``smsgw`` prints: plain JSON values and the human-readable views.

JSON keeps one type per field: ages and durations are numbers of seconds
(Postgres hands some back as ``Decimal``), times are ISO 8601 strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with only JSON types: Decimal → float, datetime → ISO 8601 text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def render(data: Any, human: Callable[[Any], str], *, as_json: bool) -> str:
    """JSON (``--json``) or the human view of ``data``."""
    if as_json:
        return json.dumps(plain(data), indent=2)
    return human(data)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def format_status(d: dict[str, Any]) -> str:
    """Queue, lag, dead letters, workers, webhooks and senders, one figure a line."""
    lines = ["queue:"]
    lines += [f"  {r['kind']:<14} {r['state']:<10} {r['jobs']}" for r in d["queue"]] or \
        ["  (empty)"]
    lag = d["oldest_runnable_s"]
    lines.append(f"oldest runnable job: {'none' if lag is None else f'{float(lag):.1f}s'}")
    lines.append(f"dead letters: {d['dead_letters']}")
    lines.append(f"live workers: {len(d['workers'])}")
    lines += [f"  {w['worker_id']} (beat {float(w['age_s']):.1f}s ago)" for w in d["workers"]]
    webhook = d["last_webhook_s"]
    lines.append(f"last webhook: {'never' if webhook is None else f'{float(webhook):.0f}s ago'}")
    lines.append("senders (next free slot, UTC):")
    lines += [f"  {s['key']:<28} {_when(s['next_slot'])} "
              f"(backlog {float(s['backlog_s']):.1f}s)" for s in d["senders"]] or ["  (none yet)"]
    if d["pending_migrations"]:
        lines.append(f"PENDING MIGRATIONS: {', '.join(d['pending_migrations'])}")
    return "\n".join(lines)


def format_dead_letters(rows: list[dict[str, Any]]) -> str:
    """A table with headers; each job's last error in full on the line below it."""
    if not rows:
        return "no dead letters"
    lines = [f"{'ID':>8}  {'KIND':<14} {'ATTEMPTS':>8}  {'DEAD SINCE (UTC)':<19}  MESSAGE"]
    for r in rows:
        lines.append(f"{r['id']:>8}  {r['kind']:<14} {r['attempts']:>8}  "
                     f"{_when(r['updated_at']):<19}  {r['message_id'] or r['dedupe_key']}")
        lines.append(f"{'':>8}  last error: {r['last_error'] or '(none recorded)'}")
    lines.append(f"{len(rows)} dead letter(s). Details: smsgw dead-letters show ID")
    return "\n".join(lines)


def format_consent(d: dict[str, Any]) -> str:
    """The number's current consent and its history, oldest first."""
    lines = [f"{d['phone_number']}: {d['status'] or 'no record'}"
             + (f" ({d['source']}, {_when(d['updated_at'])} UTC)" if d["status"] else "")]
    lines += [f"  {_when(h['created_at'])}  {h['status']:<10} {h['source']}"
              for h in d["history"]]
    return "\n".join(lines)


def format_trace(d: dict[str, Any]) -> str:
    """One message's jobs and timeline."""
    lines = [f"message {d['message_id']}"]
    if d["mapping"]:
        m = d["mapping"]
        lines.append(f"  now: SID {m['twilio_message_sid']} status {m['twilio_status']} "
                     f"outcome {m['outcome'] or '-'} dispatches {m['attempts']}")
    for job in d["jobs"]:
        lines.append(f"  job {job['id']} {job['kind']} {job['state']} attempts={job['attempts']}"
                     f" claims={job['claims']}" +
                     (f" last_error={job['last_error']}" if job["last_error"] else ""))
    for t in d["timeline"]:
        change = f"{t.get('from') or ''}->{t.get('to') or ''}".strip("->")
        extra = f" ({t['reason']})" if t.get("reason") else ""
        sid = f" {t['sid']}" if t.get("sid") else ""
        lines.append(f"  {_when(t['at'])}  {t['what']:<28} {change}{extra}{sid}")
    return "\n".join(lines)


def format_job(job: dict[str, Any]) -> str:
    """One job, every field (the payload included), as indented JSON."""
    return json.dumps(plain(job), indent=2)
