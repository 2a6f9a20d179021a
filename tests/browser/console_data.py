"""Known rows for the console's overview, and what the overview must show for them.

Shared by the HTTP tests (tests/integration/test_console.py) and the browser tests.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

SENDER_A, SENDER_B = "+18005550100", "+18005550101"
CUSTOMER = "+14155559876"

# What the overview shows for seed_overview(), by data-figure name.
EXPECTED_FIGURES = {
    "workers": "2",
    "dead_letters": "3",
    "queue.send_sms.runnable": "3",
    "queue.send_sms.scheduled": "2",
    "queue.send_sms.dead": "1",
    "queue.send_sms.total": "6",
    "queue.cxone_status.dead": "2",
    "queue.cxone_inbound.runnable": "1",
    "sends.sent": "4",
    "sends.adopted": "1",
    "sends.failed": "2",
    "sends.refused": "1",
    "sends.retry": "2",
    "sends.no_receipt": "1",
    "receipts.sent": "4",
    "receipts.delivered": "3",
    "receipts.failed": "1",
    "receipts.undelivered": "1",
    "chart.sends": "5",
    "chart.deliveries": "3",
    "chart.failures": "4",
    "senders.+1800***0100.sends": "4",
    "senders.+1800***0101.sends": "1",
}


def seed_overview(url: str) -> None:
    """Two live workers, a queue, dead letters and an hour of sends and receipts.

    Rows older than an hour (which the overview must leave out) are added too.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO worker_heartbeats (worker_id, hostname, pid) "
                     "VALUES ('w1', 'h', 1), ('w2', 'h', 2), ('gone', 'h', 3)")
        conn.execute("UPDATE worker_heartbeats SET beat_at = now() - interval '10 minutes' "
                     "WHERE worker_id = 'gone'")
        jobs = ([("send_sms", "queued", "-5 seconds")] * 3 + [("send_sms", "queued", "1 hour")] * 2
                + [("send_sms", "dead", "0 seconds")] + [("cxone_status", "dead", "0 seconds")] * 2
                + [("cxone_inbound", "queued", "-1 second")] + [("send_sms", "done", "0 seconds")])
        for n, (kind, state, offset) in enumerate(jobs):
            conn.execute(
                "INSERT INTO outbox (kind, dedupe_key, state, run_at, payload, last_error) "
                "VALUES (%s, %s, %s, now() + %s::interval, %s, %s)",
                (kind, f"seed-{n}", state, offset,
                 Jsonb({"message_id": f"msg_seed_{n}", "to": CUSTOMER}),
                 "HTTP 503 from CXone" if state == "dead" else None))
        events: list[tuple[str, str, dict[str, Any]]] = [
            *[("send.created", "3 minutes", {"sender": SENDER_A})] * 3,
            ("send.created", "30 minutes", {"sender": SENDER_B}),
            ("send.adopted", "10 minutes", {"sender": SENDER_A}),
            *[("send.failed", "20 minutes", {})] * 2,
            ("send.refused", "5 minutes", {}),
            *[("job.retry", "7 minutes", {"kind": "send_sms"})] * 2,
            *[("job.retry", "7 minutes", {"kind": "cxone_status"})] * 5,
            ("message.no_receipt", "40 minutes", {}),
            *[("send.created", "2 hours", {"sender": SENDER_A})] * 7,
        ]
        for event, ago, details in events:
            conn.execute("INSERT INTO audit_log (at, event, source, details) "
                         "VALUES (now() - %s::interval, %s, 'worker', %s)",
                         (ago, event, Jsonb(details)))
        receipts = ([("delivered", "2 minutes")] * 3 + [("failed", "4 minutes")]
                    + [("undelivered", "50 minutes")] + [("sent", "2 minutes")] * 4
                    + [("delivered", "3 hours")] * 9)
        for n, (status, ago) in enumerate(receipts):
            conn.execute("INSERT INTO twilio_receipts (message_sid, message_status, received_at) "
                         "VALUES (%s, %s, now() - %s::interval)", (f"SMseed{n}", status, ago))
        conn.execute("INSERT INTO throttle_state (key, tat) VALUES (%s, now() + interval '10 s')",
                     (f"sender:{SENDER_A}",))
