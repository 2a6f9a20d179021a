"""The soaks' end checks: lost, duplicated, wrong final status (tests/bench/soak.py, soak_long.py).

The counting functions are pure: the soak fetches what the simulators recorded
(in bulk, once) and passes it in.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

FINAL = ("DELIVERED", "UNDELIVERABLE", "FAILED")
DFO_FINAL = {"DELIVERED": "delivered", "UNDELIVERABLE": "failed"}


class Simulator(Protocol):
    def get(self, path: str) -> Any: ...


@dataclass
class SoakReport:
    """What the soak checked at the end; every count must be 0."""

    replies: int = 0
    texts_acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong_final_status: int = 0
    texts_lost: int = 0
    texts_duplicated: int = 0
    kills: int = 0
    postgres_restarts: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong_final_status or self.texts_lost
                    or self.texts_duplicated)


def sent_bodies(tw: Simulator) -> Counter[str]:
    """How many messages Twilio created with each body (its creates log is the light view)."""
    return Counter(c["body"] for c in tw.get("/_sandbox/creates")["creates"]
                   if c["result"] == "created")


def count_problems(report: SoakReport, cxone_messages: dict[str, dict[str, Any]],
                   sent: Counter[str], expected: dict[str, str],
                   texts: list[tuple[str, str]]) -> None:
    """Open Messaging: lost, duplicated, wrong final status; texts lost or duplicated."""
    for message_id, want in expected.items():
        message = cxone_messages[message_id]
        copies = sent.get(message["body"], 0)
        if copies == 0:
            report.lost += 1
            report.examples.append(f"lost {message_id}")
        elif copies > 1:
            report.duplicated += 1
            report.examples.append(f"sent {copies}x {message_id}")
        if message["status"] != want:
            report.wrong_final_status += 1
            report.examples.append(f"{message_id} is {message['status']}, want {want}")
    posted = Counter(m.get("externalId") for m in cxone_messages.values()
                     if m.get("direction") == "INBOUND")
    report.texts_acknowledged = len(texts)
    for sid, _body in texts:
        if posted.get(sid, 0) == 0:
            report.texts_lost += 1
            report.examples.append(f"text {sid} never reached CXone")
        elif posted[sid] > 1:
            report.texts_duplicated += 1
    report.examples = report.examples[:20]


def accepted(outbound: dict[str, Any]) -> list[str]:
    """The statuses CXone accepted for one reply (an item of ``/_sandbox/outbound``)."""
    updates = outbound.get("statusUpdates", [])
    return [u["body"]["status"] for u in updates if u["response_status"] in (200, 204)]


def count_dfo_problems(report: SoakReport, outbound: dict[str, dict[str, Any]],
                       created: Counter[str], sent: Counter[str], expected: dict[str, str],
                       texts: list[tuple[str, str]]) -> None:
    """DFO: lost, duplicated, wrong statuses shown (each once, final); texts lost."""
    for message_id, want in expected.items():
        thread = outbound.get(message_id, {}).get("threadId", "")
        copies = sent.get(f"soak +{thread.rpartition('_')[2]}", 0)
        if copies == 0:
            report.lost += 1
            report.examples.append(f"lost {message_id}")
        elif copies > 1:
            report.duplicated += 1
            report.examples.append(f"sent {copies}x {message_id}")
        shown = [s for s, _ in itertools.groupby(accepted(outbound.get(message_id, {})))]
        if shown != [DFO_FINAL[want]]:
            report.wrong_final_status += 1
            report.examples.append(f"{message_id} showed {shown}, want {DFO_FINAL[want]}")
    report.texts_acknowledged = len(texts)
    for sid, _body in texts:
        if created.get(sid, 0) == 0:
            report.texts_lost += 1
            report.examples.append(f"text {sid} never reached CXone")
    report.examples = report.examples[:20]


def diagnose(url: str, examples: list[str]) -> list[str]:
    """What the database knows about the first few problem messages."""
    import psycopg

    notes = []
    ids = [word for line in examples[:3] for word in line.split() if word.startswith("msg_")]
    with psycopg.connect(url) as conn:
        for message_id in ids:
            state = conn.execute("SELECT twilio_message_sid, twilio_status, outcome, reconciled_at"
                                 " FROM sms_gateway_state WHERE cxone_message_id = %s",
                                 (message_id,)).fetchall()
            updates = conn.execute("SELECT status, outcome FROM cxone_status_updates "
                                   "WHERE cxone_message_id = %s ORDER BY id",
                                   (message_id,)).fetchall()
            jobs = conn.execute("SELECT kind, state, attempts, last_error FROM outbox WHERE "
                                "dedupe_key IN (%s, 'cxone_status:' || %s)",
                                (message_id, message_id)).fetchall()
            notes.append(f"{message_id}: state={state} updates={updates} jobs={jobs}")
    return notes
