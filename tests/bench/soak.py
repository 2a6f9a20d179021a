"""Soak under faults: replies flow while processes die, Postgres restarts and both sides misbehave.

Thousands of agent replies (and some customer texts) go through the gateway
while worker and web processes are killed with ``kill -9`` at random and
restarted, Postgres is restarted once, and both simulators inject about 5%
faults (429, 5xx, dropped connections, duplicated, reordered and lost
callbacks). Then it lets the system settle and checks, and prints:

- lost messages: replies Twilio never got, or customer texts CXone never got;
- duplicate sends: replies Twilio got more than once (and texts posted twice);
- CXone messages not in their correct final status.

All must be 0.  ``.venv-bench/bin/python tests/bench/soak.py [--replies 3000]``;
a short version runs in the default test suite (tests/e2e/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from tests.bench.soak_checks import (  # noqa: E402
    FINAL,
    SoakReport,
    accepted,
    count_dfo_problems,
    count_problems,
    diagnose,
    sent_bodies,
)
from tests.harness import (  # noqa: E402
    Process,
    dfo_gateway_env,
    free_port,
    gateway_env,
    start_process,
    start_web,
    start_worker,
    wait_for,
)
from tests.pg_instance import PrivatePostgres  # noqa: E402

SENDERS = ("+18005550100", "+18005550101", "+18005550102", "+18005550103")
DFO_CHANNELS = ",".join(f"chat_soak_{n}={number}" for n, number in enumerate(SENDERS))


class _Sim:
    """A simulator process and its control API."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_process(name, [sys.executable, "-m", "sandbox", name,
                                            "--port", str(self.port)], env)
        wait_for(self._up, timeout=30, message=f"{name} simulator")

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/_sandbox/faults", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def get(self, path: str) -> Any:
        return requests.get(self.url + path, timeout=30).json()

    def post(self, path: str, body: Any) -> Any:
        response = requests.post(self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()


def run_soak(*, replies: int = 3000, texts: int = 200, feed_seconds: float = 120.0,
             kill_every_s: tuple[float, float] = (4.0, 9.0), settle_timeout_s: float = 300.0,
             seed: int | None = None, log: Any = print, mode: str = "open-messaging"
             ) -> SoakReport:
    """Run the soak; returns the report (``report.clean`` when nothing went wrong).

    ``mode`` is the CXone dialect: ``open-messaging`` (the CXone simulator's feed) or
    ``dfo`` (the DFO simulator calls the gateway's integration box, retrying a failed
    callback as CXone does).
    """
    rng = random.Random(seed)
    report = SoakReport(replies=replies)
    started = time.monotonic()
    pg = PrivatePostgres()
    processes: list[Process] = []
    gateway: _Gateway | None = None
    try:
        url = pg.create_database("smsgw")
        migrate.migrate(url)
        web_port = free_port()
        cx, tw = start_sims(mode, web_port)
        processes += [cx.process, tw.process]
        env = soak_env(url, cx, tw, web_port, mode)
        plan = _plan_destinations(replies, rng)
        for number, rule in plan.items():
            if rule:
                tw.post("/_sandbox/destinations", {"to": number, **rule})
        (_inject_dfo_faults if mode == "dfo" else _inject_faults)(cx, tw)
        gateway = _Gateway(env, web_port)
        expected: dict[str, str] = {}
        feeder = threading.Thread(target=_feed_dfo if mode == "dfo" else _feed,
                                  args=(cx, plan, expected, feed_seconds, rng), daemon=True)
        texter_results: list[tuple[str, str]] = []
        texter = threading.Thread(target=_text, args=(tw, texts, feed_seconds, rng,
                                                      texter_results), daemon=True)
        feeder.start()
        texter.start()
        deadline = time.monotonic() + feed_seconds
        restart_at = time.monotonic() + feed_seconds * 0.4
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(*kill_every_s))
            if report.postgres_restarts == 0 and time.monotonic() >= restart_at:
                log("soak: restarting Postgres")
                pg.restart()
                report.postgres_restarts += 1
                continue
            report.kills += 1
            log(f"soak: kill -9 {gateway.kill_one(rng)}")
        feeder.join()
        texter.join()
        _clear_faults(cx, tw)
        log(f"soak: fed {len(expected)} replies and {len(texter_results)} texts; settling")
        if mode == "dfo":
            _settle_dfo(cx, expected, settle_timeout_s)
            _check_dfo(report, cx, tw, expected, texter_results)
        else:
            _settle(cx, expected, settle_timeout_s)
            _check(report, cx, tw, expected, texter_results)
        if not report.clean:
            report.examples += diagnose(url, report.examples)
    finally:
        for proc in (gateway.processes if gateway else []) + processes:
            if proc.alive():
                proc.terminate(timeout=20)
        pg.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def start_sims(mode: str, web_port: int, **env: str) -> tuple[_Sim, _Sim]:
    """The CXone (or DFO) and Twilio simulators, both pointed at the gateway's ``web_port``."""
    sim_env = {**os.environ, "TWILIO_SIM_STEP_DELAY_MS": "40",
               "SENDER_NUMBERS": ",".join(SENDERS), "DFO_CHANNELS": DFO_CHANNELS,
               "DFO_SIM_GATEWAY_URL": f"http://127.0.0.1:{web_port}", **env}
    cx, tw = _Sim("cxone" if mode != "dfo" else "dfo", sim_env), _Sim("twilio", sim_env)
    tw.post("/_sandbox/config", {"inbound_url": f"http://127.0.0.1:{web_port}/twilio/inbound"})
    return cx, tw


def soak_env(url: str, cx: _Sim, tw: _Sim, web_port: int, mode: str,
             **overrides: str) -> dict[str, str]:
    """The gateway's environment for a soak: short retries, leases and reconcile delays."""
    dfo_env = dfo_gateway_env(cx) | {"DFO_CHANNELS": DFO_CHANNELS} if mode == "dfo" else {}
    return gateway_env(url, cx, tw, public_base_url=f"http://127.0.0.1:{web_port}",
                       SENDER_NUMBERS=",".join(SENDERS), SENDER_MPS="25",
                       CONSENT_MODE="opt-out", POLL_INTERVAL_S="0.5",
                       RECONCILE_SENT_AFTER_S="5", RECONCILE_PENDING_AFTER_S="20",
                       TWILIO_TIMEOUT_S="2", JOB_LEASE_S="8", RETRY_BASE_S="0.5",
                       RETRY_MAX_S="4", RETRY_30008_DELAY_S="2", LOG_LEVEL="WARNING",
                       **dfo_env, **overrides)


class _Gateway:
    """Web (gunicorn) and two workers, restarted after every kill."""

    def __init__(self, env: dict[str, str], web_port: int) -> None:
        self.env, self.web_port = env, web_port
        self.web = start_web(env, web_port)
        self.workers = [start_worker(env, name=f"worker{n}") for n in range(2)]

    @property
    def processes(self) -> list[Process]:
        return [self.web, *self.workers]

    def kill_one(self, rng: random.Random) -> str:
        if rng.random() < 0.3:
            self.web.kill9()
            time.sleep(0.3)
            self.web = start_web(self.env, self.web_port)
            return "web"
        n = rng.randrange(len(self.workers))
        self.workers[n].kill9()
        time.sleep(rng.uniform(0.2, 1.5))
        self.workers[n] = start_worker(self.env, name=f"worker{n}")
        return f"worker{n}"


def _plan_destinations(replies: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    """One destination per reply; ~5% each duplicate, reorder or drop their callbacks."""
    plan: dict[str, dict[str, Any]] = {}
    for n in range(replies):
        number = f"+1415{n:07d}"
        roll = rng.random()
        if roll < 0.05:
            plan[number] = {"callbacks": "duplicate"}
        elif roll < 0.10:
            plan[number] = {"callbacks": "reorder"}
        elif roll < 0.13:
            plan[number] = {"callbacks": "drop"}
        elif roll < 0.17:
            plan[number] = {"outcome": "undelivered", "error_code": 30003}
        else:
            plan[number] = {}
    return plan


def _inject_faults(cx: _Sim, tw: _Sim) -> None:
    for kind, p in (("429", 0.02), ("500", 0.01), ("503", 0.01), ("drop_after_accept", 0.01)):
        tw.post("/_sandbox/faults", {"target": "create", "kind": kind, "probability": p})
    for target in ("fetch", "list"):
        tw.post("/_sandbox/faults", {"target": target, "kind": "500", "probability": 0.05})
    cx.post("/_sandbox/faults", {"target": "poll", "status": 429, "probability": 0.03,
                                 "retry_after": 1})
    cx.post("/_sandbox/faults", {"target": "poll", "status": 503, "probability": 0.02})
    cx.post("/_sandbox/faults", {"target": "put", "status": 500, "probability": 0.03})
    cx.post("/_sandbox/faults", {"target": "put", "drop": True, "probability": 0.01})
    cx.post("/_sandbox/faults", {"target": "put", "status": 503, "probability": 0.01,
                                 "after": True})
    cx.post("/_sandbox/faults", {"target": "inbound", "status": 500, "probability": 0.03})
    cx.post("/_sandbox/faults", {"target": "conversations", "status": 503, "probability": 0.03})


def _clear_faults(cx: _Sim, tw: _Sim) -> None:
    requests.delete(cx.url + "/_sandbox/faults", timeout=10)
    requests.delete(tw.url + "/_sandbox/faults", timeout=10)


def _feed(cx: _Sim, plan: dict[str, dict[str, Any]], expected: dict[str, str],
          seconds: float, rng: random.Random) -> None:
    """Write the agent replies into CXone, in small bursts, over ``seconds``."""
    numbers = list(plan)
    start = time.monotonic()
    for i in range(0, len(numbers), 10):
        batch = [{"to": number, "from": SENDERS[rng.randrange(len(SENDERS))],
                  "body": f"soak {number}"} for number in numbers[i:i + 10]]
        for item in cx.post("/_sandbox/replies", {"items": batch})["items"]:
            rule = plan[item["to"]]
            expected[item["id"]] = "UNDELIVERABLE" if rule.get("outcome") else "DELIVERED"
        due = start + seconds * (i + 10) / len(numbers)
        time.sleep(max(0.0, due - time.monotonic()))


def _text(tw: _Sim, count: int, seconds: float, rng: random.Random,
          acknowledged: list[tuple[str, str]]) -> None:
    """Customers text in; Twilio delivers each webhook (and retries once on failure)."""
    for i in range(count):
        body = f"customer text {i}"
        request = {"from": f"+1415{rng.randrange(10_000):07d}", "to": SENDERS[i % len(SENDERS)],
                   "body": body}
        answer = tw.post("/_sandbox/inbound", request)
        if answer.get("http_status") != 200:
            answer = tw.post("/_sandbox/inbound", request)
        if answer.get("http_status") == 200:
            acknowledged.append((answer["sid"], body))
        time.sleep(seconds / max(count, 1))


def _settle(cx: _Sim, expected: dict[str, str], timeout: float) -> None:
    def settled() -> bool:
        messages = {m["id"]: m for m in cx.get("/_sandbox/messages?direction=OUTBOUND")["items"]}
        return all(messages.get(i, {}).get("status") in FINAL for i in expected)

    try:
        wait_for(settled, timeout=timeout, interval=2.0, message="every reply final in CXone")
    except AssertionError:
        pass  # the checks below say what is missing


def _check(report: SoakReport, cx: _Sim, tw: _Sim, expected: dict[str, str],
           texts: list[tuple[str, str]]) -> None:
    cxone_messages = {m["id"]: m for m in cx.get("/_sandbox/messages")["items"]}
    count_problems(report, cxone_messages, sent_bodies(tw), expected, texts)


# -- DFO mode -----------------------------------------------------------------------------

def _inject_dfo_faults(dfo: _Sim, tw: _Sim) -> None:
    for kind, p in (("429", 0.02), ("500", 0.01), ("503", 0.01), ("drop_after_accept", 0.01)):
        tw.post("/_sandbox/faults", {"target": "create", "kind": kind, "probability": p})
    for target in ("fetch", "list"):
        tw.post("/_sandbox/faults", {"target": target, "kind": "500", "probability": 0.05})
    dfo.post("/_sandbox/faults", {"target": "status", "status": 500, "probability": 0.03})
    dfo.post("/_sandbox/faults", {"target": "status", "status": 429, "probability": 0.02,
                                  "retry_after": 1})
    dfo.post("/_sandbox/faults", {"target": "status", "drop": True, "probability": 0.01})
    dfo.post("/_sandbox/faults", {"target": "create", "status": 503, "probability": 0.03})


def _feed_dfo(dfo: _Sim, plan: dict[str, dict[str, Any]], expected: dict[str, str],
              seconds: float, rng: random.Random) -> None:
    """CXone calls the gateway with each agent reply; a callback that fails (the web
    process was just killed) is tried again, as CXone retries."""
    numbers = list(plan)
    start = time.monotonic()
    channels = [entry.split("=")[0] for entry in DFO_CHANNELS.split(",")]
    for i, number in enumerate(numbers):
        body = {"channelId": channels[rng.randrange(len(channels))], "customer": number,
                "text": f"soak {number}"}
        for _ in range(30):
            try:
                answer = dfo.post("/_sandbox/agent-replies", body)
            except requests.RequestException:
                answer = {}
            if answer.get("status") == 200 and answer.get("messageId"):
                want = "UNDELIVERABLE" if plan[number].get("outcome") else "DELIVERED"
                expected[answer["messageId"]] = want
                break
            time.sleep(0.5)
        due = start + seconds * (i + 1) / len(numbers)
        time.sleep(max(0.0, due - time.monotonic()))


def _accepted_statuses(dfo: _Sim, message_id: str) -> list[str]:
    return accepted(dfo.get(f"/_sandbox/outbound/{message_id}"))


def _settle_dfo(dfo: _Sim, expected: dict[str, str], timeout: float) -> None:
    def settled() -> bool:
        return all(_accepted_statuses(dfo, i) for i in expected)

    try:
        wait_for(settled, timeout=timeout, interval=2.0, message="every reply final in CXone")
    except AssertionError:
        pass


def _check_dfo(report: SoakReport, dfo: _Sim, tw: _Sim, expected: dict[str, str],
               texts: list[tuple[str, str]]) -> None:
    outbound = {m["id"]: m for m in dfo.get("/_sandbox/outbound")["items"]}
    created = Counter(m["idOnExternalPlatform"] for m in dfo.get("/_sandbox/messages")["items"])
    count_dfo_problems(report, outbound, created, sent_bodies(tw), expected, texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=3000)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--feed-seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cxone-mode", choices=["open-messaging", "dfo"],
                        default="open-messaging")
    args = parser.parse_args()
    report = run_soak(replies=args.replies, texts=args.texts, feed_seconds=args.feed_seconds,
                      seed=args.seed, mode=args.cxone_mode)
    data = asdict(report) | {"clean": report.clean}
    print(json.dumps(data, indent=2))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
