"""Typed wrappers over DFO mode's queries (db/queries/dfo.sql)."""

from __future__ import annotations

from typing import Any

from db.pool import Connection
from db.queries import Q


def issue_token(conn: Connection, token_hash: str, *, client_id: str, ttl_s: float) -> None:
    conn.execute(Q["dfo.issue_token"], {"hash": token_hash, "client_id": client_id,
                                        "ttl_s": ttl_s})


def token_valid(conn: Connection, token_hash: str) -> bool:
    row = conn.execute(Q["dfo.token_valid"], {"hash": token_hash}).fetchone()
    return bool(row and row["valid"])


def channel_number(conn: Connection, channel_id: str) -> str | None:
    row = conn.execute(Q["dfo.channel_number"], {"channel_id": channel_id}).fetchone()
    return None if row is None else str(row["number"])


def number_channel(conn: Connection, number: str) -> str | None:
    row = conn.execute(Q["dfo.number_channel"], {"number": number}).fetchone()
    return None if row is None else str(row["channel_id"])


def add_channel(conn: Connection, *, channel_id: str, number: str, name: str | None,
                brand_id: str | None) -> None:
    conn.execute(Q["dfo.add_channel"], {"channel_id": channel_id, "number": number,
                                        "name": name, "brand_id": brand_id})


def channels(conn: Connection) -> list[dict[str, Any]]:
    return conn.execute(Q["dfo.channels"]).fetchall()


def lock_fingerprint(conn: Connection, fingerprint: str) -> None:
    """Inside a transaction: one callback copy at a time per fingerprint."""
    conn.execute(Q["dfo.lock_fingerprint"], {"fingerprint": fingerprint})


def find_reply(conn: Connection, fingerprint: str, window_s: float | None) -> str | None:
    row = conn.execute(Q["dfo.find_reply"], {"fingerprint": fingerprint,
                                             "window_s": window_s}).fetchone()
    return None if row is None else str(row["message_id"])


def remember_reply(conn: Connection, *, message_id: str, channel_id: str, thread_id: str,
                   fingerprint: str) -> None:
    conn.execute(Q["dfo.remember_reply"], {"message_id": message_id, "channel_id": channel_id,
                                           "thread_id": thread_id, "fingerprint": fingerprint})


def save_pending_add(conn: Connection, *, nonce: str, access_token: str, brand_id: str | None,
                     user_id: str | None, back_url: str, ttl_s: float) -> None:
    conn.execute(Q["dfo.save_pending_add"], {
        "nonce": nonce, "access_token": access_token, "brand_id": brand_id,
        "user_id": user_id, "back_url": back_url, "ttl_s": ttl_s})


def take_pending_add(conn: Connection, nonce: str) -> dict[str, Any] | None:
    return conn.execute(Q["dfo.take_pending_add"], {"nonce": nonce}).fetchone()
