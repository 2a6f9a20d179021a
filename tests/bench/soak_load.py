"""The long soak's load (tests/bench/soak_long.py): agent replies and customer texts, paced.

Each kind of call runs from a few threads that take items off a :class:`Pacer`,
so one slow call (a web process just killed) does not hold the others back.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import threading
import time
from collections import Counter
from typing import Any

import requests

from tests.bench.soak import DFO_CHANNELS, SENDERS, _plan_destinations, _Sim


class Pacer:
    """Item ``i`` is due at ``start + i / rate``; ``take`` waits for the next one.

    None once the run is over: items a slow feed did not reach by then are not
    fed late (the reports show the rate achieved).
    """

    def __init__(self, rate: float, start: float, end: float, limit: int) -> None:
        self._count = itertools.count()
        self.rate, self.start, self.end, self.limit = rate, start, end, limit

    def take(self) -> int | None:
        i = next(self._count)
        due = self.start + i / self.rate
        if i >= self.limit or due >= self.end or time.monotonic() >= self.end:
            return None
        time.sleep(max(0.0, due - time.monotonic()))
        return i


class Load:
    """Replies and texts at their rates, from a few threads each (a slow call does not stall)."""

    def __init__(self, opts: argparse.Namespace, cx: _Sim, tw: _Sim, rng: random.Random,
                 start: float, end: float) -> None:
        self.opts, self.cx, self.tw, self.rng = opts, cx, tw, rng
        seconds = end - start
        self.plan = _plan_destinations(math.ceil(opts.reply_rate * seconds) + 1, rng)
        self.numbers = list(self.plan)
        self.expected: dict[str, str] = {}
        self.texts: list[tuple[str, str]] = []
        self.errors: Counter[str] = Counter()
        # Call durations since the last report; in DFO mode also the gateway's callback alone.
        self.timings: dict[str, list[float]] = {"reply": [], "text": [], "callback": []}
        replies = Pacer(opts.reply_rate, start, end, len(self.numbers))
        texts = Pacer(opts.text_rate, start, end, 10**9) if opts.text_rate > 0 else None
        reply = self._reply_dfo if opts.cxone_mode == "dfo" else self._reply
        self.threads = [threading.Thread(target=self._run, args=(replies, reply, "reply"),
                                         daemon=True)
                        for _ in range(24 if opts.cxone_mode == "dfo" else 8)]
        if texts is not None:
            self.threads += [threading.Thread(target=self._run, args=(texts, self._text, "text"),
                                              daemon=True) for _ in range(8)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def call_times_ms(self) -> dict[str, dict[str, int]]:
        """p50, p95 and max of each kind of call since the last time asked."""
        shown = {}
        for kind, times in self.timings.items():
            times, self.timings[kind] = sorted(times), []
            if times:
                shown[kind] = {"p50": round(times[len(times) // 2] * 1000),
                               "p95": round(times[int(len(times) * 0.95)] * 1000),
                               "max": round(times[-1] * 1000)}
        return shown

    def _run(self, pacer: Pacer, work: Any, kind: str) -> None:
        while (i := pacer.take()) is not None:
            started = time.monotonic()
            try:
                work(i)
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.errors[f"{work.__name__}: {type(exc).__name__}"] += 1
            self.timings[kind].append(time.monotonic() - started)

    def _want(self, number: str) -> str:
        return "UNDELIVERABLE" if self.plan[number].get("outcome") else "DELIVERED"

    def _reply(self, i: int) -> None:
        number = self.numbers[i]
        if self.plan[number]:
            self.tw.post("/_sandbox/destinations", {"to": number, **self.plan[number]})
        item = self.cx.post("/_sandbox/replies", {"to": number, "from": SENDERS[i % len(SENDERS)],
                                                  "body": f"soak {number}"})["items"][0]
        self.expected[item["id"]] = self._want(number)

    def _reply_dfo(self, i: int) -> None:
        """CXone calls the gateway; a failed callback (web just killed) is tried again."""
        number = self.numbers[i]
        if self.plan[number]:
            self.tw.post("/_sandbox/destinations", {"to": number, **self.plan[number]})
        channels = [entry.split("=")[0] for entry in DFO_CHANNELS.split(",")]
        body = {"channelId": channels[i % len(channels)], "customer": number,
                "text": f"soak {number}"}
        for _ in range(30):
            try:
                answer = self.cx.post("/_sandbox/agent-replies", body)
            except requests.RequestException:
                answer = {}
            if answer.get("status") == 200 and answer.get("messageId"):
                self.expected[answer["messageId"]] = self._want(number)
                self.timings["callback"].append(answer["attempts"][-1]["elapsed_ms"] / 1000)
                return
            time.sleep(0.5)
        self.errors["reply_dfo: never accepted"] += 1

    def _text(self, i: int) -> None:
        """A customer texts in; Twilio delivers the webhook (and retries once on failure)."""
        body = f"customer text {i}"
        request = {"from": f"+1415{self.rng.randrange(10_000):07d}",
                   "to": SENDERS[i % len(SENDERS)], "body": body}
        answer = self.tw.post("/_sandbox/inbound", request)
        if answer.get("http_status") != 200:
            answer = self.tw.post("/_sandbox/inbound", request)
        if answer.get("http_status") == 200:
            self.texts.append((answer["sid"], body))
