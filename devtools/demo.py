"""``python3 dev.py demo``: the database, both simulators, web and worker, with honcho.

It says what it is doing while it starts, writes ``.env.sandbox``, waits until
/readyz answers 200 and the first agent reply is delivered, and only then
prints the banner (Enter prints it again). Ctrl-C stops everything and prints
what this run did. A customer who texted STOP in an earlier run stays opted out.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from honcho.manager import Manager
from honcho.printer import Printer

from devtools.demo_text import banner, summary
from devtools.environment import (
    DEMO_CUSTOMER,
    Ports,
    busy_port,
    child_environment,
    gateway_settings,
    procfile_commands,
    say,
    simulator_commands,
    write_env_file,
)


class DemoManager(Manager):  # type: ignore[misc]
    """honcho's Manager that reads the simulators' figures before it stops them."""

    def __init__(self, printer: Printer, before_stop: Any) -> None:
        super().__init__(printer)
        self._owner = os.getpid()  # honcho's helper processes inherit this object
        self._before_stop = before_stop
        self._snapshot = "not yet"

    def terminate(self) -> None:
        if os.getpid() == self._owner:
            if self._snapshot == "running":
                return  # a second signal during the snapshot: the first call stops everything
            if self._snapshot == "not yet":
                self._snapshot = "running"
                self._before_stop()
                self._snapshot = "done"
        super().terminate()


def run_demo(root: Path, ports: Ports, cxone_mode: str) -> int:
    """Run the demo until Ctrl-C (or until a process dies); honcho's exit status."""
    problem = busy_port(ports, ("web", "cxone", "twilio"))
    if problem:
        say(problem)
        return 1
    try:
        database_url = prepare_database()
    except Exception as exc:  # embedded start or migration failed: one line, no traceback
        from db.pool import first_line

        say(f"the database is not usable: {first_line(exc)}")
        return 1
    settings = gateway_settings(ports, cxone_mode)
    write_env_file(root, settings, os.environ.get("DATABASE_URL"))
    say(f"[3/4] starting the CXone simulator (:{ports.cxone}), the Twilio simulator "
        f"(:{ports.twilio}), web (:{ports.web}) and the worker; settings in .env.sandbox")
    say("      the simulators keep their state in memory: they start empty on every run "
        "(the gateway's database is kept)")
    run = DemoRun(ports, database_url, cxone_mode)
    manager = DemoManager(Printer(sys.stdout), before_stop=run.take_snapshot)
    env = child_environment(settings, DATABASE_URL=database_url)
    commands = {**simulator_commands(ports, cxone_mode),
                **procfile_commands(root, ("web", "worker"))}
    for name, command in commands.items():
        manager.add_process(name, command, env=env, cwd=str(root))
    threading.Thread(target=run.seed, name="demo-seed", daemon=True).start()
    traffic_stop = threading.Event()
    threading.Thread(target=_traffic, args=(ports, cxone_mode, traffic_stop), daemon=True,
                     name="demo-traffic").start()
    manager.loop()
    traffic_stop.set()
    print(summary(run.snapshot, run.dead_letters()), flush=True)
    return int(manager.returncode or 0)


def _traffic(ports: Ports, cxone_mode: str, stop: threading.Event) -> None:
    """A little traffic for the console (sandbox/traffic.py), once the first reply is through."""
    from sandbox.traffic import run_traffic

    if stop.wait(20.0):  # let the seed's first reply and the banner come first
        return
    run_traffic(f"http://127.0.0.1:{ports.cxone}", f"http://127.0.0.1:{ports.twilio}", stop,
                cxone_mode=cxone_mode)


def prepare_database() -> str:
    """Steps 1 and 2: Postgres (DATABASE_URL or the embedded one) and its migrations."""
    from db import migrate
    from db.embedded import resolve_database_url

    explicit = os.environ.get("DATABASE_URL", "").strip() or None
    if explicit:
        say("[1/4] Postgres: DATABASE_URL")
    else:
        data_dir = Path(os.environ.get("SMSGW_DATA_DIR") or ".data/pg")
        first = not (data_dir / "PG_VERSION").exists()
        say(f"[1/4] Postgres: {'creating' if first else 'starting'} the embedded server under "
            f"{data_dir} …")
    started = time.monotonic()
    url = resolve_database_url(explicit)
    applied = migrate.migrate(url)
    say(f"[2/4] database ready in {time.monotonic() - started:.1f} s; "
        + (f"{len(applied)} migration(s) applied" if applied else "no migration pending"))
    return url


class DemoRun:
    """The demo's own work beside honcho: seed, banner, and the figures for the summary."""

    def __init__(self, ports: Ports, database_url: str, cxone_mode: str = "open-messaging"
                 ) -> None:
        self.ports = ports
        self.database_url = database_url
        self.dfo = cxone_mode == "dfo"
        self.message_id: str | None = None
        self.opted_out = False
        self.snapshot: dict[str, Any] | None = None

    def seed(self) -> None:
        """Once the gateway is ready: consent, one agent reply, then the banner."""
        say("[4/4] waiting for the gateway to be ready (/readyz) …")
        started = time.monotonic()
        if not self._wait(self._ready, 90):
            say("the gateway did not become ready in 90 s; the log lines above say why")
            return
        say(f"      ready in {time.monotonic() - started:.1f} s")
        self.opted_out = not self._opt_in_once()
        if not self.opted_out:
            self.message_id = self._first_reply()
            self._wait(self._delivered, 30)
        self.show_banner()
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._banner_on_enter, name="demo-banner",
                             daemon=True).start()

    def show_banner(self) -> None:
        sys.stdout.write(banner(self.ports, self.message_id, opted_out=self.opted_out,
                                dfo=self.dfo))
        sys.stdout.flush()

    def _banner_on_enter(self) -> None:
        for _ in sys.stdin:
            self.show_banner()

    def _wait(self, check: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if check():
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.5)
        return False

    def _ready(self) -> bool:
        return requests.get(f"{self.ports.url('web')}/readyz", timeout=2).status_code == 200

    def _delivered(self) -> bool:
        if self.dfo:
            reply = requests.get(f"{self.ports.url('cxone')}/_sandbox/outbound/{self.message_id}",
                                 timeout=2).json()
            return any(u.get("body", {}).get("status") == "delivered"
                       for u in reply.get("statusUpdates", []))
        message = requests.get(f"{self.ports.url('cxone')}/_sandbox/messages/{self.message_id}",
                               timeout=2).json()
        return any(u.get("body", {}).get("status") == "DELIVERED"
                   for u in message.get("statusUpdates", []))

    def _opt_in_once(self) -> bool:
        """Opt the demo customer in unless the ledger already knows them; True if opted in."""
        from app.consent import record_consent
        from db import consent
        from db.pool import Database

        db = Database(self.database_url, max_size=1, application_name="smsgw-demo")
        try:
            with db.transaction() as conn:
                current = consent.get(conn, DEMO_CUSTOMER)
                if current is None:
                    record_consent(conn, DEMO_CUSTOMER, "opted_in", source="cli",
                                   evidence={"note": "demo customer, opted in by dev.py demo"})
                    return True
                return bool(current["status"] == "opted_in")
        finally:
            db.close()

    def _first_reply(self) -> str:
        from sandbox import defaults

        if self.dfo:  # CXone calls the gateway's integration box, as a real tenant does
            answer = requests.post(f"{self.ports.url('cxone')}/_sandbox/agent-replies", json={
                "channelId": next(iter(defaults.DFO_CHANNELS)), "customer": DEMO_CUSTOMER,
                "text": "Hello from the CXone (DFO) sandbox! Your appointment is confirmed."},
                timeout=10).json()
            return str(answer["messageId"])
        reply = {"from": defaults.SENDER_NUMBERS[0], "to": DEMO_CUSTOMER,
                 "body": "Hello from the CXone sandbox! Your appointment is confirmed."}
        created = requests.post(f"{self.ports.url('cxone')}/_sandbox/replies", json=reply,
                                timeout=5).json()
        return str(created["items"][0]["id"])

    def take_snapshot(self) -> None:
        """What the simulators saw this run (they forget it when they stop)."""
        try:
            sent = requests.get(f"{self.ports.url('twilio')}/_sandbox/messages",
                                timeout=2).json()["messages"]
            inbound_path = "/_sandbox/messages" if self.dfo else "/_sandbox/inbound"
            inbound = requests.get(f"{self.ports.url('cxone')}{inbound_path}",
                                   timeout=2).json()["items"]
        except (requests.RequestException, ValueError, KeyError):
            return
        self.snapshot = {"sent": len(sent), "statuses": Counter(m.get("status") for m in sent),
                         "inbound": len(inbound)}

    def dead_letters(self) -> int | None:
        from db import admin
        from db.pool import Database

        try:
            db = Database(self.database_url, max_size=1, application_name="smsgw-demo")
            try:
                with db.connection() as conn:
                    return admin.dead_count(conn)
            finally:
                db.close()
        except Exception:  # the summary is a courtesy; a stopped database only shortens it
            return None
