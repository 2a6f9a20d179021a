"""Typed wrappers over the CXone-side queries (cursor, threading, status sync)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db.pool import Connection
from db.queries import Q


def get_cursor(conn: Connection, name: str) -> str | None:
    row = conn.execute(Q["cxone.get_cursor"], {"name": name}).fetchone()
    return None if row is None else row["cursor"]


def save_cursor(conn: Connection, name: str, cursor: str | None) -> None:
    conn.execute(Q["cxone.save_cursor"], {"name": name, "cursor": cursor})


def find_conversation(conn: Connection, customer: str, business: str) -> dict[str, Any] | None:
    return conn.execute(Q["cxone.find_conversation"],
                        {"customer": customer, "business": business}).fetchone()


def remember_conversation(conn: Connection, *, customer: str, business: str,
                          conversation_id: str, status: str = "OPEN") -> None:
    conn.execute(Q["cxone.remember_conversation"], {
        "customer": customer, "business": business, "conversation_id": conversation_id,
        "status": status})


def close_conversation(conn: Connection, conversation_id: str) -> None:
    conn.execute(Q["cxone.close_conversation"], {"conversation_id": conversation_id})


def add_status_update(conn: Connection, message_id: str, status: str, *,
                      reason_code: str | None = None, reason_message: str | None = None,
                      external_id: str | None = None, receipt_at: datetime | None = None) -> int:
    row = conn.execute(Q["cxone.add_status_update"], {
        "message_id": message_id, "status": status, "reason_code": reason_code,
        "reason_message": reason_message, "external_id": external_id,
        "receipt_at": receipt_at}).fetchone()
    assert row is not None
    return int(row["id"])


def pending_status_updates(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return conn.execute(Q["cxone.pending_status_updates"], {"message_id": message_id}).fetchall()


def finish_status_update(conn: Connection, update_id: int, outcome: str) -> None:
    conn.execute(Q["cxone.finish_status_update"], {"id": update_id, "outcome": outcome})


def get_cxone_status(conn: Connection, message_id: str) -> str | None:
    row = conn.execute(Q["cxone.get_cxone_status"], {"message_id": message_id}).fetchone()
    return None if row is None else row["status"]


def set_cxone_status(conn: Connection, message_id: str, status: str) -> None:
    conn.execute(Q["cxone.set_cxone_status"], {"message_id": message_id, "status": status})
