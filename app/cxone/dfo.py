"""The DFO adapter: a real tenant's DFO 3.0 "Bring Your Own Channel" API, its whole wire format.

docs/contracts/cxone-dfo.md. CXone pushes agent replies to our integration box
(app/byoc.py parses them with :func:`parse_callback`); this adapter calls the DFO
API: an access-key token (OIDC discovery, password grant with Basic client auth,
refreshed early and once on a 401), the API host from ``cxone-configuration``
unless CXONE_DFO_BASE_URL is set, customer texts as messages on the channel of
the number they were sent to, and final delivery statuses as status PUTs.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from app.config import Settings
from app.cxone import InboundPost, Posted, ReplyPage, StatusReport, Threads, http
from app.errors import AuthenticationFailed, Conflict, PermanentError, TransientError
from app.logs import event
from app.pacing import Pace

log = logging.getLogger(__name__)

SYSTEM = "dfo"
# CXone's published limit for updates of one contact (inbound posts and status updates
# of one thread): a burst of 250, refilled at 17 a minute; and per tenant 360,000
# stored messages an hour. Paced client-side: delayed, never dropped.
THREAD_RATE = 17 / 60.0
THREAD_BURST = 250
TENANT_RATE = 360_000 / 3600.0
# What CXone hears for our own refusals (the contract's table): the reason code as is.
OWN_REASONS = ("opted_out", "no_consent", "gateway_gave_up", "invalid_message",
               "media_rejected", "too_long")


class Dfo:
    """The CXone port over DFO 3.0 (CXone pushes replies: nothing to poll)."""

    mode = "dfo"
    polls = False
    reports_give_up = True

    def __init__(self, settings: Settings, *, pool_size: int = 32) -> None:
        self.settings = settings
        self.session = http.session(pool_size)
        self.tokens = http.TokenCache(self._fetch_token)
        self._lock = threading.Lock()
        self._token_endpoint: str | None = None
        self._base_url: str | None = settings.cxone_dfo_base_url
        self._id_token: str | None = None

    # -- the port ---------------------------------------------------------------------------

    def fetch_replies(self, cursor: str | None, page_size: int) -> ReplyPage:
        return ReplyPage([], [], cursor, 0)

    def find_stale(self, created_before: datetime, cursor: str | None) -> ReplyPage:
        return ReplyPage([], [], None, 0)

    def report_status(self, message_id: str, report: StatusReport, *,
                      channel_id: str | None = None) -> bool:
        """PUT a final status on the id we returned to CXone; nothing for SENT (accepting
        the callback already said "sent")."""
        body = status_body(report)
        if body is None:
            return False
        if channel_id is None:
            raise PermanentError(f"dfo status: no channel is known for message {message_id}")
        path = f"/dfo/3.0/channels/{_segment(channel_id)}/messages/{_segment(message_id)}/status"
        self._request("PUT", path, "status", json=body)
        return True

    def post_inbound(self, post: InboundPost, threads: Threads, *,
                     channel_id: str | None = None) -> Posted:
        """Create the message on the channel of the number the customer texted; 409 means
        CXone has it already (a retry after a lost answer): done."""
        if channel_id is None:
            raise PermanentError(f"dfo inbound: no channel serves {post.to}")
        thread = thread_id(post.to, post.from_)
        try:
            self._request("POST", f"/dfo/3.0/channels/{_segment(channel_id)}/messages",
                          "create", json=inbound_body(post, thread))
        except Conflict:
            event(log, "dfo.inbound_already_there", sid=post.sid)
        return Posted(message_id=post.sid, conversation_id=thread)

    def thread_of(self, post: InboundPost) -> str | None:
        return thread_id(post.to, post.from_)

    def call_paces(self, thread: str | None) -> list[Pace]:
        """The client-side limits a call about ``thread`` counts against."""
        paces = [Pace(None, "dfo:tenant", TENANT_RATE, burst=int(TENANT_RATE))]
        if thread:
            paces.insert(0, Pace(None, f"dfo:thread:{thread}", THREAD_RATE, burst=THREAD_BURST))
        return paces

    def problem(self) -> str | None:
        refused = self.tokens.refused
        return str(refused) if refused else None

    # -- the Add action (app/byoc_actions.py) ---------------------------------------------

    def verify_one_time_token(self, *, brand_id: str, user_id: str, token: str) -> dict[str, Any]:
        """CXone's answer for a one-time token of the BYOC form's Add action; NotFound,
        AuthenticationFailed or PermanentError when it is bad or used."""
        body = {"brandId": brand_id, "userId": user_id, "token": token,
                "purpose": "channel-integration"}
        return http.object_of(SYSTEM, "ott", self._request(
            "POST", "/dfo/3.0/one-time-token/verification", "ott", json=body))

    def create_channel(self, access_token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a channel with the access token a one-time token's verification gave."""
        response = http.send(self.session, "POST", self.base_url() + "/dfo/3.0/channels",
                             system=SYSTEM, operation="channel_create", json=body,
                             headers={"Authorization": f"Bearer {access_token}",
                                      "Accept": "application/json"})
        http.raise_for_status(SYSTEM, "channel_create", response)
        return http.object_of(SYSTEM, "channel_create", response)

    # -- tokens and the API host ------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        assert s.cxone_access_key_id and s.cxone_access_key_secret
        response = http.send(self.session, "POST", self._discover_token_endpoint(),
                             system=SYSTEM, operation="token",
                             auth=(s.cxone_client_id, s.cxone_client_secret),
                             data={"grant_type": "password", "username": s.cxone_access_key_id,
                                   "password": s.cxone_access_key_secret})
        if response.status_code in (400, 401, 403):
            raise AuthenticationFailed(
                f"CXone refused the access key (HTTP {response.status_code}); check "
                "CXONE_ACCESS_KEY_ID/SECRET and CXONE_CLIENT_ID/SECRET",
                status=response.status_code)
        http.raise_for_status(SYSTEM, "token", response)
        data = http.object_of(SYSTEM, "token", response)
        try:
            token, lifetime = str(data["access_token"]), float(data.get("expires_in") or 3600)
        except (KeyError, TypeError, ValueError) as exc:
            raise TransientError("dfo token: malformed token response") from exc
        with self._lock:
            self._id_token = data.get("id_token") if isinstance(data.get("id_token"), str) \
                else None
        return token, lifetime

    def _discover_token_endpoint(self) -> str:
        with self._lock:
            if self._token_endpoint:
                return self._token_endpoint
        url = self.settings.cxone_issuer_url + "/.well-known/openid-configuration"
        response = http.send(self.session, "GET", url, system=SYSTEM, operation="discovery")
        http.raise_for_status(SYSTEM, "discovery", response)
        endpoint = http.object_of(SYSTEM, "discovery", response).get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise TransientError("dfo discovery: no token_endpoint")
        with self._lock:
            self._token_endpoint = endpoint
        return endpoint

    def base_url(self) -> str:
        """The DFO API root: CXONE_DFO_BASE_URL, or discovered from the token's claims."""
        with self._lock:
            if self._base_url:
                return self._base_url
        self.tokens.get()
        claims = jwt_claims(self._id_token or "")
        issuer, tenant = claims.get("iss"), claims.get("tenantId")
        if not isinstance(issuer, str) or not isinstance(tenant, str):
            raise TransientError("dfo: the id_token names no issuer or tenant; set "
                                 "CXONE_DFO_BASE_URL")
        response = http.send(self.session, "GET",
                             f"{issuer.rstrip('/')}/.well-known/cxone-configuration",
                             system=SYSTEM, operation="configuration",
                             params={"tenantId": tenant})
        http.raise_for_status(SYSTEM, "configuration", response)
        config = http.object_of(SYSTEM, "configuration", response)
        base = api_root(config)
        with self._lock:
            self._base_url = base
        event(log, "dfo.api_discovered", base_url=base)
        return base

    def _request(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        url = self.base_url() + path
        for attempt in (1, 2):
            token = self.tokens.get(force=attempt == 2)
            response = http.send(self.session, method, url, system=SYSTEM, operation=operation,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Accept": "application/json"}, **kwargs)
            if response.status_code == 401 and attempt == 1:
                event(log, "dfo.token_rejected", operation=operation)
                continue
            break
        http.raise_for_status(SYSTEM, operation, response)
        return response


# -- the wire format ----------------------------------------------------------------------

def thread_id(business: str, customer: str) -> str:
    """Our thread id for a number pair (a choice of the contract): digits_digits, stable."""
    return f"{business.lstrip('+')}_{customer.lstrip('+')}"


def status_body(report: StatusReport, now: datetime | None = None) -> dict[str, Any] | None:
    """The status PUT for a report; None when DFO hears nothing (SENT)."""
    at = (report.at or now or datetime.now(UTC)).astimezone(UTC)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    if report.status == "DELIVERED":
        return {"status": "delivered", "updatedAt": stamp}
    if report.status == "READ":
        return {"status": "seen", "updatedAt": stamp}
    if report.status in ("FAILED", "UNDELIVERABLE"):
        code = report.reason_code or "unknown"
        reason = code if code in OWN_REASONS or not report.reason_message \
            else f"{code} {report.reason_message}"
        return {"status": "failed", "updatedAt": stamp, "reason": reason[:500]}
    return None


def inbound_body(post: InboundPost, thread: str) -> dict[str, Any]:
    """A customer's text as a DFO message; its id is the Twilio MessageSid."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "idOnExternalPlatform": post.sid,
        "direction": "inbound",
        "createdAtWithMilliseconds": now.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{now.microsecond // 1000:03d}Z",
        "thread": {"idOnExternalPlatform": thread},
        "messageContent": {"type": "TEXT", "payload": {"text": post.body}},
        "authorEndUserIdentity": {"idOnExternalPlatform": post.from_, "nickname": post.from_},
        "recipients": [{"idOnExternalPlatform": post.to, "isPrimary": True, "isPrivate": False}],
    }
    if post.media:
        body["attachments"] = [{"friendlyName": m.get("name") or f"attachment-{n + 1}",
                                "url": m["url"]} for n, m in enumerate(post.media)]
    return body


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (we only read where to find the API)."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def api_root(config: dict[str, Any]) -> str:
    """``https://api-de-{area}.{domain}`` from a ``cxone-configuration`` answer."""
    area, domain = config.get("area"), config.get("domain")
    if not (isinstance(area, str) and isinstance(domain, str) and area.isalnum()
            and all(c.isalnum() or c in ".-" for c in domain)):
        raise TransientError("dfo configuration: no usable area and domain")
    return f"https://api-de-{area}.{domain}"


def _segment(value: str) -> str:
    return quote(value, safe="")
