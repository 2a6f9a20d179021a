"""Attachments both ways, through our own /media/ URLs (app/media.py does the fetching).

An agent reply's attachments are fetched as soon as the reply is accepted (its
media job runs before its send job, which waits behind it), checked and kept in
Postgres; Twilio is handed unguessable, expiring ``{PUBLIC_BASE_URL}/media/…``
URLs, so a short-lived CXone link cannot expire while the reply waits for its
pacing slot. A refused attachment fails the whole reply (``media_rejected``):
nothing is half sent. A customer's pictures are fetched from Twilio with its
credentials and given to CXone the same way.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from app.config import Settings
from app.jobs import MediaJob
from app.logs import event
from app.media import MediaPolicy, MediaRejected, fetch_all, public_url, store
from app.services import Services
from db import media as db_media

log = logging.getLogger(__name__)


def policy(settings: Settings) -> MediaPolicy:
    """What may be fetched: MEDIA_FETCH_ALLOWED_HOSTS, public addresses only unless
    MEDIA_FETCH_ALLOW_PRIVATE, Twilio's 5 MB and 10 attachments per message."""
    return MediaPolicy(allowed_hosts=frozenset(settings.media_fetch_allowed_hosts),
                       allow_private=settings.media_fetch_allow_private)


def keep_reply_media(services: Services, job: MediaJob) -> None:
    """Fetch and keep an agent reply's attachments, or record why they were refused."""
    settings = services.settings
    auth = _cxone_auth(services, job.urls)
    try:
        fetched = fetch_all(job.urls, policy(settings), auth=auth)
    except MediaRejected as exc:
        event(log, "media.rejected", logging.WARNING, message_id=job.message_id,
              reason=exc.reason)
        with services.db.connection() as conn:
            db_media.keep_reply_media(conn, job.message_id, media=[],
                                      rejected=f"media_rejected: {exc.reason}")
        return
    with services.db.transaction() as conn:
        kept = store(conn, fetched, retention_s=settings.media_retention_s,
                     direction="outbound")
        db_media.keep_reply_media(conn, job.message_id, rejected=None, media=[
            {"url": public_url(settings.public_base_url, s), "content_type": s.content_type}
            for s in kept])
    event(log, "media.kept", message_id=job.message_id, count=len(kept))


def inbound_media(services: Services, media: tuple[dict[str, str], ...]) -> list[dict[str, str]]:
    """A customer's attachments behind our own URLs (fetched with Twilio's credentials);
    one that cannot be fetched is left out, never the text."""
    settings = services.settings
    kept: list[dict[str, str]] = []
    for item in media:
        try:
            [fetched] = fetch_all([item["url"]], policy(settings),
                                  auth=(settings.twilio_account_sid, settings.twilio_auth_token))
        except MediaRejected as exc:
            event(log, "media.inbound_rejected", logging.WARNING, reason=exc.reason)
            continue
        with services.db.transaction() as conn:
            [stored] = store(conn, [fetched], retention_s=settings.media_retention_s,
                             direction="inbound")
        kept.append({"url": public_url(settings.public_base_url, stored),
                     "content_type": stored.content_type})
    return kept


def _cxone_auth(services: Services, urls: tuple[str, ...]) -> Any:
    """CXone's bearer token, for attachments on CXone's own API host (the contract says
    they may need it); none for any other host."""
    settings = services.settings
    cxone_hosts = {urlsplit(settings.cxone_api_base_url).netloc}
    if settings.cxone_dfo_base_url:
        cxone_hosts.add(urlsplit(settings.cxone_dfo_base_url).netloc)
    if not urls or urlsplit(urls[0]).netloc not in cxone_hosts:
        return None
    tokens = getattr(services.cxone, "tokens", None)
    return f"Bearer {tokens.get()}" if tokens is not None else None
