"""Typed wrappers over the message-mapping and receipt queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q

if TYPE_CHECKING:
    from app.statuses import CxoneUpdate


def apply_receipt(conn: Connection, *, sid: str, status: str, rank: int, error_code: int | None,
                  from_: str | None, source: str, receipt_id: int | None = None,
                  cxone_update: CxoneUpdate | None = None) -> dict[str, Any]:
    """Record (or, with ``receipt_id``, apply a kept) receipt; what the function returned.

    With ``cxone_update`` (a final status) the outcome and that CXone update are
    recorded too when the receipt moves a mapped reply forward.
    """
    row = conn.execute(Q["messages.apply_receipt"], {
        "sid": sid, "status": status, "rank": rank, "error_code": error_code, "from": from_,
        "source": source, "receipt_id": receipt_id,
        "cxone_status": cxone_update.status if cxone_update else None,
        "reason_code": cxone_update.reason_code if cxone_update else None,
        "reason_message": cxone_update.reason_message if cxone_update else None}).fetchone()
    assert row is not None
    return row


def record_sent(conn: Connection, **params: Any) -> dict[str, Any]:
    """Everything after a create in one statement (see smsgw_record_sent)."""
    params["audit_details"] = Jsonb(params["audit_details"])
    row = conn.execute(Q["messages.record_sent"], params).fetchone()
    assert row is not None
    return row


def set_outcome(conn: Connection, sid: str, outcome: str) -> None:
    conn.execute(Q["messages.set_outcome"], {"sid": sid, "outcome": outcome})


def lock_sid(conn: Connection, sid: str) -> None:
    """Transaction-scoped lock on one SID (see messages.sql: lock_sid)."""
    conn.execute(Q["messages.lock_sid"], {"sid": sid})




def twilio_messages_of(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return conn.execute(Q["messages.twilio_messages_of"], {"message_id": message_id}).fetchall()



def sids_taken(conn: Connection, sids: list[str]) -> set[str]:
    return {row["sid"] for row in conn.execute(Q["messages.sids_taken"], {"sids": sids})}



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
