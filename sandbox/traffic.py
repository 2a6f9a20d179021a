"""A little realistic traffic for the demo, through the simulators' control APIs only.

Customers opt in by texting START, agents reply in CXone, customers answer; now
and then a message is undelivered, and every few minutes one send dies (Twilio
answers 500 to every attempt) so the console has a dead letter to replay. Its
number is made deliverable again a little later, so a replay then succeeds.

    run_traffic(cxone_url, twilio_url, stop_event)            # from the demo, in a thread
    python -m sandbox.traffic [--cxone URL] [--twilio URL] [--cxone-mode dfo]

In ``dfo`` mode the agent replies go to the DFO simulator, which calls the gateway
with them (``POST /_sandbox/agent-replies`` on its channel of the sender).
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

from sandbox import defaults

log = logging.getLogger(__name__)

CUSTOMERS = ("+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105")
UNDELIVERABLE = "+14155550113"  # the carrier reports it undelivered (30003)
DOOMED = "+14155550199"  # Twilio answers 500 to each create until it is made well again
REPLIES = ("Thanks for reaching out! Your order shipped today.",
           "Your appointment is confirmed for Tuesday at 10:30.",
           "Could you send us your order number, please?",
           "We've issued the refund; allow 3-5 business days.",
           "A technician will call you within the hour.",
           "Is there anything else I can help with?")
ANSWERS = ("Great, thank you!", "Can we move it to 11?", "Order 58213", "ok",
           "When will it arrive?", "Perfect, see you then")


@dataclass
class TrafficPlan:
    """How busy the demo is. Every pause is random around its mean (seconds)."""

    customers: Sequence[str] = CUSTOMERS
    senders: Sequence[str] = defaults.SENDER_NUMBERS
    mean_pause_s: float = 5.0
    undelivered_share: float = 0.08
    dead_letter_every_s: float = 600.0
    first_dead_letter_after_s: float = 20.0
    heal_after_s: float = 150.0  # long enough for all five attempts to fail first
    seed: int | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def run_traffic(cxone_url: str, twilio_url: str, stop_event: threading.Event, *,
                customers: Sequence[str] = CUSTOMERS, plan: TrafficPlan | None = None,
                cxone_mode: str = "open-messaging") -> None:
    """Keep traffic flowing until ``stop_event`` is set; errors are logged, never raised."""
    plan = plan or TrafficPlan(customers=customers)
    sim = _Simulators(cxone_url.rstrip("/"), twilio_url.rstrip("/"), dfo=cxone_mode == "dfo")
    if not sim.wait_until_up(stop_event):
        return
    _set_up(sim, plan)
    next_doom = time.monotonic() + plan.first_dead_letter_after_s
    heal_at: float | None = None
    while not stop_event.wait(plan.rng.expovariate(1.0 / plan.mean_pause_s)):
        now = time.monotonic()
        try:
            if heal_at is not None and now >= heal_at:
                sim.destination(DOOMED, outcome="delivered")
                heal_at = None
            if now >= next_doom:
                sim.destination(DOOMED, outcome="create_error",
                                create_error={"code": 20500, "status": 500})
                sim.reply(DOOMED, plan.senders[0], plan.rng.choice(REPLIES))
                next_doom, heal_at = now + plan.dead_letter_every_s, now + plan.heal_after_s
                continue
            _one_step(sim, plan)
        except requests.RequestException as exc:
            log.info("traffic: %s", exc)


def _set_up(sim: _Simulators, plan: TrafficPlan) -> None:
    """Outcomes per number, and every customer opts in by texting START."""
    sim.destination(UNDELIVERABLE, outcome="undelivered")
    for customer in (*plan.customers, UNDELIVERABLE, DOOMED):
        try:
            sim.inbound(customer, plan.senders[0], "START")
        except requests.RequestException as exc:
            log.info("traffic: %s", exc)


def _one_step(sim: _Simulators, plan: TrafficPlan) -> None:
    rng = plan.rng
    sender = rng.choice(plan.senders)
    if rng.random() < plan.undelivered_share:
        sim.reply(UNDELIVERABLE, sender, rng.choice(REPLIES))
    elif rng.random() < 0.65:
        sim.reply(rng.choice(plan.customers), sender, rng.choice(REPLIES))
    else:
        sim.inbound(rng.choice(plan.customers), sender, rng.choice(ANSWERS))


class _Simulators:
    """The few control calls the traffic needs."""

    def __init__(self, cxone_url: str, twilio_url: str, *, dfo: bool = False) -> None:
        self.cxone_url = cxone_url
        self.twilio_url = twilio_url
        self.http = requests.Session()
        # DFO: the simulator's channel of each sender number
        self.channels = ({number: channel for channel, number in defaults.DFO_CHANNELS.items()}
                         if dfo else None)

    def wait_until_up(self, stop_event: threading.Event, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if (self.http.get(f"{self.cxone_url}/_sandbox/stats", timeout=2).ok
                        and self.http.get(f"{self.twilio_url}/_sandbox/config", timeout=2).ok):
                    return True
            except requests.RequestException:
                pass
            if stop_event.wait(0.5):
                return False
        log.warning("traffic: the simulators did not answer; no traffic")
        return False

    def reply(self, to: str, sender: str, body: str) -> None:
        """An agent reply written in CXone (the gateway polls it, or DFO calls the gateway)."""
        if self.channels is None:
            self._post(f"{self.cxone_url}/_sandbox/replies", {"to": to, "from": sender,
                                                              "body": body})
        else:
            self._post(f"{self.cxone_url}/_sandbox/agent-replies",
                       {"channelId": self.channels[sender], "customer": to, "text": body})

    def inbound(self, customer: str, business: str, body: str) -> None:
        """A text from the customer (the simulator posts the signed webhook)."""
        self._post(f"{self.twilio_url}/_sandbox/inbound", {"from": customer, "to": business,
                                                           "body": body})

    def destination(self, to: str, **rule: object) -> None:
        self._post(f"{self.twilio_url}/_sandbox/destinations", {"to": to, **rule})

    def _post(self, url: str, body: dict[str, object]) -> None:
        self.http.post(url, json=body, timeout=10).raise_for_status()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo traffic through the simulators.")
    parser.add_argument("--cxone", default="http://127.0.0.1:5001")
    parser.add_argument("--twilio", default="http://127.0.0.1:5002")
    parser.add_argument("--pause", type=float, default=5.0, help="mean seconds between steps")
    parser.add_argument("--cxone-mode", choices=["open-messaging", "dfo"], default="open-messaging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    stop = threading.Event()
    try:
        run_traffic(args.cxone, args.twilio, stop, plan=TrafficPlan(mean_pause_s=args.pause),
                    cxone_mode=args.cxone_mode)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
