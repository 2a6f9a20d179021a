#!/usr/bin/env python3
"""Set up and run the gateway on this machine. Needs only Python 3.11+.

    python3 dev.py demo       everything against the sandbox; Ctrl-C stops it all
    python3 dev.py test       the test suite (extra arguments go to pytest)
    python3 dev.py sandbox    only the two simulators, and .env.sandbox for honcho and smsgw
    python3 dev.py setup      only create .venv (then: . .venv/bin/activate)
    python3 dev.py lock       rewrite requirements.txt from pyproject.toml

demo and sandbox take --port PORT (web; the simulators on PORT+1 and PORT+2).
Each command creates .venv and installs the project with its dev extra on first
use (again whenever pyproject.toml changes). With DATABASE_URL unset the
gateway uses the embedded Postgres whose data lives under .data/.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".smsgw-installed"
COMMANDS = ("demo", "test", "sandbox", "setup", "lock")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may run on an older python3
        print("dev.py: Python 3.11 or newer is needed", file=sys.stderr)
        return 2
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_environment(argv)
    command, rest = argv[0], argv[1:]
    if command == "test":
        return run_tests(rest)
    if command == "setup":
        print("dev.py: .venv is ready. Activate it with:  . .venv/bin/activate")
        return 0
    os.chdir(ROOT)
    from devtools.commands import main as run

    return run(command, rest, ROOT)


# -- environment ---------------------------------------------------------------------------

def ensure_environment(argv: list[str]) -> None:
    """Create .venv and install the project, then continue inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        print("dev.py: creating .venv (first run only)", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        print("dev.py: installing the project and its dev tools into .venv "
              "(first run, or pyproject.toml changed; about a minute)", flush=True)
        install([str(VENV_PYTHON), "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", "-e", f"{ROOT}[dev]"])
        STAMP.write_text(wanted)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])


def install(command: list[str]) -> None:
    """Run pip, saying every 15 s that it still works; its output only if it fails."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as log:
        pip = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                pip.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                print(f"dev.py:   still installing ({time.monotonic() - started:.0f} s)",
                      flush=True)
        if pip.returncode != 0:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            print("dev.py: installing into .venv failed (pip's output above)", file=sys.stderr)
            raise SystemExit(1)
    print(f"dev.py:   installed in {time.monotonic() - started:.0f} s", flush=True)


# -- test ----------------------------------------------------------------------------------

def run_tests(args: list[str]) -> int:
    """Run pytest (the default selection is in pyproject.toml)."""
    os.chdir(ROOT)
    return subprocess.call([sys.executable, "-m", "pytest", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
