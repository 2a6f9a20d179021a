"""Typed wrappers over the media queries (see db/queries/media.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.types.json import Jsonb

from db.pool import Connection
from db.queries import Q


@dataclass(frozen=True)
class LiveMedia:
    """A stored file that has not expired; ``data`` is empty when only the metadata was read."""

    content_type: str
    size: int
    ttl_s: int
    data: bytes = b""


def insert(conn: Connection, *, token: str, direction: str, content_type: str, data: bytes,
           sha256: str, retention_s: float) -> int:
    """Store one file, live for ``retention_s`` seconds from now; returns its id."""
    row = conn.execute(Q["media.insert"], {
        "token": token, "direction": direction, "content_type": content_type, "data": data,
        "size": len(data), "sha256": sha256, "retention_s": retention_s}).fetchone()
    assert row is not None
    return int(row["id"])


def find_live(conn: Connection, token: str, *, with_data: bool = True) -> LiveMedia | None:
    """The live file behind ``token``, or None (unknown or expired)."""
    query = Q["media.find_live"] if with_data else Q["media.find_live_meta"]
    row = conn.execute(query, {"token": token}).fetchone()
    if row is None:
        return None
    return LiveMedia(content_type=row["content_type"], size=int(row["size"]),
                     ttl_s=int(row["ttl_s"]), data=bytes(row.get("data") or b""))


def delete_expired(conn: Connection, *, batch: int) -> int:
    """Delete up to ``batch`` expired files; returns how many went (housekeeping loops on it)."""
    cur = conn.execute(Q["media.delete_expired"], {"batch": batch})
    return cur.rowcount


def keep_reply_media(conn: Connection, message_id: str, *, media: list[dict[str, str]],
                     rejected: str | None) -> None:
    """Record an agent reply's stored attachments (public URLs), or why they were refused."""
    conn.execute(Q["media.keep_reply_media"], {"message_id": message_id, "media": Jsonb(media),
                                               "rejected": rejected})
