"""Argument parsing for the dev.py commands that run inside .venv (demo, sandbox, lock)."""

from __future__ import annotations

import argparse
from pathlib import Path

from devtools.environment import CXONE_MODES, Ports


def main(command: str, argv: list[str], root: Path) -> int:
    """Run ``command`` with its arguments ``argv`` from the project directory ``root``."""
    parser = argparse.ArgumentParser(prog=f"python3 dev.py {command}")
    if command in ("demo", "sandbox"):
        parser.add_argument("--port", type=_port, default=5000, metavar="PORT",
                            help="web port (default 5000); CXone simulator PORT+1, "
                                 "Twilio simulator PORT+2")
        parser.add_argument("--cxone", choices=CXONE_MODES, default=CXONE_MODES[0],
                            help="which CXone API the simulator speaks")
    args = parser.parse_args(argv)
    if command == "demo":
        from devtools.demo import run_demo

        return run_demo(root, Ports.from_base(args.port), args.cxone)
    if command == "sandbox":
        from devtools.sandbox_only import run_sandbox

        return run_sandbox(root, Ports.from_base(args.port), args.cxone)
    if command == "lock":
        from devtools.lock import main as lock

        return lock(root)
    parser.error(f"unknown command {command}")
    return 2


def _port(text: str) -> int:
    value = int(text)
    if not 1024 <= value <= 65000:
        raise argparse.ArgumentTypeError("give a port between 1024 and 65000")
    return value
