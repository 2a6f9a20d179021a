"""What an operator does at 3 a.m.: status, dead letters, trace, consent import/export.

Plain functions over a connection, shared by the CLI (``smsgw``) and the
admin API (``/admin/...``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app.compliance import OPTED_IN, OPTED_OUT
from app.consent import record_consent
from app.inputs import phone_or_none
from app.jobs import REPLAY_PATCH, StatusJob
from app.snapshot import read_snapshot
from db import admin, audit, consent, messages, outbox
from db import reconcile as reconcile_q
from db.pool import Connection

CONSENT_CSV_FIELDS = ("phone_number", "status", "scope", "source", "updated_at")


def queue_status(conn: Connection) -> dict[str, Any]:
    """Queue depth by kind and state, lag, dead letters, workers and their roles, senders'
    next slots (the same snapshot /readyz and /metrics read)."""
    return read_snapshot(conn)


def dead_letters(conn: Connection, *, kind: str | None = None, error: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    return admin.dead_letters(conn, kind=kind, error=error, limit=limit)


def replay(conn: Connection, ids: list[int], *, source: str) -> list[dict[str, Any]]:
    """Queue dead letters again. A send first looks Twilio up, so it is never sent twice."""
    return _audited(conn, admin.replay(conn, ids, REPLAY_PATCH), "job.replayed", "queued",
                    source)


def discard(conn: Connection, ids: list[int], *, source: str) -> list[dict[str, Any]]:
    """Give up on dead letters for good (kept as done, with the reason)."""
    return _audited(conn, admin.discard(conn, ids), "job.discarded", "discarded", source)


def _audited(conn: Connection, jobs: list[dict[str, Any]], event: str, to_state: str,
             source: str) -> list[dict[str, Any]]:
    for job in jobs:
        audit.append(conn, event, source=source, message_id=job["message_id"],
                     from_state="dead", to_state=to_state,
                     details={"job_id": job["id"], "kind": job["kind"]})
    return jobs


def show_job(conn: Connection, job_id: int) -> dict[str, Any] | None:
    return outbox.get(conn, job_id)


def trace(conn: Connection, ref: str) -> dict[str, Any] | None:
    """The whole timeline of one message, by CXone message id or Twilio SID."""
    looks_like_sid = ref[:2] in ("SM", "MM") and len(ref) == 34
    message_id = (admin.message_for_sid(conn, ref) or ref) if looks_like_sid else ref
    sends = messages.twilio_messages_of(conn, message_id)
    sids = [s["sid"] for s in sends] or ([ref] if looks_like_sid else [])
    mapping = messages.state_of_message(conn, message_id)
    jobs = admin.jobs_for_message(conn, [message_id, StatusJob(message_id).dedupe_key])
    entries = audit.for_message(conn, message_id, sids)
    receipts = messages.receipts_of(conn, sids) if sids else []
    updates = reconcile_q.status_updates_of(conn, message_id)
    if not (sends or mapping or jobs or entries or receipts or updates):
        return None
    timeline: list[dict[str, Any]] = []
    for e in entries:
        timeline.append({"at": e["at"], "what": e["event"], "source": e["source"],
                         "sid": e["twilio_message_sid"], "from": e["from_state"],
                         "to": e["to_state"], "reason": e["reason"], "details": e["details"]})
    for r in receipts:
        timeline.append({"at": r["received_at"], "what": f"receipt.{r['source']}",
                         "sid": r["message_sid"], "to": r["message_status"],
                         "reason": r["error_code"],
                         "details": {"applied_at": r["applied_at"]}})
    for u in updates:
        timeline.append({"at": u["created_at"], "what": "cxone.update_queued", "to": u["status"],
                         "reason": u["reason_code"],
                         "details": {"outcome": u["outcome"], "finished_at": u["finished_at"]}})
    timeline.sort(key=lambda item: item["at"] or datetime.min)
    return {"message_id": message_id, "mapping": mapping, "twilio_messages": sends,
            "jobs": jobs, "timeline": timeline}


# -- consent -------------------------------------------------------------------------------

def consent_of(conn: Connection, number: str) -> dict[str, Any]:
    current = consent.get(conn, number)
    return {"phone_number": number, "status": current["status"] if current else None,
            "source": current["source"] if current else None,
            "updated_at": current["updated_at"] if current else None,
            "history": consent.history(conn, number)}


class ConsentImportError(ValueError):
    """A CSV row that cannot be imported; nothing of the file was applied."""


def import_consent(conn: Connection, text: str, *, source: str = "import",
                   evidence: dict[str, Any] | None = None) -> int:
    """Apply a CSV of ``phone_number,status`` rows (all or nothing); rows applied."""
    rows = list(_consent_rows(text))
    for number, status in rows:
        record_consent(conn, number, status, source=source,
                       evidence={**(evidence or {}), "via": "csv"})
    return len(rows)


def _consent_rows(text: str) -> Iterable[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"phone_number", "status"} <= set(reader.fieldnames):
        raise ConsentImportError("the CSV needs a header with phone_number and status columns")
    for line, row in enumerate(reader, start=2):
        raw = row.get("phone_number") or ""
        status = (row.get("status") or "").strip().lower()
        number = phone_or_none(raw)
        if number is None:
            raise ConsentImportError(f"line {line}: {raw[:40]!r} is not an E.164 number")
        if status not in (OPTED_IN, OPTED_OUT):
            raise ConsentImportError(f"line {line}: status must be opted_in or opted_out")
        yield number, status


def export_consent(conn: Connection) -> str:
    """The consent ledger as CSV (one row per number and scope)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CONSENT_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in consent.export(conn):
        writer.writerow({"phone_number": row["phone_number"], "status": row["status"],
                         "scope": row["scope"], "source": row["source"],
                         "updated_at": row["updated_at"].isoformat()})
    return out.getvalue()
