"""The agent side of the DFO simulator: it calls the gateway's BYOC callbacks as CXone does.

An agent reply is ``POST {gateway}/byoc/2.0/channel/{channelId}/outbound`` (DFO 3.0
mode) or ``POST {gateway}/byoc/1.0/posts/{threadId}/messages`` (legacy mode),
with the cached bearer token from ``{gateway}/byoc/1.0/token``. A 401 makes it
fetch a new token and retry once. Every HTTP exchange is logged with its
status, body and timing.

The legacy body is built from the contract's fallbacks (``post``,
``recipients``, ``messageContent.text``): public material does not show it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from sandbox.dfo_sim_model import now_millis
from sandbox.faults import stamp

if TYPE_CHECKING:
    from sandbox.dfo_sim_config import DfoSimConfig
    from sandbox.dfo_sim_state import DfoSimState

RESPONSE_BODY_LIMIT = 4000


@dataclass(frozen=True)
class Reply:
    """One agent reply to send (checked by the control API)."""

    channel_id: str
    thread_id: str
    customer: str
    text: str
    attachments: list[dict[str, Any]]
    mode: str  # "3.0" | "legacy"
    repeat: int = 1
    cxone_message_id: str | None = None
    extra: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    bearer: str | None = None  # send this token first instead of the cached one


class AgentSide:
    """Calls the gateway; caches the BYOC token like CXone does."""

    def __init__(self, state: DfoSimState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._token: str | None = None
        self._session = requests.Session()

    def forget_token(self) -> None:
        with self._lock:
            self._token = None

    def reply(self, reply: Reply) -> dict[str, Any]:
        """Send one reply (``repeat`` times, identical); return the gateway's last answer."""
        config = self._config()
        body = reply.raw if reply.raw is not None else build_body(reply, config)
        if reply.mode == "legacy":
            url = f"{config.gateway_url}/byoc/1.0/posts/{quote(reply.thread_id, safe='')}/messages"
        else:
            url = f"{config.gateway_url}/byoc/2.0/channel/{quote(reply.channel_id, safe='')}" \
                  "/outbound"
        sends = []
        for _ in range(reply.repeat):
            attempts = self._call_with_token(url, body, reply.bearer)
            final = attempts[-1]
            message_id = _message_id(final.get("body"), reply.mode)
            if final.get("status") == 200 and message_id:
                self._state.note_outbound(reply.channel_id, reply.thread_id, message_id,
                                          reply.mode)
            sends.append({"status": final.get("status"), "body": final.get("body"),
                          "messageId": message_id, "attempts": attempts,
                          "problems": answer_problems(final, reply)})
        result = {"url": url, "request": body, **sends[-1], "sends": sends}
        with self._state.lock:
            self._state.agent_log.append({"at": stamp(), "kind": "reply", **result})
        return result

    def typing(self, channel_id: str, thread_id: str) -> dict[str, Any]:
        """``POST .../sender-action`` (the gateway answers 204)."""
        config = self._config()
        url = (f"{config.gateway_url}/byoc/1.0/channel/{quote(channel_id, safe='')}/thread/"
               f"{quote(thread_id, safe='')}/sender-action")
        attempts = self._call_with_token(url, {"senderAction": "typing"}, None)
        result = {"url": url, "status": attempts[-1].get("status"), "attempts": attempts}
        with self._state.lock:
            self._state.agent_log.append({"at": stamp(), "kind": "typing", **result})
        return result

    def _config(self) -> DfoSimConfig:
        config = self._state.config
        if not config.gateway_url:
            raise ValueError("no gateway url: set DFO_SIM_GATEWAY_URL or POST /_sandbox/config")
        return config

    def _call_with_token(self, url: str, body: Any, bearer: str | None) -> list[dict[str, Any]]:
        attempts: list[dict[str, Any]] = []
        token = bearer if bearer is not None else self._cached_or_new(attempts)
        if token is None:
            return attempts  # the token request failed: that is the answer
        attempts.append(self._exchange("callback", url, json_body=body, token=token))
        if attempts[-1].get("status") == 401:
            self.forget_token()
            token = self._cached_or_new(attempts)
            if token is not None:
                attempts.append(self._exchange("callback", url, json_body=body, token=token))
        return attempts

    def _cached_or_new(self, attempts: list[dict[str, Any]]) -> str | None:
        with self._lock:
            if self._token is not None:
                return self._token
        config = self._config()
        fields = {"grant_type": "client_credentials", "client_id": config.byoc_client_id,
                  "client_secret": config.byoc_client_secret}
        as_json = config.byoc_token_format == "json"
        exchange = self._exchange("token", f"{config.gateway_url}/byoc/1.0/token",
                                  json_body=fields if as_json else None,
                                  form=None if as_json else fields)
        attempts.append(exchange)
        body = exchange.get("body")
        token = body.get("access_token") if isinstance(body, dict) else None
        if exchange.get("status") != 200 or not isinstance(token, str) or not token:
            return None
        with self._lock:
            self._token = token
        return token

    def _exchange(self, kind: str, url: str, *, json_body: Any = None,
                  form: dict[str, str] | None = None, token: str | None = None
                  ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        record: dict[str, Any] = {"kind": kind, "url": url, "at": stamp(),
                                  "authorization": "Bearer" if token else None}
        started = time.monotonic()
        try:
            response = self._session.post(url, json=json_body, data=form, headers=headers,
                                          timeout=self._state.config.gateway_timeout_s)
        except requests.RequestException as exc:
            record.update(status=None, error=f"{type(exc).__name__}: {exc}")
        else:
            record.update(status=response.status_code, body=_body_of(response),
                          www_authenticate=response.headers.get("WWW-Authenticate"))
        record["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        return record


def build_body(reply: Reply, config: DfoSimConfig) -> dict[str, Any]:
    """The callback body CXone sends, per the contract (3.0) or its fallbacks (legacy)."""
    recipient = {"idOnExternalPlatform": reply.customer, "name": reply.customer,
                 "isPrimary": True, "isPrivate": False}
    body: dict[str, Any] = {"brand": {"id": config.brand_id, "friendlyName": config.brand_name}}
    if reply.mode == "legacy":
        body |= {"post": {"idOnExternalPlatform": reply.thread_id},
                 "messageContent": {"type": "TEXT", "text": reply.text},
                 "recipients": [recipient]}
    else:
        body |= {"thread": {"idOnExternalPlatform": reply.thread_id},
                 "messageContent": {"type": "TEXT", "payload": {"text": reply.text}},
                 "endUserRecipients": [recipient]}
    if reply.attachments:
        body["attachments"] = reply.attachments
    if reply.cxone_message_id is not None:
        body["id"] = reply.cxone_message_id
    body["createdAtWithMilliseconds"] = now_millis(time.time())
    return body | (reply.extra or {})


def answer_problems(final: dict[str, Any], reply: Reply) -> list[str]:
    """Where a 200 answer departs from the contract's shape (empty: it follows it)."""
    body = final.get("body")
    if final.get("status") != 200:
        return []
    if not isinstance(body, dict):
        return ["answer is not a JSON object"]
    if reply.mode == "legacy":
        ok = isinstance(body.get("idOnExternalPlatform"), str) and body["idOnExternalPlatform"]
        return [] if ok else ["idOnExternalPlatform missing"]
    problems = []
    message = body.get("message")
    message = message if isinstance(message, dict) else {}
    for name in ("idOnExternalPlatform", "createdAtWithMilliseconds"):
        if not isinstance(message.get(name), str) or not message[name]:
            problems.append(f"message.{name} missing")
    thread = body.get("thread")
    if not isinstance(thread, dict) or thread.get("idOnExternalPlatform") != reply.thread_id:
        problems.append("thread.idOnExternalPlatform is not the reply's thread")
    for name in ("recipients", "endUserIdentities"):
        if not isinstance(body.get(name), list) or not body[name]:
            problems.append(f"{name} missing")
    return problems


def _message_id(body: Any, mode: str) -> str | None:
    if not isinstance(body, dict):
        return None
    holder = body if mode == "legacy" else body.get("message")
    value = holder.get("idOnExternalPlatform") if isinstance(holder, dict) else None
    return value if isinstance(value, str) and value else None


def _body_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:RESPONSE_BODY_LIMIT]
