"""``python3 dev.py sandbox``: only the simulators, for running web and worker yourself.

It writes ``.env.sandbox`` and serves both simulators until Ctrl-C; the
gateway then runs from the Procfile, as README's "Locally with honcho" shows.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import requests
from honcho.manager import Manager
from honcho.printer import Printer

from devtools.environment import (
    DEMO_CUSTOMER,
    Ports,
    busy_port,
    child_environment,
    gateway_settings,
    say,
    simulator_commands,
    write_env_file,
)


def run_sandbox(root: Path, ports: Ports, cxone_mode: str) -> int:
    """Serve the simulators until Ctrl-C; honcho's exit status."""
    problem = busy_port(ports, ("cxone", "twilio"))
    if problem:
        say(problem)
        return 1
    settings = gateway_settings(ports, cxone_mode)
    write_env_file(root, settings, os.environ.get("DATABASE_URL"))
    say(f"starting the CXone simulator (:{ports.cxone}) and the Twilio simulator "
        f"(:{ports.twilio}); they start empty. Their settings: .env.sandbox")
    manager = Manager(Printer(sys.stdout))
    env = child_environment(settings)
    for name, command in simulator_commands(ports, cxone_mode).items():
        manager.add_process(name, command, env=env, cwd=str(root))
    threading.Thread(target=_hint_when_up, args=(ports,), daemon=True).start()
    manager.loop()
    return int(manager.returncode or 0)


def _hint_when_up(ports: Ports) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{ports.url('cxone')}/_sandbox/stats", timeout=1).raise_for_status()
            requests.get(f"{ports.url('twilio')}/_sandbox/config", timeout=1).raise_for_status()
            break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        return
    sys.stdout.write("\n".join([
        "", "=" * 80,
        " The simulators are up. In another terminal, from this directory:",
        "   . .venv/bin/activate",
        "   smsgw migrate                              # the Procfile's release step",
        f"   smsgw consent set {DEMO_CUSTOMER} opted_in   # replies go to opted-in numbers",
        "   honcho -e .env.sandbox start web worker",
        " then write agent replies and customer texts as README's sandbox section shows.",
        " Ctrl-C here stops the simulators.",
        "=" * 80, "", ""]))
    sys.stdout.flush()
