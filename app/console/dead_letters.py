"""Dead letters: filter by kind and error; replay or discard one, or replay all matching.

Replay and discard are app.operations' own (audited, source ``console``): a
replayed send looks Twilio up before it creates anything, as with the CLI.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from app import operations as ops
from app.console.gate import bp, services
from app.logs import event
from db import console as console_q

log = logging.getLogger(__name__)

LIST_LIMIT = 200
REPLAY_ALL_LIMIT = 100_000
_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_ERROR_FILTER = 200
NOTICES = {"replayed": "Replayed", "discarded": "Discarded"}


def _filters(source: Any) -> tuple[str | None, str | None]:
    """(kind, error) from a query string or a form; 400 on a malformed value."""
    kind = (source.get("kind") or "").strip() or None
    error = (source.get("error") or "").strip() or None
    if kind is not None and not _KIND.fullmatch(kind):
        abort(400, description="kind must be a job kind such as send_sms")
    if error is not None and len(error) > MAX_ERROR_FILTER:
        abort(400, description=f"the error filter is limited to {MAX_ERROR_FILTER} characters")
    return kind, error


@bp.get("/dead-letters")
def dead_letters() -> Any:
    kind, error = _filters(request.args)
    with services().db.connection() as conn:
        rows = ops.dead_letters(conn, kind=kind, error=error, limit=LIST_LIMIT + 1)
        kinds = sorted(set(console_q.dead_kinds(conn)) | ({kind} if kind else set()))
    return render_template("console/dead_letters.html", rows=rows[:LIST_LIMIT],
                           more=len(rows) > LIST_LIMIT, kinds=kinds, kind=kind, error=error,
                           notice=_notice())


def _notice() -> str | None:
    """What the last action did (carried in the redirect's query string)."""
    done = request.args.get("done")
    count = request.args.get("count", "")
    if done not in NOTICES or not count.isdigit():
        return None
    n = int(count)
    if n == 0:
        return "Nothing was changed: that dead letter is no longer dead."
    return f"{NOTICES[done]} {n} dead letter{'s' if n != 1 else ''}."


@bp.post("/dead-letters/<int:job_id>/replay")
def replay_one(job_id: int) -> Any:
    return _act("replay", [job_id])


@bp.post("/dead-letters/<int:job_id>/discard")
def discard_one(job_id: int) -> Any:
    return _act("discard", [job_id])


@bp.post("/dead-letters/replay-matching")
def replay_matching() -> Any:
    kind, error = _filters(request.form)
    with services().db.connection() as conn:
        ids = [r["id"] for r in ops.dead_letters(conn, kind=kind, error=error,
                                                 limit=REPLAY_ALL_LIMIT)]
    return _act("replay", ids)


def _act(action: str, ids: list[int]) -> Any:
    operation = ops.replay if action == "replay" else ops.discard
    with services().db.transaction() as conn:
        done = operation(conn, ids, source="console")
    event(log, f"console.dead_letters_{action}", jobs=[r["id"] for r in done])
    kind, error = _filters(request.form)
    return redirect(url_for("console.dead_letters", kind=kind, error=error,
                            done=f"{action}ed", count=len(done)), 303)
