"""The words the demo prints: the banner and the summary at Ctrl-C."""

from __future__ import annotations

import json
from typing import Any

from devtools.environment import DEMO_ADMIN_TOKEN, DEMO_CUSTOMER, Ports

RULE = "=" * 80


def banner(ports: Ports, message_id: str | None, *, opted_out: bool, dfo: bool = False) -> str:
    """How to drive the running demo; the last thing printed once everything is up."""
    from sandbox import defaults

    if dfo:
        return _dfo_banner(ports, message_id, opted_out=opted_out)
    sender = defaults.SENDER_NUMBERS[0]
    cxone, twilio, web = ports.cxone, ports.twilio, ports.web
    if opted_out:
        first = [
            f" The demo customer {DEMO_CUSTOMER} opted out (STOP) in an earlier run, and",
            " stays opted out: replies to them are refused (FAILED, opted_out). To opt back",
            " in, answer as the customer with START (the command below, body START).",
        ]
    else:
        first = [
            f" An agent reply was written in the CXone simulator ({message_id})",
            " and sent through the gateway; its status history in CXone:",
            f"   curl -s localhost:{cxone}/_sandbox/messages/{message_id}",
        ]
    lines = [
        "", RULE,
        " The gateway is running against the sandbox.",
        *first,
        f" Write another agent reply to the demo customer {DEMO_CUSTOMER}:",
        f"   curl -s -X POST localhost:{cxone}/_sandbox/replies -H 'Content-Type: "
        "application/json' \\",
        f"     -d '{{\"from\": \"{sender}\", \"to\": \"{DEMO_CUSTOMER}\", "
        "\"body\": \"Anything else?\"}'",
        " Answer as the customer (lands in the same CXone conversation; STOP opts out):",
        f"   curl -s -X POST localhost:{twilio}/_sandbox/inbound -H 'Content-Type: "
        "application/json' \\",
        f"     -d '{{\"from\": \"{DEMO_CUSTOMER}\", \"to\": \"{sender}\", "
        "\"body\": \"Can we move it to 11?\"}'",
        f"   curl -s localhost:{cxone}/_sandbox/conversations",
        " Operate it from another terminal in this directory (reads .env.sandbox):",
        "   . .venv/bin/activate && smsgw status",
        f" Operations console: http://localhost:{web}/console/   admin token: {DEMO_ADMIN_TOKEN}",
        "   (a little traffic keeps flowing: replies, answers, a failure, now and then a "
        "dead letter)",
        f" Health: curl -s localhost:{web}/readyz",
        " The simulators start empty on every run; the gateway's database is kept.",
        " Press Enter to show this again. Ctrl-C stops everything.",
        RULE, "",
    ]
    return "\n".join(lines)


def _dfo_banner(ports: Ports, message_id: str | None, *, opted_out: bool) -> str:
    from sandbox import defaults

    channel, sender = next(iter(defaults.DFO_CHANNELS.items()))
    cxone, twilio, web = ports.cxone, ports.twilio, ports.web
    first = ([f" The demo customer {DEMO_CUSTOMER} opted out (STOP) earlier and stays opted",
              " out (replies FAILED, opted_out); answer START as the customer to opt in."]
             if opted_out else
             [" CXone (the DFO simulator) called the gateway with an agent reply; our id",
              f" {message_id}; its status PUTs in CXone:",
              f"   curl -s localhost:{cxone}/_sandbox/outbound/{message_id}"])
    reply = json.dumps({"channelId": channel, "customer": DEMO_CUSTOMER,
                        "text": "Anything else?"})
    answer = json.dumps({"from": DEMO_CUSTOMER, "to": sender, "body": "Can we move it to 11?"})
    lines = [
        "", RULE, " The gateway is running in CXONE_MODE=dfo against the sandbox.", *first,
        " Make CXone call the gateway with another agent reply:",
        f"   curl -s -X POST localhost:{cxone}/_sandbox/agent-replies "
        "-H 'Content-Type: application/json' \\",
        f"     -d '{reply}'",
        " Answer as the customer (becomes a DFO message in the thread; STOP opts out):",
        f"   curl -s -X POST localhost:{twilio}/_sandbox/inbound "
        "-H 'Content-Type: application/json' \\",
        f"     -d '{answer}'",
        f"   curl -s localhost:{cxone}/_sandbox/messages",
        " Operate it from another terminal in this directory (reads .env.sandbox):",
        "   . .venv/bin/activate && smsgw status",
        f" Operations console: http://localhost:{web}/console/   admin token: {DEMO_ADMIN_TOKEN}",
        "   (a little traffic keeps flowing: replies, answers, a failure, now and then a "
        "dead letter)",
        f" Health: curl -s localhost:{web}/readyz",
        " The simulators start empty on every run; the gateway's database is kept.",
        " Press Enter to show this again. Ctrl-C stops everything.", RULE, "",
    ]
    return "\n".join(lines)


def summary(snapshot: dict[str, Any] | None, dead_letters: int | None) -> str:
    """A few lines on what this run did and what survives it."""
    lines = ["", "dev.py: the demo stopped."]
    if snapshot is not None:
        statuses = ", ".join(f"{count} {status}" for status, count in
                             sorted(snapshot["statuses"].items(), key=lambda kv: str(kv[0])))
        lines.append(f"dev.py: this run: {snapshot['sent']} SMS sent through the Twilio "
                     f"simulator ({statuses or 'none'}), {snapshot['inbound']} customer "
                     "text(s) posted into CXone"
                     + ("" if dead_letters is None else f", {dead_letters} dead letter(s)")
                     + ".")
    lines.append("dev.py: kept: the gateway's database (consent, history, dead letters; "
                 "`smsgw status`, `smsgw trace ID`).")
    lines.append("dev.py: gone: the simulators' messages and conversations; they start empty "
                 "next time.")
    return "\n".join(lines)
