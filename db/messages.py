"""Typed wrappers over the message-mapping and receipt queries."""

from __future__ import annotations

from typing import Any

from db.pool import Connection
from db.queries import Q


def lock_sid(conn: Connection, sid: str) -> None:
    """Transaction-scoped lock on one SID (see messages.sql: lock_sid)."""
    conn.execute(Q["messages.lock_sid"], {"sid": sid})


def insert_twilio_message(conn: Connection, *, sid: str, message_id: str | None,
                          conversation_id: str | None, purpose: str, dispatch: int, to: str,
                          from_: str | None, status: str, adopted: bool) -> bool:
    row = conn.execute(Q["messages.insert_twilio_message"], {
        "sid": sid, "message_id": message_id, "conversation_id": conversation_id,
        "purpose": purpose, "dispatch": dispatch, "to": to, "from": from_, "status": status,
        "adopted": adopted}).fetchone()
    return row is not None


def twilio_message_for_update(conn: Connection, sid: str) -> dict[str, Any] | None:
    return conn.execute(Q["messages.twilio_message_for_update"], {"sid": sid}).fetchone()


def twilio_messages_of(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.twilio_messages_of"], {"message_id": message_id}).fetchall()


def set_twilio_message_status(conn: Connection, sid: str, status: str, *,
                              error_code: int | None, from_: str | None) -> None:
    conn.execute(Q["messages.set_twilio_message_status"], {
        "sid": sid, "status": status, "error_code": error_code, "from": from_})


def sids_taken(conn: Connection, sids: list[str]) -> set[str]:
    return {row["sid"] for row in conn.execute(Q["messages.sids_taken"], {"sids": sids})}


def record_outbound(conn: Connection, *, conversation_id: str, message_id: str, sid: str,
                    status: str, to: str, from_: str | None, dispatch: int) -> None:
    conn.execute(Q["messages.record_outbound"], {
        "conversation_id": conversation_id, "message_id": message_id, "sid": sid,
        "status": status, "to": to, "from": from_, "dispatch": dispatch})


def record_inbound(conn: Connection, *, conversation_id: str, message_id: str, sid: str, to: str,
                   from_: str) -> None:
    conn.execute(Q["messages.record_inbound"], {
        "conversation_id": conversation_id, "message_id": message_id, "sid": sid, "to": to,
        "from": from_})


def state_of_message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    return conn.execute(Q["messages.state_of_message"], {"message_id": message_id}).fetchone()


def state_of_sid(conn: Connection, sid: str) -> dict[str, Any] | None:
    return conn.execute(Q["messages.state_of_sid"], {"sid": sid}).fetchone()


def set_state_status(conn: Connection, sid: str, status: str, *, error_code: int | None,
                     from_: str | None, outcome: str | None) -> None:
    conn.execute(Q["messages.set_state_status"], {
        "sid": sid, "status": status, "error_code": error_code, "from": from_,
        "outcome": outcome})


def insert_receipt(conn: Connection, *, sid: str, status: str, error_code: int | None,
                   source: str) -> int | None:
    """The new receipt's id, or None when (sid, status) was seen before."""
    row = conn.execute(Q["messages.insert_receipt"], {
        "sid": sid, "status": status, "error_code": error_code, "source": source}).fetchone()
    return None if row is None else int(row["id"])


def unapplied_receipts(conn: Connection, sid: str) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.unapplied_receipts"], {"sid": sid}).fetchall()


def mark_receipt_applied(conn: Connection, receipt_id: int) -> None:
    conn.execute(Q["messages.mark_receipt_applied"], {"id": receipt_id})


def receipts_of(conn: Connection, sids: list[str]) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.receipts_of"], {"sids": sids}).fetchall()


def insert_inbound(conn: Connection, *, sid: str, from_: str, to: str, keyword: str | None,
                   num_media: int) -> bool:
    """False when this MessageSid was received before."""
    row = conn.execute(Q["messages.insert_inbound"], {
        "sid": sid, "from": from_, "to": to, "keyword": keyword, "num_media": num_media}
    ).fetchone()
    return row is not None
