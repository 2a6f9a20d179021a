"""Test harness: the simulators over real HTTP, and gateway processes as subprocesses.

Tests drive the gateway the way an operator and the outside systems do: the
environment of DESIGN §5, ``python -m worker``, gunicorn, and the simulators'
HTTP APIs. Nothing here reaches into the gateway's internals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from sandbox import defaults
from sandbox.server import RunningServer

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1,
             message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


@dataclass
class Simulator:
    """A running simulator and a small client for its control API."""

    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, path: str, **kwargs: Any) -> Any:
        response = requests.get(self.url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        response = requests.post(self.url + path, json=body if body is not None else {},
                                 timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        requests.delete(self.url + path, timeout=10).raise_for_status()


@dataclass
class CxoneSandbox(Simulator):
    def reply(self, to: str, body: str, *, from_: str = defaults.SENDER_NUMBERS[0],
              **extra: Any) -> dict[str, Any]:
        """Write one agent reply (OUTBOUND, PENDING) in CXone."""
        item = {"to": to, "from": from_, "body": body, **extra}
        return self.post("/_sandbox/replies", item)["items"][0]  # type: ignore[no-any-return]

    def replies(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.post("/_sandbox/replies", {"items": items})["items"]  # type: ignore[no-any-return]

    def message(self, message_id: str) -> dict[str, Any]:
        return self.get(f"/_sandbox/messages/{message_id}")  # type: ignore[no-any-return]

    def statuses(self, message_id: str) -> list[str]:
        """Every status PUT CXone accepted for the message, in order."""
        return [u["body"]["status"] for u in self.message(message_id)["statusUpdates"]
                if u["response_status"] in (200, 204)]

    def fault(self, **rule: Any) -> None:
        self.post("/_sandbox/faults", rule)

    def upload_file(self, name: str, content_type: str, **content: Any) -> dict[str, Any]:
        """Serve a test file (needs the CXone token); reply ``attachments=[{"file": name}]``."""
        body = {"name": name, "content_type": content_type, **content}
        return self.post("/_sandbox/files", body)  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.post("/_sandbox/reset")


@dataclass
class TwilioSandbox(Simulator):
    def messages(self) -> list[dict[str, Any]]:
        return self.get("/_sandbox/messages")["messages"]  # type: ignore[no-any-return]

    def creates(self) -> list[dict[str, Any]]:
        return self.get("/_sandbox/creates")["creates"]  # type: ignore[no-any-return]

    def destination(self, to: str, **rule: Any) -> None:
        self.post("/_sandbox/destinations", {"to": to, **rule})

    def fault(self, **rule: Any) -> None:
        self.post("/_sandbox/faults", rule)

    def configure(self, **config: Any) -> None:
        self.post("/_sandbox/config", config)

    def reset(self) -> None:
        self.post("/_sandbox/reset")
        self.delete("/_sandbox/destinations")
        self.delete("/_sandbox/faults")


@dataclass
class DfoSandbox(Simulator):
    """The DFO 3.0 simulator (real-tenant mode); see docs/SANDBOX.md for its control API."""

    def agent_reply(self, text: str, *, channel_id: str = next(iter(defaults.DFO_CHANNELS)),
                    **fields: Any) -> dict[str, Any]:
        """Make CXone call the gateway with an agent reply (give customer or threadId)."""
        body = {"channelId": channel_id, "text": text, **fields}
        return self.post("/_sandbox/agent-replies", body)  # type: ignore[no-any-return]

    def messages(self) -> list[dict[str, Any]]:
        """Customer messages the gateway created in CXone."""
        return self.get("/_sandbox/messages")["items"]  # type: ignore[no-any-return]

    def status_updates(self, message_id: str) -> list[dict[str, Any]]:
        """Every status PUT for one gateway message id, in order, with the answer status."""
        items = self.get("/_sandbox/status-updates", params={"id": message_id})["items"]
        return items  # type: ignore[no-any-return]

    def one_time_token(self, **fields: Any) -> dict[str, Any]:
        return self.post("/_sandbox/one-time-tokens", fields)  # type: ignore[no-any-return]

    def upload_file(self, name: str, content_type: str, **content: Any) -> dict[str, Any]:
        """Serve a test file (``text=``, ``size=`` or ``data_base64=``); returns its url, sha256."""
        body = {"name": name, "content_type": content_type, **content}
        return self.post("/_sandbox/files", body)  # type: ignore[no-any-return]

    def limits(self) -> dict[str, Any]:
        return self.get("/_sandbox/limits")  # type: ignore[no-any-return]

    def fault(self, **rule: Any) -> None:
        self.post("/_sandbox/faults", rule)

    def configure(self, **config: Any) -> None:
        self.post("/_sandbox/config", config)

    def reset(self) -> None:
        self.post("/_sandbox/reset")


def dfo_gateway_env(dfo: Simulator) -> dict[str, str]:
    """What a gateway in ``CXONE_MODE=dfo`` needs to talk to the DFO simulator.

    Pass it as overrides to :func:`gateway_env`; the simulator's agent side still
    needs ``dfo.configure(gateway_url=...)``.
    """
    return {
        "CXONE_MODE": "dfo",
        "CXONE_ISSUER_URL": dfo.url,
        "CXONE_DFO_BASE_URL": dfo.url,
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID,
        "CXONE_CLIENT_SECRET": defaults.CXONE_CLIENT_SECRET,
        "CXONE_ACCESS_KEY_ID": defaults.DFO_ACCESS_KEY_ID,
        "CXONE_ACCESS_KEY_SECRET": defaults.DFO_ACCESS_KEY_SECRET,
        "BYOC_CLIENT_ID": defaults.BYOC_CLIENT_ID,
        "BYOC_CLIENT_SECRET": defaults.BYOC_CLIENT_SECRET,
        "DFO_CHANNELS": ",".join(f"{cid}={num}" for cid, num in defaults.DFO_CHANNELS.items()),
    }


def gateway_env(database_url: str, cxone: Simulator, twilio: Simulator, *,
                public_base_url: str, **overrides: Any) -> dict[str, str]:
    """The environment of DESIGN §5 for gateway processes under test."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "CXONE_API_BASE_URL": cxone.url,
        "CXONE_TOKEN_URL": cxone.url + "/auth/token",
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID,
        "CXONE_CLIENT_SECRET": defaults.CXONE_CLIENT_SECRET,
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": public_base_url,
        "SENDER_NUMBERS": ",".join(defaults.SENDER_NUMBERS),
        "SENDER_MPS": "50",
        "CONSENT_MODE": "opt-out",
        "POLL_INTERVAL_S": "0.2",
        "RETRY_BASE_S": "0.2",
        "RETRY_MAX_S": "2",
        "RETRY_30008_DELAY_S": "1",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@dataclass
class Process:
    """A gateway process under test; its output goes to a log file we can read."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()


_RUN_DIR: list[Path] = []


def run_dir() -> Path:
    """The working directory of every process a test starts: empty but for gunicorn.conf.py.

    Not the checkout: web, worker and the CLI read ``.env`` (the CLI also
    ``.env.sandbox``) from their working directory, and a developer's own files
    (``python3 dev.py demo`` writes .env.sandbox) must not leak into a test.
    """
    if not _RUN_DIR:
        path = Path(tempfile.mkdtemp(prefix="smsgw-run-"))
        (path / "gunicorn.conf.py").symlink_to(ROOT / "gunicorn.conf.py")
        _RUN_DIR.append(path)
    return _RUN_DIR[0]


def start_process(name: str, args: list[str], env: dict[str, str]) -> Process:
    log_file = tempfile.NamedTemporaryFile(prefix=f"smsgw-{name}-", suffix=".log", delete=False)
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    popen = subprocess.Popen(args, env={**env, "PYTHONPATH": path}, cwd=run_dir(),
                             stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    return Process(name=name, popen=popen, log_path=Path(log_file.name), _log=log_file)


def start_worker(env: dict[str, str], *args: str, name: str = "worker") -> Process:
    return start_process(name, [sys.executable, "-m", "worker", *args], env)


def start_web(env: dict[str, str], port: int, *, workers: int = 2) -> Process:
    """gunicorn with gevent workers, as the Procfile runs it; waits for /healthz."""
    web_env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = start_process("web", [gunicorn, "-k", "gevent", "app:create_app()"], web_env)

    def healthy() -> bool:
        if not proc.alive():
            raise AssertionError(f"web exited early:\n{proc.output()[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(healthy, timeout=30, message="web /healthz")
    return proc


PACING_WINDOWS_S = (1.0, 10.0, 60.0)


def worst_windows(times: list[float], rate: float,
                  windows: tuple[float, ...] = PACING_WINDOWS_S) -> dict[float, tuple[int, int]]:
    """For each window W: (the most arrivals any W seconds held, the limit ⌊1 + r·W⌋)."""
    import bisect
    import math

    times = sorted(times)
    out = {}
    for w in windows:
        worst = max((bisect.bisect_right(times, t + w) - i for i, t in enumerate(times)),
                    default=0)
        out[w] = (worst, math.floor(1 + rate * w + 1e-9))
    return out
