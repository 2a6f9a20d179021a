"""The DFO simulator's memory: tokens, channels, messages, status updates, limits.

One lock guards it all. Outbound message ids become known when the simulated
agent's callback got a 200 with an id from the gateway (see
:mod:`sandbox.dfo_sim_agent`); only known ids take status updates.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox.control import RequestLog
from sandbox.dfo_sim_agent import AgentSide
from sandbox.dfo_sim_limits import Limits
from sandbox.dfo_sim_model import (
    Channel,
    DfoError,
    OneTimeToken,
    Outbound,
    check_channel,
    check_inbound,
    check_ott_verification,
    check_status,
    now_millis,
    unsigned_jwt,
)
from sandbox.faults import FaultSwitches, stamp
from sandbox.files import FileStore

if TYPE_CHECKING:
    from sandbox.dfo_sim_config import DfoSimConfig

ENDPOINTS = ("discovery", "token", "cxone_config", "create", "status", "ott", "channels")
AGENT_LOG_SIZE = 10_000
FAULT_TARGETS: dict[str, frozenset[str]] = {
    **{name: frozenset({name}) for name in ENDPOINTS},
    "files": frozenset({"files"}),
    "any": frozenset({*ENDPOINTS, "files"}),
}


class DfoSimState:
    """All of the simulator's state; every public method takes the lock."""

    def __init__(self, config: DfoSimConfig, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._initial_config = replace(config)
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._refresh_tokens: dict[str, float] = {}
        self._channel_tokens: dict[str, tuple[float, str]] = {}  # OTT access token
        self.files = FileStore(require_token_by_default=False)
        self.agent = AgentSide(self)
        self._clear()

    def _clear(self) -> None:
        self.config = replace(self._initial_config, channels=dict(self._initial_config.channels))
        self.faults = FaultSwitches(FAULT_TARGETS)
        self.log = RequestLog(ENDPOINTS)
        self.files.clear()
        self._channels = {cid: Channel(cid, number, "config", created_at=stamp())
                          for cid, number in self.config.channels.items()}
        self._otts: dict[str, OneTimeToken] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._outbound: dict[str, Outbound] = {}
        self._status_updates: list[dict[str, Any]] = []
        self._limits = self._new_limits()
        # Each entry holds every exchange of one agent call (~5 kB): the last ones only,
        # so an hour-long soak (100k replies) does not grow the simulator by half a GB.
        self.agent_log: deque[dict[str, Any]] = deque(maxlen=AGENT_LOG_SIZE)
        self.admin_backs: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget everything but issued tokens; restore the config and channels."""
        with self.lock:
            self._clear()

    def update_config(self, changes: dict[str, Any]) -> None:
        """Apply checked config changes; a limit change starts every counter afresh."""
        with self.lock:
            for name, value in changes.items():
                setattr(self.config, name, value)
            if {"contact_burst", "contact_refill_per_min", "tenant_limit_per_hour"} & set(changes):
                self._limits = self._new_limits()

    def _new_limits(self) -> Limits:
        config = self.config
        return Limits(config.contact_burst, config.contact_refill_per_min,
                      config.tenant_limit_per_hour, self.clock())

    # --- tokens --------------------------------------------------------------------------

    def new_tokens(self, issuer: str) -> dict[str, Any]:
        """A token answer of the password grant (credentials already checked)."""
        with self.lock:
            now, ttl = self.clock(), self.config.token_ttl_s
            access, refresh = "dfo_" + secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self._tokens[access] = now + ttl
            self._refresh_tokens[refresh] = now + 30 * 86_400
            claims = {"iss": issuer, "sub": f"user:{self.config.access_key_id}",
                      "aud": self.config.client_id, "tenantId": self.config.tenant_id,
                      "iat": int(now), "exp": int(now + ttl)}
            return {"access_token": access, "token_type": "Bearer", "expires_in": ttl,
                    "refresh_token": refresh, "id_token": unsigned_jwt(claims)}

    def use_refresh_token(self, refresh: str) -> bool:
        with self.lock:
            expiry = self._refresh_tokens.pop(refresh, None)
            return expiry is not None and expiry > self.clock()

    def check_token(self, authorization: str | None) -> None:
        """401 unless ``authorization`` is ``Bearer <a live API token>``."""
        token = _bearer(authorization)
        with self.lock:
            expiry = self._tokens.get(token or "")
            if expiry is not None and expiry > self.clock():
                return
        reason = ("missing bearer token" if token is None else
                  "unknown token" if expiry is None else "token expired")
        raise DfoError(401, "Unauthorized", reason,
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def token_is_live(self, authorization: str | None) -> bool:
        try:
            self.check_token(authorization)
        except DfoError:
            return False
        return True

    def expire_tokens(self) -> int:
        """Expire every API token, refresh token and channel token; returns the live count."""
        with self.lock:
            now = self.clock()
            live = sum(1 for expiry in self._tokens.values() if expiry > now)
            self._tokens = dict.fromkeys(self._tokens, now)
            self._refresh_tokens.clear()
            self._channel_tokens.clear()
            return live

    # --- one-time tokens and channels (the Add action) -----------------------------------

    def issue_ott(self, brand_id: str, user_id: str, ttl_s: int) -> OneTimeToken:
        with self.lock:
            ott = OneTimeToken(secrets.token_urlsafe(18), brand_id, user_id,
                               self.clock() + ttl_s)
            self._otts[ott.token] = ott
            return ott

    def verify_ott(self, body: Any, issuer: str) -> dict[str, Any]:
        """One-time-token verification: 401 unknown/expired/mismatched, 400 already used."""
        brand, user, token = check_ott_verification(body)
        with self.lock:
            ott, now = self._otts.get(token), self.clock()
            if ott is None or ott.brand_id != brand or ott.user_id != user:
                raise DfoError(401, "InvalidToken", "one-time token is not valid", "token")
            if ott.used_at is not None:
                raise DfoError(400, "TokenAlreadyUsed", "one-time token was already used",
                               "token")
            if ott.expires_at <= now:
                raise DfoError(401, "TokenExpired", "one-time token has expired", "token")
            ott.used_at = now
            access = unsigned_jwt({"iss": issuer, "sub": f"user:{user}", "brandId": int(brand),
                                   "tenantId": self.config.tenant_id, "iat": int(now),
                                   "exp": int(now + 900), "jti": secrets.token_hex(8)})
            self._channel_tokens[access] = (now + 900, brand)
            return {"brand": {"id": int(brand), "tenantId": self.config.tenant_id,
                              "friendlyName": self.config.brand_name},
                    "user": {"id": user, "brandId": int(brand)},
                    "accessToken": access}

    def create_channel(self, authorization: str | None, body: Any) -> dict[str, Any]:
        """``POST /dfo/3.0/channels`` with the accessToken of a verified one-time token."""
        token = _bearer(authorization) or ""
        with self.lock:
            entry = self._channel_tokens.get(token)
            if entry is None or entry[0] <= self.clock():
                raise DfoError(401, "Unauthorized", "create a channel with the accessToken of "
                               "a verified one-time token",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            checked = check_channel(body)
            if checked["id"] in self._channels:
                raise DfoError(409, "ChannelAlreadyExists",
                               f"channel {checked['id']} already exists", "id")
            channel = Channel(checked["id"], checked["idOnExternalPlatform"], "add-action",
                              dict(checked), stamp())
            self._channels[channel.id] = channel
            return {**checked, "brandId": int(entry[1])}

    def add_channel(self, channel_id: str, number: str) -> dict[str, Any]:
        with self.lock:
            channel = Channel(channel_id, number, "control", created_at=stamp())
            self._channels[channel_id] = channel
            return channel.to_json()

    def channel(self, channel_id: str) -> Channel:
        with self.lock:
            channel = self._channels.get(channel_id)
            if channel is None:
                raise DfoError(404, "ChannelNotFound", f"no channel {channel_id!r}", "channelId")
            return channel

    def channels(self) -> list[dict[str, Any]]:
        with self.lock:
            return [channel.to_json() for channel in self._channels.values()]

    # --- messages and statuses ------------------------------------------------------------

    def create_inbound(self, channel_id: str, body: Any) -> dict[str, Any]:
        """Store a customer message: 404 channel, 400 body, 409 duplicate, 429 limits."""
        with self.lock:
            channel = self.channel(channel_id)
            message = check_inbound(body, channel.number)
            if message.id in self._messages:
                raise DfoError(409, "DuplicateMessage",
                               f"message {message.id} already exists", "idOnExternalPlatform")
            self._take_limits(message.thread_id, store=True)
            record = {"idOnExternalPlatform": message.id, "channelId": channel_id,
                      "threadId": message.thread_id, "author": message.author,
                      "text": message.text, "attachments": message.attachments,
                      "createdAtWithMilliseconds": message.created_at,
                      "receivedAt": now_millis(self.clock()), "body": body}
            self._messages[message.id] = record
            return {"id": f"dfo_{secrets.token_hex(12)}", "idOnExternalPlatform": message.id,
                    "thread": {"idOnExternalPlatform": message.thread_id},
                    "createdAtWithMilliseconds": message.created_at}

    def put_status(self, channel_id: str, message_id: str, body: Any) -> dict[str, Any]:
        """A status update of an accepted reply: 404 unknown, 400 body, 429 limits."""
        with self.lock:
            self.channel(channel_id)
            outbound = self._outbound.get(message_id)
            if outbound is None or outbound.channel_id != channel_id:
                raise DfoError(404, "MessageNotFound",
                               f"no message {message_id!r} in channel {channel_id}", "id")
            checked = check_status(body)
            self._take_limits(outbound.thread_id, store=False)
            return {"id": message_id, "status": checked["status"]}

    def record_status(self, channel_id: str, message_id: str, body: Any,
                      status: int | None) -> None:
        """Log one status PUT as sent and answered (every one, refused ones too)."""
        entry = {"at": stamp(), "channelId": channel_id, "id": message_id, "body": body,
                 "response_status": status}
        with self.lock:
            self._status_updates.append(entry)
            outbound = self._outbound.get(message_id)
            if outbound is not None and outbound.channel_id == channel_id:
                outbound.status_updates.append(entry)

    def note_outbound(self, channel_id: str, thread_id: str, message_id: str,
                      mode: str) -> None:
        with self.lock:
            if message_id not in self._outbound:
                self._outbound[message_id] = Outbound(message_id, channel_id, thread_id, mode,
                                                      stamp())

    def _take_limits(self, thread_id: str, *, store: bool) -> None:
        over = self._limits.take(thread_id, self.clock(), store=store)
        if over is not None and self.config.enforce_limits:
            which, wait = over
            raise DfoError(429, "TooManyRequests", f"{which} rate limit exceeded",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})

    # --- views ----------------------------------------------------------------------------

    def messages(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self._messages.values()
                    if channel_id in (None, m["channelId"])]

    def message(self, message_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._messages.get(message_id)
            return dict(found) if found else None

    def outbound(self, message_id: str | None = None) -> list[dict[str, Any]]:
        """Every accepted reply, or the one ``message_id`` (a lookup: soaks ask per id)."""
        with self.lock:
            if message_id is None:
                chosen = list(self._outbound.values())
            else:
                chosen = [self._outbound[message_id]] if message_id in self._outbound else []
            return [{"id": o.id, "channelId": o.channel_id, "threadId": o.thread_id,
                     "mode": o.mode, "acceptedAt": o.accepted_at,
                     "statusUpdates": [dict(u) for u in o.status_updates]} for o in chosen]

    def status_updates(self, message_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(u) for u in self._status_updates if message_id in (None, u["id"])]

    def limits(self) -> dict[str, Any]:
        with self.lock:
            return self._limits.to_json(self.config.enforce_limits)


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
