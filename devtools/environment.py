"""The sandbox's settings, its ports, the processes it runs, and ``.env.sandbox``.

``.env.sandbox`` holds the gateway's configuration against the local
simulators, so that what ``python3 dev.py demo`` runs can also be run by hand:
``honcho -e .env.sandbox start web worker``, and ``smsgw`` reads it when there
is no ``.env``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ENV_FILE = ".env.sandbox"
# The CXone dialects the demo can simulate: the seed's Open Messaging, or a real
# tenant's DFO 3.0 (its simulator runs on the CXone port and calls the gateway).
CXONE_MODES = ("open-messaging", "dfo")
DEMO_ADMIN_TOKEN = "sandbox-admin-token"  # the admin API and the console
DEMO_CUSTOMER = "+14155550123"


def say(text: str) -> None:
    """One progress line, written whole so it never splits a log line."""
    sys.stdout.write(f"dev.py: {text}\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Ports:
    """web on ``base``, the CXone simulator on base+1, the Twilio simulator on base+2."""

    web: int
    cxone: int
    twilio: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(web=base, cxone=base + 1, twilio=base + 2)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self, name)}"


def busy_port(ports: Ports, names: tuple[str, ...]) -> str | None:
    """A one-line complaint about the first of ``names`` whose port is taken, else None."""
    for name in names:
        port = getattr(ports, name)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return (f"port {port} ({name}) is in use, perhaps by another demo: stop it, "
                        f"or pick other ports with --port (web port; simulators on +1, +2)")
    return None


def gateway_settings(ports: Ports, cxone_mode: str = "open-messaging") -> dict[str, str]:
    """The gateway's variables (and the simulators' own) for a sandbox on ``ports``."""
    if cxone_mode not in CXONE_MODES:
        raise ValueError(f"unknown CXone mode {cxone_mode!r}")
    from sandbox import defaults

    cxone, twilio = ports.url("cxone"), ports.url("twilio")
    return {
        "PORT": str(ports.web),
        "PUBLIC_BASE_URL": ports.url("web"),
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
        "ADMIN_TOKEN": DEMO_ADMIN_TOKEN,
        "WEB_CONCURRENCY": "2",
        # The simulators' own settings (python -m sandbox reads them).
        "CXONE_SIM_PORT": str(ports.cxone),
        "TWILIO_SIM_PORT": str(ports.twilio),
        "TWILIO_SIM_STEP_DELAY_MS": "300",
        **(dfo_settings(ports) if cxone_mode == "dfo" else {}),
    }


def dfo_settings(ports: Ports) -> dict[str, str]:
    """CXONE_MODE=dfo against the DFO simulator on the CXone port (and its own settings)."""
    from sandbox import defaults

    dfo = ports.url("cxone")
    return {
        "CXONE_MODE": "dfo",
        "CXONE_ISSUER_URL": dfo,
        "CXONE_DFO_BASE_URL": dfo,
        "CXONE_ACCESS_KEY_ID": defaults.DFO_ACCESS_KEY_ID,
        "CXONE_ACCESS_KEY_SECRET": defaults.DFO_ACCESS_KEY_SECRET,
        "BYOC_CLIENT_ID": defaults.BYOC_CLIENT_ID,
        "BYOC_CLIENT_SECRET": defaults.BYOC_CLIENT_SECRET,
        "DFO_CHANNELS": ",".join(f"{c}={n}" for c, n in defaults.DFO_CHANNELS.items()),
        "DFO_SIM_PORT": str(ports.cxone),
        "DFO_SIM_GATEWAY_URL": ports.url("web"),
    }


def write_env_file(root: Path, settings: dict[str, str], database_url: str | None) -> Path:
    """Write ``.env.sandbox``; DATABASE_URL only when one was given explicitly."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        f"# Written by python3 dev.py on {stamp}; rewritten on every demo or sandbox start.",
        "# The gateway's settings against the local simulators (fake, public credentials).",
        "# Read by: honcho -e .env.sandbox start web worker, and smsgw when there is no .env.",
        *(f"{key}={value}" for key, value in settings.items()),
    ]
    if database_url:
        lines.append(f"DATABASE_URL={database_url}")
    else:
        lines.append("# DATABASE_URL unset: web, worker and smsgw started in this directory "
                     "share the embedded Postgres under .data/pg")
    path = root / ENV_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def simulator_commands(ports: Ports, cxone_mode: str = "open-messaging") -> dict[str, str]:
    """honcho process name → command line for the simulators of ``cxone_mode``."""
    python = sys.executable
    cxone = "dfo" if cxone_mode == "dfo" else "cxone"
    return {"cxone": f"{python} -m sandbox {cxone} --port {ports.cxone}",
            "twilio": f"{python} -m sandbox twilio --port {ports.twilio}"}


def procfile_commands(root: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The Procfile's own command lines for ``names`` (run exactly as a platform would)."""
    from honcho.environ import parse_procfile

    procfile = parse_procfile((root / "Procfile").read_text(encoding="utf-8"))
    return {name: procfile.processes[name] for name in names}


def child_environment(settings: dict[str, str], **extra: str) -> dict[str, str]:
    """What each process gets: ours over the caller's, with .venv/bin first on PATH.

    The Procfile's bare ``gunicorn`` and ``python`` then mean the ones in .venv.
    """
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    return {**os.environ, **settings, "PATH": path, "PYTHONUNBUFFERED": "1", **extra}
