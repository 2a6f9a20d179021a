"""Typed wrappers over the message-mapping and receipt queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.pool import Connection
from db.queries import Q

if TYPE_CHECKING:
    from app.cxone import StatusReport


def apply_receipt(conn: Connection, *, sid: str, status: str, rank: int, final: bool,
                  error_code: int | None, from_: str | None, source: str,
                  receipt_id: int | None = None, report: StatusReport | None = None,
                  status_kind: str) -> dict[str, Any]:
    """Record (or, with ``receipt_id``, apply a kept) receipt; what the function returned.

    With ``report`` (the message ends here) the outcome is recorded and that report
    queued for CXone when the receipt moves a mapped reply forward.
    """
    row = conn.execute(Q["messages.apply_receipt"], {
        "sid": sid, "status": status, "rank": rank, "final": final, "error_code": error_code,
        "from": from_, "source": source, "receipt_id": receipt_id,
        "report_status": report.status if report else None,
        "reason_code": report.reason_code if report else None,
        "reason_message": report.reason_message if report else None,
        "status_kind": status_kind}).fetchone()
    assert row is not None
    return row


def redispatch_facts(conn: Connection, sid: str) -> dict[str, Any] | None:
    """What deciding a re-dispatch needs: the message of ``sid`` and its send job."""
    return conn.execute(Q["messages.redispatch_facts"], {"sid": sid}).fetchone()


def lock_sid(conn: Connection, sid: str) -> None:
    """Transaction-scoped lock on one SID (see messages.sql: lock_sid)."""
    conn.execute(Q["messages.lock_sid"], {"sid": sid})



def twilio_messages_of(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.twilio_messages_of"], {"message_id": message_id}).fetchall()


def record_inbound(conn: Connection, *, conversation_id: str, message_id: str, sid: str, to: str,
                   from_: str) -> None:
    conn.execute(Q["messages.record_inbound"], {
        "conversation_id": conversation_id, "message_id": message_id, "sid": sid, "to": to,
        "from": from_})


def state_of_message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    return conn.execute(Q["messages.state_of_message"], {"message_id": message_id}).fetchone()


def unapplied_receipts(conn: Connection, sid: str) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.unapplied_receipts"], {"sid": sid}).fetchall()


def receipts_of(conn: Connection, sids: list[str]) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.receipts_of"], {"sids": sids}).fetchall()


def insert_inbound(conn: Connection, *, sid: str, from_: str, to: str, keyword: str | None,
                   num_media: int) -> bool:
    """False when this MessageSid was received before."""
    row = conn.execute(Q["messages.insert_inbound"], {
        "sid": sid, "from": from_, "to": to, "keyword": keyword, "num_media": num_media}
    ).fetchone()
    return row is not None


def insert_keyword(conn: Connection, *, sid: str, phone: str, keyword: str) -> bool:
    """Remember a keyword message for good; False when it was applied before."""
    row = conn.execute(Q["messages.insert_keyword"], {
        "sid": sid, "phone": phone, "keyword": keyword}).fetchone()
    return row is not None
