"""DFO mode's agent replies: accepted (committed as send jobs), then sent like any other.

CXone calls our integration box (app/byoc.py) with a reply; the send job is in the
outbox before we answer 200 with our message id, so a crash after the answer loses
nothing. A callback repeated within DFO_DUPLICATE_WINDOW_S (CXone retrying) gets the
same id and sends nothing new; with CXone's own message id in the body, that id
recognises a retry at any age. Which of our numbers serves a channel comes from
DFO_CHANNELS and from channels the Add action created.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from app.config import Settings
from app.cxone import OutboundReply
from app.cxone.byoc import Callback
from app.logs import event
from app.outbound import enqueue_replies
from db import dfo
from db.pool import Connection

log = logging.getLogger(__name__)


def number_for_channel(conn: Connection, settings: Settings, channel_id: str) -> str | None:
    """The Twilio number that serves ``channel_id`` (None: not one of our channels)."""
    configured = dict(settings.dfo_channels).get(channel_id)
    return configured or dfo.channel_number(conn, channel_id)


def channel_for_number(conn: Connection, settings: Settings, number: str) -> str | None:
    """The channel customers texting ``number`` are filed under."""
    for channel_id, ours in settings.dfo_channels:
        if ours == number:
            return channel_id
    return dfo.number_channel(conn, number)


@dataclass(frozen=True)
class Accepted:
    message_id: str
    new: bool  # False: a repeat of a reply accepted before


def accept_callback(conn: Connection, settings: Settings, callback: Callback, *,
                    channel_id: str, sender: str, source: str) -> Accepted:
    """Commit the reply's send job (inside the caller's transaction); our message id."""
    fingerprint = callback.fingerprint()
    dfo.lock_fingerprint(conn, fingerprint)
    window = None if callback.cxone_ref else settings.dfo_duplicate_window_s
    known = dfo.find_reply(conn, fingerprint, window)
    if known is not None:
        event(log, "callback.repeated", message_id=known, channel_id=channel_id)
        return Accepted(known, new=False)
    message_id = f"gw_{uuid.uuid4().hex}"
    dfo.remember_reply(conn, message_id=message_id, channel_id=channel_id,
                       thread_id=callback.thread, fingerprint=fingerprint)
    enqueue_replies(conn, settings, [OutboundReply(
        message_id=message_id, conversation_id=callback.thread, to=callback.to, from_=sender,
        body=callback.body, media_urls=callback.media_urls, channel_id=channel_id)],
        source=source)
    return Accepted(message_id, new=True)
