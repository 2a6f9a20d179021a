"""Process entry points stop with one line and a non-zero exit on bad configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_config import GOOD

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["worker", "db", "web", "cli"])
def test_process_stops_with_one_line_and_non_zero_exit(command: str, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PORT": "5999",
           **{k: v for k, v in GOOD.items() if k != "TWILIO_MESSAGING_SERVICE_SID"},
           "TWILIO_MESSAGING_SERVICE_SID": "MGnothex"}
    args = {
        "worker": [sys.executable, "-m", "worker"],
        "db": [sys.executable, "-m", "db", "migrate"],
        "web": [str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent",
                "app:create_app()", "--config", str(ROOT / "gunicorn.conf.py")],
        "cli": [sys.executable, "-m", "app.cli", "reconcile"],
    }[command]
    if command == "db":  # db reads only DATABASE_URL: give it one that cannot work
        env["DATABASE_URL"] = "postgresql://user@127.0.0.1:1/x"
    proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    if command != "db":
        assert "TWILIO_MESSAGING_SERVICE_SID" in lines[0]
