"""What each role of a worker last reported: the heartbeat carries it to /readyz and /metrics.

Roles are the poller, the dispatcher and the job kinds it runs (sends, CXone
status sync, inbound posts), the reconciler and housekeeping. Each reports
success, failure (a transient error: CXone down, Twilio 5xx), a crash (an
unexpected exception) or just that its loop went round; the heartbeat writes
the board as ages, so readers need no clock of ours (app/snapshot.py judges it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from app.jobs import Kind

# The role each job kind reports under.
JOB_ROLES = {Kind.SEND.value: "sender", Kind.CXONE_STATUS.value: "status_sync",
             Kind.CXONE_INBOUND.value: "inbound_post", Kind.FETCH_MEDIA.value: "media"}
MAX_ERROR = 200


@dataclass
class _Role:
    last_ok: float | None = None
    last_tick: float | None = None
    failures: int = 0  # consecutive failures or crashes since the last success
    crashes: int = 0  # consecutive crashes since the last success
    error: str | None = None
    leader: bool | None = None


class RoleBoard:
    """Thread- and greenlet-safe record of every role's last report."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self._roles: dict[str, _Role] = {}
        self._lock = threading.Lock()

    def _role(self, name: str) -> _Role:
        return self._roles.setdefault(name, _Role())

    def ok(self, name: str) -> None:
        """The role did its job once more."""
        with self._lock:
            role = self._role(name)
            role.last_ok = role.last_tick = self.clock()
            role.failures = role.crashes = 0
            role.error = None

    def failed(self, name: str, error: str, *, crashed: bool = False) -> None:
        """The role failed (``crashed``: an unexpected exception, not an outside error)."""
        with self._lock:
            role = self._role(name)
            role.last_tick = self.clock()
            role.failures += 1
            role.crashes += 1 if crashed else 0
            role.error = error[:MAX_ERROR]

    def tick(self, name: str) -> None:
        """The role's loop went round (it is not stuck), with nothing to report."""
        with self._lock:
            self._role(name).last_tick = self.clock()

    def leader(self, name: str, held: bool) -> None:
        """Whether this worker holds a one-at-a-time role right now."""
        with self._lock:
            self._role(name).leader = held

    def report(self) -> dict[str, dict[str, Any]]:
        """The board as JSON for the heartbeat: ages in seconds, not clock readings."""
        now = self.clock()
        with self._lock:
            return {name: {
                "ok_age_s": None if r.last_ok is None else round(now - r.last_ok, 1),
                "tick_age_s": None if r.last_tick is None else round(now - r.last_tick, 1),
                "failures": r.failures, "crashes": r.crashes, "error": r.error,
                "leader": r.leader,
            } for name, r in self._roles.items()}
