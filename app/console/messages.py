"""Messages: search by CXone message id, Twilio SID or phone number; one message's timeline.

The timeline is app.operations.trace (the same facts as ``smsgw trace``), drawn
as a list of labelled, timed steps.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from app import operations as ops
from app.console.gate import bp, services
from db import console as console_q

MAX_QUERY = 200
# A CXone message id (either CXone mode) or a Twilio SID: no spaces, no '+'.
REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:=-]{0,199}")
PHONE = re.compile(r"\+[1-9]\d{6,14}")
DIGITS = re.compile(r"[1-9]\d{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
RESULTS_LIMIT = 50

# (label, kind of step) per audit event; {source} and {to} come from the entry.
STEPS: dict[str, tuple[str, str]] = {
    "message.enqueued": ("Received by {source}", "received"),
    "message.rejected": ("Rejected as malformed", "failure"),
    "send.claimed": ("Claimed by a worker", "claimed"),
    "send.created": ("Sent: Twilio created it", "sent"),
    "send.adopted": ("Sent: found at Twilio and adopted", "sent"),
    "send.failed": ("Twilio refused the send", "failure"),
    "send.refused": ("Not sent: consent", "failure"),
    "send.redispatch_scheduled": ("Re-send from another sender scheduled", "retry"),
    "message.status": ("Twilio status {to}", "receipt"),
    "message.no_receipt": ("No final receipt in time", "failure"),
    "job.retry": ("Retry scheduled", "retry"),
    "job.dead": ("Gave up: dead letter", "failure"),
    "job.replayed": ("Replayed by an operator ({source})", "operator"),
    "job.discarded": ("Discarded by an operator ({source})", "operator"),
    "receipt.callback": ("Receipt by status callback: {to}", "receipt"),
    "receipt.reconcile": ("Receipt found by the reconciler: {to}", "receipt"),
    "cxone.update_queued": ("CXone update queued: {to}", "cxone"),
    "cxone.update_pushed": ("CXone updated: {to}", "cxone"),
    "cxone.update_skipped": ("CXone update skipped: {to}", "cxone"),
    "cxone.update_not_found": ("CXone update: message not found", "cxone"),
    "cxone.update_conflict": ("CXone update refused: conflict", "cxone"),
    "reconcile.repushed": ("Status pushed again by the reconciler", "cxone"),
    "inbound.received": ("Received from the customer", "received"),
    "inbound.posted": ("Posted into the CXone conversation", "cxone"),
}


def classify(query: str) -> tuple[str, str] | None:
    """('phone', '+1…') or ('ref', id-or-SID) or ('either', digits); None when neither."""
    compact = _PHONE_PUNCTUATION.sub("", query)
    if PHONE.fullmatch(compact):
        return "phone", compact
    if DIGITS.fullmatch(compact):
        return "either", compact
    if REF.fullmatch(query):
        return "ref", query
    return None


@bp.get("/messages")
def messages() -> Any:
    query = (request.args.get("q") or "").strip()
    if not query:
        return render_template("console/messages.html", query="", results=None)
    if len(query) > MAX_QUERY:
        abort(400, description=f"a search is at most {MAX_QUERY} characters")
    found = classify(query)
    if found is None:
        return render_template("console/messages.html", query=query, results=None,
                               problem="Search by a CXone message id, a Twilio SID (SM…) "
                                       "or a phone number in E.164 form (+ and country code)."), 400
    kind, value = found
    with services().db.connection() as conn:
        if kind in ("ref", "either") and ops.trace(conn, value) is not None:
            return redirect(url_for("console.message", ref=value))
        if kind == "ref":
            return render_template("console/messages.html", query=query, results=[],
                                   number=None)
        number = value if kind == "phone" else "+" + value
        rows = console_q.messages_of_number(conn, number, limit=RESULTS_LIMIT)
    return render_template("console/messages.html", query=query, results=rows, number=number)


@bp.get("/messages/<ref>")
def message(ref: str) -> Any:
    if not REF.fullmatch(ref):
        abort(404, description="no such message")
    with services().db.connection() as conn:
        traced = ops.trace(conn, ref)
    if traced is None:
        abort(404, description=f"Nothing is known about {ref}.")
    return render_template("console/message.html", ref=ref, t=traced,
                           steps=[step(entry) for entry in traced["timeline"]])


def step(entry: dict[str, Any]) -> dict[str, Any]:
    """One timeline entry as the page shows it: a label, a kind (its colour), the facts."""
    what = str(entry.get("what") or "")
    label, kind = STEPS.get(what, (what, "other"))
    values = {"source": entry.get("source") or "?", "to": entry.get("to") or "?"}
    change = " → ".join(str(s) for s in (entry.get("from"), entry.get("to")) if s)
    return {"at": entry.get("at"), "what": what, "label": label.format(**values), "kind": kind,
            "change": change, "reason": entry.get("reason"), "sid": entry.get("sid"),
            "details": entry.get("details")}
