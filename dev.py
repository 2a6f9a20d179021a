#!/usr/bin/env python3
"""Set up and run the gateway on this machine. Needs only Python 3.11+.

    python3 dev.py demo    everything against the sandbox; Ctrl-C stops all of it
    python3 dev.py test    the test suite (extra arguments go to pytest)

Both create ``.venv`` and install the project with its ``dev`` extra on first
use (again whenever pyproject.toml changes). With DATABASE_URL unset they use
the embedded Postgres whose data lives under ``.data/``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".smsgw-installed"

DEMO_PORTS = {"web": 5000, "cxone": 5001, "twilio": 5002}
DEMO_CUSTOMER = "+14155550123"


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may run on an older python3
        print("dev.py: Python 3.11 or newer is needed", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_environment(argv)
    command, rest = argv[0], argv[1:]
    return demo(rest) if command == "demo" else run_tests(rest)


# -- environment ---------------------------------------------------------------------------

def ensure_environment(argv: list[str]) -> None:
    """Create .venv and install the project, then continue inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        print("dev.py: installing the project and its dev tools into .venv", flush=True)
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(wanted)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])


# -- test ----------------------------------------------------------------------------------

def run_tests(args: list[str]) -> int:
    """Run pytest (the default selection is in pyproject.toml)."""
    os.chdir(ROOT)
    return subprocess.call([sys.executable, "-m", "pytest", *args])


# -- demo ----------------------------------------------------------------------------------

def demo(args: list[str]) -> int:
    """Database, both simulators, web and worker, with honcho; Ctrl-C stops everything."""
    import threading

    from honcho.manager import Manager
    from honcho.printer import Printer

    from db import migrate
    from db.embedded import EmbeddedUnavailable, resolve_database_url

    os.chdir(ROOT)
    try:
        database_url = resolve_database_url(os.environ.get("DATABASE_URL"))
        migrate.migrate(database_url)
    except (migrate.MigrationError, EmbeddedUnavailable) as exc:
        print(f"dev.py: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, **sandbox_environment(database_url)}
    python = sys.executable
    manager = Manager(Printer(sys.stdout))
    manager.add_process("cxone", f"{python} -m sandbox cxone --port {DEMO_PORTS['cxone']}",
                        env=env, cwd=str(ROOT))
    manager.add_process("twilio",
                        f"{python} -m sandbox twilio --port {DEMO_PORTS['twilio']}",
                        env=env, cwd=str(ROOT))
    manager.add_process("web", f"{Path(python).parent / 'gunicorn'} -k gevent 'app:create_app()'",
                        env=env, cwd=str(ROOT))
    manager.add_process("worker", f"{python} -m worker", env=env, cwd=str(ROOT))
    threading.Thread(target=seed_demo, args=(database_url,), daemon=True).start()
    manager.loop()
    return int(manager.returncode or 0)


def sandbox_environment(database_url: str) -> dict[str, str]:
    """The gateway's configuration against the local simulators."""
    from sandbox import defaults

    web, cxone, twilio = (f"http://127.0.0.1:{DEMO_PORTS[k]}" for k in ("web", "cxone", "twilio"))
    return {
        "DATABASE_URL": database_url,
        "PORT": str(DEMO_PORTS["web"]),
        "PUBLIC_BASE_URL": web,
        "CXONE_API_BASE_URL": cxone,
        "CXONE_TOKEN_URL": f"{cxone}/auth/token",
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID,
        "CXONE_CLIENT_SECRET": defaults.CXONE_CLIENT_SECRET,
        "CXONE_WEBHOOK_TOKEN": "sandbox-push-token",
        "TWILIO_API_BASE_URL": twilio,
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "SENDER_NUMBERS": ",".join(defaults.SENDER_NUMBERS),
        "ADMIN_TOKEN": "sandbox-admin-token",
        "TWILIO_SIM_STEP_DELAY_MS": "300",
        "WEB_CONCURRENCY": "2",
    }


def seed_demo(database_url: str) -> None:
    """Once everything answers: opt the demo customer in and send one agent reply."""
    import time

    import requests

    from app.consent import record_consent
    from db.pool import Database

    cxone = f"http://127.0.0.1:{DEMO_PORTS['cxone']}"
    web = f"http://127.0.0.1:{DEMO_PORTS['web']}"
    for _ in range(60):
        try:
            if requests.get(f"{web}/healthz", timeout=1).ok and \
                    requests.get(f"{cxone}/_sandbox/stats", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    else:
        return
    db = Database(database_url, max_size=1)
    with db.transaction() as conn:
        record_consent(conn, DEMO_CUSTOMER, "opted_in", source="cli",
                       evidence={"note": "demo customer, opted in by dev.py demo"})
    db.close()
    from sandbox import defaults

    reply = {"from": defaults.SENDER_NUMBERS[0], "to": DEMO_CUSTOMER,
             "body": "Hello from the CXone sandbox! Your appointment is confirmed."}
    created = requests.post(f"{cxone}/_sandbox/replies", json=reply, timeout=5).json()
    message = created["items"][0]
    print(DEMO_BANNER.format(message_id=message["id"], conversation=message["conversationId"],
                             customer=DEMO_CUSTOMER, sender=defaults.SENDER_NUMBERS[0],
                             **{f"{k}_port": v for k, v in DEMO_PORTS.items()}), flush=True)


DEMO_BANNER = """
================================================================================
 The gateway is running against the sandbox. An agent reply was just written in
 the CXone simulator ({message_id}); watch the worker send it and
 the receipts come back, then see its status history:
   curl -s localhost:{cxone_port}/_sandbox/messages/{message_id}
 More agent replies (the demo customer {customer} has opted in):
   curl -s -X POST localhost:{cxone_port}/_sandbox/replies -H 'Content-Type: application/json' \\
     -d '{{"conversationId": "{conversation}", "body": "Anything else?"}}'
 The customer answers (lands in the same CXone conversation):
   curl -s -X POST localhost:{twilio_port}/_sandbox/inbound -H 'Content-Type: application/json' \\
     -d '{{"from": "{customer}", "to": "{sender}", "body": "Can we move it to 11?"}}'
   curl -s localhost:{cxone_port}/_sandbox/conversations
 Health: curl -s localhost:{web_port}/readyz     Ctrl-C stops everything.
================================================================================
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
