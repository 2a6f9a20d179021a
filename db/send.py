"""Typed wrappers over the send job's statements (db/queries/send.sql)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q

# Seed §4: an idempotency key lives 24 hours.
KEY_TTL_S = 24 * 3600.0


def key_for(message_id: str, body: str, to: str, dispatch: int = 1) -> str:
    """sha256 of ``message_id:body:to`` (seed §4); a re-dispatch adds its number."""
    raw = f"{message_id}:{body}:{to}" + (f":{dispatch}" if dispatch > 1 else "")
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyState:
    """An idempotency key's row: in_flight, sent or failed."""

    state: str
    sid: str | None
    started_at: datetime | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class SendFacts:
    """What decides a send: consent, what this dispatch created already, attachments kept
    for it, and its idempotency keys' states."""

    consent: str | None
    mapped_dispatches: int | None
    created_parts: int  # SIDs this dispatch has (a long reply has one per part)
    media: dict[str, Any] | None  # {"media": [{url, content_type}], "rejected": reason}
    keys: dict[str, KeyState]


def before_send(conn: Connection, *, message_id: str | None, to: str, dispatch: int,
                keys: list[str], details: dict[str, Any]) -> SendFacts:
    """Audit the claim; read consent, what was created, media and keys (one row)."""
    row = conn.execute(Q["send.before_send"], {
        "message_id": message_id, "to": to, "dispatch": dispatch, "keys": keys,
        "details": Jsonb(details)}).fetchone()
    assert row is not None
    states = {k: KeyState(state=v["state"], sid=v["sid"],
                          started_at=_time(v["started_at"]), result=v["result"])
              for k, v in (row["keys"] or {}).items()}
    return SendFacts(consent=row["consent"], mapped_dispatches=row["mapped_dispatches"],
                     created_parts=int(row["created_parts"]), media=row["media"], keys=states)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def finish_key(conn: Connection, key: str, *, state: str, sid: str | None,
               result: dict[str, Any]) -> None:
    conn.execute(Q["send.finish_key"], {"key": key, "state": state, "sid": sid,
                                        "result": Jsonb(result)})


def forget_key(conn: Connection, key: str) -> None:
    conn.execute(Q["send.forget_key"], {"key": key})


def sids_taken(conn: Connection, sids: list[str]) -> set[str]:
    """Which of ``sids`` some message already holds (a lookup must not adopt them)."""
    return {row["sid"] for row in conn.execute(Q["send.sids_taken"], {"sids": sids})}


def record_sent(conn: Connection, **params: Any) -> dict[str, Any]:
    """Everything after a create in one statement (see smsgw_record_sent)."""
    params["audit_details"] = Jsonb(params["audit_details"])
    row = conn.execute(Q["send.record_sent"], params).fetchone()
    assert row is not None
    return row
