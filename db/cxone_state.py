"""Typed wrappers over the CXone-side queries (cursor, threading, status sync)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q

if TYPE_CHECKING:
    from app.cxone import StatusReport


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


def remember_conversations(conn: Connection, pairs: list[tuple[str, str, str]]) -> None:
    """remember_conversation for many (customer, business, conversation id), in order."""
    if pairs:
        conn.execute(Q["cxone.remember_conversations"], {"pairs": Jsonb([
            {"ord": n, "customer": c, "business": b, "conversation_id": conv}
            for n, (c, b, conv) in enumerate(pairs)])})


def close_conversation(conn: Connection, conversation_id: str) -> None:
    conn.execute(Q["cxone.close_conversation"], {"conversation_id": conversation_id})


def queue_update(conn: Connection, kind: str, message_id: str, report: StatusReport) -> None:
    """Record a report for CXone and make sure the message's status job (``kind``) runs."""
    conn.execute(Q["cxone.queue_update"], {
        "kind": kind, "message_id": message_id, "status": report.status,
        "reason_code": report.reason_code, "reason_message": report.reason_message,
        "external_id": report.external_id, "at": report.at})


def pending_status_updates(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    """Updates still to push, oldest first; each row carries ``current_status``."""
    return conn.execute(Q["cxone.pending_status_updates"], {"message_id": message_id}).fetchall()


def finish_status_update(conn: Connection, update: dict[str, Any], outcome: str,
                         previous: str | None) -> None:
    """Record an update's outcome (and CXone's status when pushed), with its audit entry."""
    details = {"external_id": update["external_id"]} if update["external_id"] else {}
    conn.execute(Q["cxone.finish_status_update"], {
        "id": update["id"], "outcome": outcome, "message_id": update["cxone_message_id"],
        "status": update["status"], "previous": previous, "reason": update["reason_code"],
        "details": Jsonb(details)})


def set_cxone_status(conn: Connection, message_id: str, status: str) -> None:
    conn.execute(Q["cxone.set_cxone_status"], {"message_id": message_id, "status": status})
