"""The Twilio simulator's state: messages, the lifecycle they walk, faults, rules.

One lock guards everything; a single scheduler thread walks messages through
their statuses (``step_delay_s`` apart) and hands status callbacks to the
CallbackSender. Threads are started on first use, so that under gevent they are
greenlets (the process entry point monkey-patches before building the app).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from sandbox.control import RequestLog
from sandbox.faults import FaultSwitches
from sandbox.twilio_sim_encoding import smart_encode
from sandbox.twilio_sim_media import MediaStore, fetch_in_background, media_url
from sandbox.twilio_sim_model import (
    FINAL_STATUSES,
    PRICE_PER_SEGMENT,
    DeliveryPlan,
    ListQuery,
    Message,
    TwilioError,
    count_segments,
    error_text,
    new_sid,
    raw_dlr_done_date,
)
from sandbox.twilio_sim_rules import (
    ENDPOINTS,
    FAULT_TARGETS,
    DestinationRule,
    lifecycle_steps,
    validate_create,
)
from sandbox.twilio_sim_webhooks import (
    CallbackJob,
    CallbackSender,
    inbound_params,
    post_signed,
    status_callback_params,
)

if TYPE_CHECKING:
    from sandbox.twilio_sim import TwilioSimConfig

CANCELABLE = frozenset({"scheduled", "accepted", "queued"})

log = logging.getLogger(__name__)


def mask(number: str | None) -> str | None:
    """A phone number fit for logs: ``+1415*****23``."""
    if not number or len(number) < 8:
        return number
    return number[:5] + "*" * (len(number) - 7) + number[-2:]


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON line per event, with a stable ``event`` name."""
    if log.isEnabledFor(level):
        log.log(level, json.dumps({"event": f"twilio_sim.{event}", **fields}, default=str))


@dataclass
class CreateRecord:
    """One create request as it arrived, for ``GET /_sandbox/creates``."""

    at: float
    to: str | None
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    latency_ms: float = 0.0  # added before answering (create_latency_ms and jitter)
    result: str = "created"  # created | error | fault
    sid: str | None = None
    error_code: int | None = None
    http_status: int | None = None
    fault: str | None = None


class Scheduler:
    """Runs callables at a later time on one background thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` after ``delay_s`` seconds (in due-time, then call, order)."""
        with self._cond:
            due = time.monotonic() + max(delay_s, 0.0)
            heapq.heappush(self._heap, (due, next(self._seq), fn, args))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="twilio-sim-lifecycle", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # one bad step must not stop every other message
                log.exception('{"event": "twilio_sim.step_crashed"}')


class SimState:
    """Everything the simulator knows; safe to use from many threads."""

    def __init__(self, config: TwilioSimConfig, clock: Callable[[], float] = time.time):
        self._initial_config = replace(config)
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._messages: dict[str, Message] = {}
        self._outbound: list[Message] = []
        self._all: list[Message] = []  # outbound and inbound, creation order
        self._by_to: dict[str, list[Message]] = {}  # the same, per To: a list is not O(all)
        self._creates: list[CreateRecord] = []
        self._inbound_log: list[dict[str, Any]] = []
        self._destinations: dict[str, DestinationRule] = {}
        self.faults = FaultSwitches(FAULT_TARGETS)
        self.log = RequestLog(ENDPOINTS)
        self._sticky_senders: dict[str, str] = {}
        self._next_sender = itertools.count()
        self.media = MediaStore()
        self._rng = random.Random()
        self.scheduler = Scheduler()
        self.callbacks = CallbackSender(lambda: self.config.auth_token)

    # --- control ---------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, logs, faults and destination rules; restore the config."""
        with self._lock:
            self.config = replace(self._initial_config)
            self._messages.clear()
            self._outbound.clear()
            self._all.clear()
            self._by_to.clear()
            self._creates.clear()
            self._inbound_log.clear()
            self._destinations.clear()
            self.faults.clear()
            self.log.reset()
            self._sticky_senders.clear()
            self.media.clear()
            self.callbacks.forget_pending()
        log_event("reset")

    def set_destination(self, rule: DestinationRule) -> None:
        with self._lock:
            self._destinations[rule.to] = rule
        log_event(
            "destination_set", to=mask(rule.to), outcome=rule.outcome, callbacks=rule.callbacks
        )

    def clear_destinations(self) -> None:
        with self._lock:
            self._destinations.clear()

    def destinations(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(rule) for rule in self._destinations.values()]

    # --- REST: create, fetch, list, cancel -------------------------------

    def record_fault_create(self, form: Any, kind: str, http_status: int | None,
                            arrived_at: float) -> None:
        """Log a create that a fault answered before anything was created."""
        record = _create_record(form, arrived_at)
        record.result, record.fault, record.http_status = "fault", kind, http_status
        with self._lock:
            self._creates.append(record)

    def create_latency_s(self) -> float:
        """How long this create waits before answering: p50 ``create_latency_ms``, with jitter."""
        p50, jitter = self.config.create_latency_ms, self.config.latency_jitter_ms
        if jitter <= 0:
            return max(p50, 0.0) / 1000
        return min(max(self._rng.gauss(p50, jitter), 0.0), p50 + 4 * jitter) / 1000

    def create_message(self, form: Any, fault: str | None = None,
                       arrived_at: float | None = None, latency_ms: float = 0.0) -> Message:
        """Validate a create request like Twilio, store the message, start its lifecycle.

        ``arrived_at`` is when the request arrived (the creates log keeps it: pacing
        is measured on arrivals). Raises TwilioError (logged in the creates log)
        when Twilio would refuse it.
        """
        record = _create_record(form, self.clock() if arrived_at is None else arrived_at)
        record.fault, record.latency_ms = fault, round(latency_ms, 1)
        smart = (form.get("SmartEncoded") or "").lower() == "true"
        body = smart_encode(form.get("Body") or "") if smart else form.get("Body") or ""
        with self._lock:
            self._creates.append(record)
            rule = self._destinations.get(form.get("To") or "")
            try:
                validate_create(form, self.config, rule, body)
            except TwilioError as exc:
                record.result, record.error_code, record.http_status = "error", exc.code, exc.status
                log_event("create_refused", logging.DEBUG, to=mask(record.to), code=exc.code)
                raise
            msg = self._new_outbound(form, record.at, rule, body)
            record.sid, record.http_status = msg.sid, 201
        log_event("created", logging.DEBUG, sid=msg.sid, to=mask(msg.to), status=msg.status)
        self.scheduler.call_later(self.config.step_delay_s, self._advance, msg.sid)
        if msg.media_urls:
            fetch_in_background(msg.media_urls, self.config.media_timeout_s,
                                self.config.media_fetch_hosts, self._media_recorder(msg))
        return msg

    def _media_recorder(self, msg: Message) -> Callable[[int, dict[str, Any]], None]:
        def record(index: int, result: dict[str, Any]) -> None:
            with self._lock:
                msg.media[index] = result
            log_event("media_fetched", logging.DEBUG, sid=msg.sid, status=result.get("status"))

        return record

    def _new_outbound(self, form: Any, now: float, rule: DestinationRule | None,
                      body: str) -> Message:
        service = form.get("MessagingServiceSid") or None
        requested_from = form.get("From") or None
        media = form.getlist("MediaUrl") if hasattr(form, "getlist") else []
        initial = "accepted" if service else "queued"
        msg = Message(
            sid=new_sid("MM" if media else "SM"),
            seq=next(self._seq),
            to=form["To"],
            body=body,
            created_at=now,
            updated_at=now,
            status=initial,
            sender=requested_from,
            requested_from=requested_from,
            messaging_service_sid=service,
            media_urls=list(media),
            media=[{"url": url, "pending": True} for url in media],
            requested_body=form.get("Body"),
            status_callback=form.get("StatusCallback") or None,
            provide_feedback=(form.get("ProvideFeedback") or "").lower() == "true",
            # The spec: with a Messaging Service num_segments is "0" until a
            # sender is assigned (at ``queued``).
            num_segments=0 if service else count_segments(body),
            plan=rule.plan() if rule else DeliveryPlan(),
        )
        msg.pending_steps = lifecycle_steps(initial, msg.plan.outcome)
        msg.status_history.append({"status": initial, "at": now})
        self._messages[msg.sid] = msg
        self._outbound.append(msg)
        self._remember(msg)
        return msg

    def _remember(self, msg: Message) -> None:
        self._all.append(msg)
        self._by_to.setdefault(msg.to, []).append(msg)

    def get(self, sid: str) -> Message | None:
        with self._lock:
            return self._messages.get(sid)

    def list_page(self, query: ListQuery) -> tuple[list[Message], bool]:
        """One page of messages, newest first, and whether more follow."""
        with self._lock:
            pool = self._all if query.to is None else self._by_to.get(query.to, [])
            candidates = [msg for msg in reversed(pool) if query.matches(msg)]
            token = query.page_token or ""
            anchor = self._messages.get(token[2:]) if token else None
            if token and anchor is None:
                return [], False  # a token from before a reset: nothing left to page
            if token.startswith("PB") and anchor is not None:
                newer = [msg for msg in candidates if msg.seq > anchor.seq]
                return newer[-query.page_size :], True
            if anchor is not None:
                candidates = [msg for msg in candidates if msg.seq < anchor.seq]
            else:
                candidates = candidates[query.page * query.page_size :]
            page = candidates[: query.page_size]
            return page, len(candidates) > len(page)

    def cancel(self, sid: str) -> Message:
        """``Status=canceled``: stop a message that has not left Twilio yet."""
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                raise KeyError(sid)
            if msg.status not in CANCELABLE:
                # Twilio refuses to cancel a message that is already on its way.
                raise TwilioError(
                    20422, message=f"Message {sid} cannot be canceled: its status is {msg.status}"
                )
            msg.pending_steps.clear()
            self._apply_status(msg, "canceled")
            jobs = self._callbacks_for(msg, "canceled", last=True)
        self._dispatch(msg, jobs)
        return msg

    def redact(self, sid: str, body: str) -> Message:
        """``Body=`` (empty): redact a message's text."""
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                raise KeyError(sid)
            msg.body = body
            msg.updated_at = self.clock()
            return msg

    # --- lifecycle --------------------------------------------------------

    def _advance(self, sid: str) -> None:
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None or not msg.pending_steps:
                return
            status = msg.pending_steps.pop(0)
            self._apply_status(msg, status)
            jobs = self._callbacks_for(msg, status, last=not msg.pending_steps)
            more = bool(msg.pending_steps)
        self._dispatch(msg, jobs)
        if more:
            self.scheduler.call_later(self.config.step_delay_s, self._advance, sid)

    def _apply_status(self, msg: Message, status: str) -> None:
        now = self.clock()
        msg.status, msg.updated_at = status, now
        msg.status_history.append({"status": status, "at": now})
        if status == "queued":
            if msg.sender is None:
                msg.sender = self._pick_sender(msg.to)
            msg.num_segments = count_segments(msg.body)
        elif status == "sent":
            msg.sent_at = now
            msg.price = f"-{float(PRICE_PER_SEGMENT) * msg.num_segments:.5f}"
        elif status in ("failed", "undelivered"):
            msg.error_code = msg.plan.error_code
            msg.error_message = error_text(msg.plan.error_code or 30008)

    def _pick_sender(self, to: str) -> str:
        # Sticky sender, as a Messaging Service does by default: one recipient
        # keeps hearing from the same number; new recipients go round-robin.
        pool = self.config.sender_numbers
        if to not in self._sticky_senders:
            self._sticky_senders[to] = pool[next(self._next_sender) % len(pool)]
        return self._sticky_senders[to]

    def _callbacks_for(self, msg: Message, status: str, last: bool) -> list[dict[str, str]]:
        """The callback payloads to send now for ``status``, per the message's plan."""
        if not msg.status_callback or msg.plan.callbacks == "drop":
            return []
        params = status_callback_params(
            account_sid=self.config.account_sid,
            sid=msg.sid,
            status=status,
            sender=msg.sender,
            to=msg.to,
            messaging_service_sid=msg.messaging_service_sid,
            error_code=msg.error_code if status in ("failed", "undelivered") else None,
            done_date=raw_dlr_done_date(msg.updated_at)
            if status in ("delivered", "undelivered")
            else None,
        )
        mode = msg.plan.callbacks
        if mode == "duplicate":
            return [params, params]
        if mode == "reorder":
            if not last:
                msg.held_callbacks.append(params)
                return []
            held, msg.held_callbacks = msg.held_callbacks, []
            return [params, *held]
        return [params]

    def _dispatch(self, msg: Message, payloads: list[dict[str, str]]) -> None:
        if not payloads or not msg.status_callback:
            return
        url = msg.status_callback
        generation = self.callbacks.generation
        for params in payloads:
            job = CallbackJob(
                key=msg.sid,
                url=url,
                params=params,
                generation=generation,
                on_result=self._recorder(msg, params["MessageStatus"]),
                idempotency_token=f"{msg.sid}-{params['MessageStatus']}",
            )
            if msg.plan.delay_ms > 0:
                self.scheduler.call_later(msg.plan.delay_ms / 1000, self.callbacks.submit, job)
            else:
                self.callbacks.submit(job)

    def _recorder(self, msg: Message, status: str) -> Callable[[dict[str, Any]], None]:
        def record(result: dict[str, Any]) -> None:
            entry = {"status": status, **{k: v for k, v in result.items() if k != "response_body"}}
            with self._lock:
                msg.callbacks.append(entry)
            log_event(
                "callback",
                logging.DEBUG,
                sid=msg.sid,
                status=status,
                http_status=result.get("http_status"),
                error=result.get("error"),
            )

        return record

    # --- control: manual callbacks and inbound messages -------------------

    def send_manual_callback(
        self, sid: str, status: str, error_code: int | None, url: str | None
    ) -> dict[str, Any]:
        """Send one extra signed status callback for ``sid`` now; return the result."""
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                raise KeyError(sid)
            target = url or msg.status_callback
            if not target:
                raise ValueError("the message has no StatusCallback; give a url")
            params = status_callback_params(
                account_sid=self.config.account_sid,
                sid=msg.sid,
                status=status,
                sender=msg.sender,
                to=msg.to,
                messaging_service_sid=msg.messaging_service_sid,
                error_code=error_code,
                done_date=raw_dlr_done_date(self.clock())
                if status in ("delivered", "undelivered")
                else None,
            )
        result = post_signed(None, self.config.auth_token, target, params)
        self._recorder(msg, status)(result)
        return result

    def receive_inbound(self, request: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Store an incoming message and post its signed webhook (``repeat`` times).

        Media items without a ``url`` are hosted by the simulator (under ``base_url``).
        """
        url = request.get("url") or self.config.inbound_url
        if not url:
            raise ValueError("no inbound url: set TWILIO_SIM_INBOUND_URL or give a url")
        media = [dict(item) for item in request.get("media") or []]
        now = self.clock()
        msg = Message(
            sid=new_sid("MM" if media else "SM"),
            seq=next(self._seq),
            to=request["to"],
            body=request.get("body") or "",
            created_at=now,
            updated_at=now,
            sent_at=now,
            status="received",
            sender=request["from"],
            direction="inbound",
            messaging_service_sid=self.config.messaging_service_sid,
            num_segments=count_segments(request.get("body") or ""),
        )
        for item in media:
            if not item.get("url"):
                hosted = self.media.host(msg.sid, item)
                item["url"] = media_url(base_url, self.config.account_sid, msg.sid, hosted.sid)
                item["sha256"], item["size"] = hashlib.sha256(hosted.data).hexdigest(), len(
                    hosted.data)
        msg.media_urls = [item["url"] for item in media]
        params = inbound_params(
            account_sid=self.config.account_sid,
            messaging_service_sid=self.config.messaging_service_sid,
            sid=msg.sid,
            sender=msg.sender or "",
            to=msg.to,
            body=msg.body,
            media=media,
            opt_out_type=request.get("opt_out_type"),
        )
        with self._lock:
            self._messages[msg.sid] = msg
            self._remember(msg)
        token = str(uuid.uuid4())  # Twilio's retries of one webhook share the token
        attempts = [
            post_signed(None, self.config.auth_token, url, params, token)
            for _ in range(max(int(request.get("repeat") or 1), 1))
        ]
        with self._lock:
            self._inbound_log.append({"sid": msg.sid, "params": params, "attempts": attempts})
        log_event(
            "inbound",
            sid=msg.sid,
            sender=mask(msg.sender),
            http_status=attempts[-1].get("http_status"),
        )
        hosted_media = [{key: item.get(key) for key in ("url", "content_type", "size", "sha256")}
                        for item in media]
        return {"sid": msg.sid, "params": params, **attempts[-1], "attempts": attempts,
                "media": hosted_media}

    # --- control views ------------------------------------------------------

    def messages_view(self) -> list[dict[str, Any]]:
        """Every created (outbound) message, in creation order."""
        with self._lock:
            return [_message_view(msg) for msg in self._outbound]

    def creates_view(self) -> list[dict[str, Any]]:
        """Every create request, in arrival order, with the sender actually used."""
        with self._lock:
            return [self._create_view(record) for record in self._creates]

    def inbound_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._inbound_log)

    def _create_view(self, record: CreateRecord) -> dict[str, Any]:
        view = asdict(record)
        view["from"] = view.pop("from_")
        msg = self._messages.get(record.sid or "")
        view["sender"] = msg.sender if msg else None
        return view


def _create_record(form: Any, now: float) -> CreateRecord:
    return CreateRecord(
        at=now,
        to=form.get("To"),
        from_=form.get("From"),
        messaging_service_sid=form.get("MessagingServiceSid"),
        body=form.get("Body"),
    )


def _message_view(msg: Message) -> dict[str, Any]:
    return {
        "sid": msg.sid,
        "to": msg.to,
        "from": msg.sender,
        "requested_from": msg.requested_from,
        "body": msg.body,
        "requested_body": msg.requested_body,
        "media_urls": list(msg.media_urls),
        "num_media": len(msg.media_urls),
        "media": [dict(item) for item in msg.media],
        "messaging_service_sid": msg.messaging_service_sid,
        "status_callback": msg.status_callback,
        "status": msg.status,
        "final": msg.status in FINAL_STATUSES,
        "error_code": msg.error_code,
        "num_segments": msg.num_segments,
        "accepted_at": msg.created_at,
        "sent_at": msg.sent_at,
        "status_history": [dict(entry) for entry in msg.status_history],
        "callbacks": [dict(entry) for entry in msg.callbacks],
        "plan": asdict(msg.plan),
    }
