"""psycopg's wait for a result, done the gevent way: a fifth of the CPU per statement.

Under gevent psycopg cannot use its C wait (it would block the hub) and falls back
to ``select.poll``, which gevent replaces with a cooperative poll object that
starts and stops a watcher per call: about a quarter of a millisecond of CPU per
statement, more than the statement itself (docs/PERFORMANCE.md, CPU). This wait
first asks the kernel, without blocking, whether the socket is ready already (the
real ``poll``, a single system call); only when it is not does the greenlet park
on one libev watcher until it is. Same contract as psycopg's wait functions:
drive the generator with the readiness of ``fileno``.
"""

from __future__ import annotations

import select
from time import monotonic
from typing import Any

from gevent import Timeout, get_hub
from psycopg import errors
from psycopg import waiting as psycopg_waiting
from psycopg.waiting import READY_NONE, READY_R, READY_RW, READY_W

_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
_MASKS = {1: select.POLLIN, 2: select.POLLOUT, 3: select.POLLIN | select.POLLOUT}
_installed: list[bool] = []
_poll: Any = None  # the real select.poll (gevent's replaces the module's)


def install() -> bool:
    """Use :func:`wait` for every psycopg statement in this process when gevent has
    patched ``select`` (web and worker); a no-op elsewhere. True when installed."""
    if _installed:
        return _installed[0]
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        _installed.append(False)
        return False
    patched = bool(monkey.is_module_patched("select"))
    if patched:
        global _poll
        _poll = monkey.get_original("select", "poll")
        psycopg_waiting.wait = wait  # read by psycopg at each call (Connection.wait)
    _installed.append(patched)
    return patched


def wait(gen: Any, fileno: int, interval: float | None = 0.0,
         timeout: float | None = None) -> Any:
    """Run ``gen`` until it returns, waiting cooperatively for ``fileno`` as it asks."""
    hub = get_hub()
    poll = _poll
    deadline = None if timeout is None else monotonic() + timeout
    try:
        wanted = next(gen)
        while True:
            ready = _ready(poll, fileno, wanted)
            if not ready:
                left = None if deadline is None else max(0.0, deadline - monotonic())
                if _park(hub, fileno, int(wanted), left):
                    ready = _ready(poll, fileno, wanted)
            if deadline is not None and not ready and monotonic() >= deadline:
                raise errors._WaitTimeout("wait timeout expired")
            wanted = gen.send(ready)
    except StopIteration as done:
        return done.value


def _ready(poll: Any, fileno: int, wanted: int) -> Any:
    """The socket's readiness now, without waiting (the real poll, timeout 0)."""
    poller = poll()
    poller.register(fileno, _MASKS[int(wanted)] | _BAD)
    events = poller.poll(0)
    if not events:
        return READY_NONE
    revents = events[0][1]
    if revents & select.POLLIN and revents & select.POLLOUT:
        return READY_RW
    if revents & select.POLLIN:
        return READY_R
    if revents & select.POLLOUT:
        return READY_W
    if revents & _BAD:
        raise errors.OperationalError("connection socket closed")
    return READY_NONE


def _park(hub: Any, fileno: int, flags: int, seconds: float | None) -> bool:
    """Sleep this greenlet until ``fileno`` is ready for ``flags`` (libev: 1 read,
    2 write); False when ``seconds`` ran out first."""
    watcher = hub.loop.io(fileno, flags)
    try:
        if seconds is None:
            hub.wait(watcher)
            return True
        with Timeout(seconds, False):
            hub.wait(watcher)
            return True
        return False
    finally:
        watcher.close()

