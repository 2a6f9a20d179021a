"""Signed webhooks from the Twilio simulator: status callbacks and inbound messages.

Requests are form-encoded and carry ``X-Twilio-Signature`` computed exactly as
``twilio.request_validator.RequestValidator(auth_token).compute_signature(url,
params)`` does, over the URL as called (query included).

Status callbacks go through a small pool of sender threads (greenlets under
gevent), each with its own ``requests.Session``. A message's callbacks always
go to the same thread, so they leave in the order they were queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from twilio.request_validator import RequestValidator

from sandbox.twilio_sim_model import API_VERSION, count_segments

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT_S = 5.0
USER_AGENT = "TwilioProxy/1.1"
RESPONSE_BODY_LIMIT = 2000

# A few NANP area codes so inbound webhooks carry plausible geographic fields;
# Twilio sends empty strings when it knows nothing, and so do we.
_AREA_CODES = {
    "415": ("SAN FRANCISCO", "CA", "94105"),
    "212": ("NEW YORK", "NY", "10001"),
    "312": ("CHICAGO", "IL", "60601"),
    "206": ("SEATTLE", "WA", "98101"),
    "617": ("BOSTON", "MA", "02108"),
    "305": ("MIAMI", "FL", "33101"),
    "512": ("AUSTIN", "TX", "73301"),
}
_COUNTRY_PREFIXES = (("+1", "US"), ("+44", "GB"), ("+33", "FR"), ("+49", "DE"), ("+61", "AU"))

ResultHandler = Callable[[dict[str, Any]], None]


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The ``X-Twilio-Signature`` for a POST of ``params`` to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


def post_signed(
    session: requests.Session | None,
    auth_token: str,
    url: str,
    params: dict[str, str],
    idempotency_token: str | None = None,
) -> dict[str, Any]:
    """POST one signed webhook; return ``{at, url, http_status, response_body}`` or ``error``.

    One attempt, no retry: the caller decides whether to send again.
    """
    headers = {
        "X-Twilio-Signature": sign(auth_token, url, params),
        "User-Agent": USER_AGENT,
        "I-Twilio-Idempotency-Token": idempotency_token or str(uuid.uuid4()),
    }
    result: dict[str, Any] = {"at": time.time(), "url": url}
    poster = session.post if session is not None else requests.post
    try:
        response = poster(url, data=params, headers=headers, timeout=CALLBACK_TIMEOUT_S)
    except requests.RequestException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["http_status"] = response.status_code
    result["response_body"] = response.text[:RESPONSE_BODY_LIMIT]
    return result


@dataclass
class CallbackJob:
    """One status callback to deliver."""

    key: str  # the message SID: keeps one message's callbacks in order
    url: str
    params: dict[str, str]
    on_result: ResultHandler
    generation: int
    idempotency_token: str


class CallbackSender:
    """A pool of threads that deliver status callbacks, one attempt each.

    Real Twilio sends callbacks with vast parallelism; the pool must not be what
    limits them: at 30 messages/s (120 callbacks/s) a gateway answering in 250 ms
    needs 30 senders, so there are 64 (idle ones cost a greenlet each).
    """

    def __init__(self, auth_token: Callable[[], str], workers: int = 64):
        self._auth_token = auth_token
        self._queues: list[queue.Queue[CallbackJob]] = [queue.Queue() for _ in range(workers)]
        self._started = False
        self._start_lock = threading.Lock()
        self.generation = 0

    def submit(self, job: CallbackJob) -> None:
        """Queue ``job``; jobs with the same key are sent in submission order."""
        self._ensure_started()
        index = zlib.crc32(job.key.encode()) % len(self._queues)
        self._queues[index].put(job)

    def forget_pending(self) -> None:
        """Drop callbacks not yet sent (after a reset they would confuse the next run)."""
        self.generation += 1

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._started:
                return
            for index, jobs in enumerate(self._queues):
                thread = threading.Thread(
                    target=self._work,
                    args=(jobs,),
                    name=f"twilio-sim-callbacks-{index}",
                    daemon=True,
                )
                thread.start()
            self._started = True

    def _work(self, jobs: queue.Queue[CallbackJob]) -> None:
        session = requests.Session()
        while True:
            job = jobs.get()
            if job.generation != self.generation:
                continue
            try:
                result = post_signed(
                    session, self._auth_token(), job.url, job.params, job.idempotency_token
                )
                job.on_result(result)
            except Exception:  # a broken job must not kill the worker
                log.exception('{"event": "twilio_sim.callback_crashed"}')


def status_callback_params(
    *,
    account_sid: str,
    sid: str,
    status: str,
    sender: str | None,
    to: str,
    messaging_service_sid: str | None,
    error_code: int | None,
    done_date: str | None,
) -> dict[str, str]:
    """The form fields of a status callback for ``status``."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "From": sender or "",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    if done_date is not None:
        params["RawDlrDoneDate"] = done_date
    return params


def inbound_params(
    *,
    account_sid: str,
    messaging_service_sid: str,
    sid: str,
    sender: str,
    to: str,
    body: str,
    media: list[dict[str, str]],
    opt_out_type: str | None,
) -> dict[str, str]:
    """The form fields of an incoming-message webhook."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "Body": body,
        "From": sender,
        "MessageSid": sid,
        "MessagingServiceSid": messaging_service_sid,
        "NumMedia": str(len(media)),
        "NumSegments": str(count_segments(body)),
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }
    params |= geographic_fields("From", sender) | geographic_fields("To", to)
    for index, item in enumerate(media):
        params[f"MediaUrl{index}"] = item["url"]
        params[f"MediaContentType{index}"] = item.get("content_type", "image/jpeg")
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return params


def geographic_fields(prefix: str, number: str) -> dict[str, str]:
    """``{prefix}City/State/Zip/Country`` for ``number`` (empty when unknown)."""
    country = next((code for dial, code in _COUNTRY_PREFIXES if number.startswith(dial)), "")
    city, state, zip_code = ("", "", "")
    if country == "US":
        city, state, zip_code = _AREA_CODES.get(number[2:5], ("", "", ""))
    return {
        f"{prefix}City": city,
        f"{prefix}State": state,
        f"{prefix}Zip": zip_code,
        f"{prefix}Country": country,
    }
