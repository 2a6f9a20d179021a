"""Consent: a number's state and history; set it (audited, source ``console``); CSV in and out.

Changes go through app.consent.record_consent and app.operations' import and
export, exactly as the CLI and the admin API do.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for

from app import operations as ops
from app.consent import record_consent
from app.console.gate import bp, services
from app.logs import event

log = logging.getLogger(__name__)

E164 = re.compile(r"\+[1-9]\d{6,14}")
_PUNCTUATION = re.compile(r"[\s().-]")
STATUSES = {"opted_in": "Opted in", "opted_out": "Opted out"}
MAX_NOTE = 500


def canonical_number(raw: str | None) -> str | None:
    """``+1 (415) 555-9876`` → ``+14155559876``; None when it is not an E.164 number."""
    compact = _PUNCTUATION.sub("", raw or "")[:32]
    return compact if E164.fullmatch(compact) else None


@bp.get("/consent")
def consent() -> Any:
    return _page(None, None)


@bp.get("/consent/<number>")
def consent_of(number: str) -> Any:
    canonical = canonical_number(number)
    if canonical is None:
        abort(404, description="not a phone number in E.164 form")
    with services().db.connection() as conn:
        state = ops.consent_of(conn, canonical)
    notice = "Saved." if request.args.get("saved") == "1" else None
    return _page(canonical, state, notice=notice)


@bp.post("/consent")
def consent_change() -> Any:
    """One form: "Look up" shows the number's page, "Save" records the chosen status."""
    number = canonical_number(request.form.get("phone_number"))
    if number is None:
        return _page(None, None, problem="Enter a phone number in E.164 form: + and the "
                                         "country code, then the number.", status=400)
    if request.form.get("action") != "save":
        return redirect(url_for("console.consent_of", number=number), 303)
    status = request.form.get("status")
    note = (request.form.get("note") or "").strip()
    if status not in STATUSES:
        return _page(number, None, problem="Choose a status to save.", status=400)
    if len(note) > MAX_NOTE:
        return _page(number, None, problem=f"The note is limited to {MAX_NOTE} characters.",
                     status=400)
    with services().db.transaction() as conn:
        record_consent(conn, number, status, source="console",
                       evidence={"note": note} if note else {})
    return redirect(url_for("console.consent_of", number=number, saved="1"), 303)


@bp.get("/consent/export.csv")
def consent_export() -> Any:
    with services().db.connection() as conn:
        text = ops.export_consent(conn)
    event(log, "console.consent_exported")
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="consent.csv"'})


@bp.post("/consent/import")
def consent_import() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(None, None, problem="Choose a CSV file to import.", status=400)
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return _page(None, None, problem="The file is not UTF-8 text.", status=400)
    try:
        with services().db.transaction() as conn:
            count = ops.import_consent(conn, text, source="import",
                                       evidence={"by": "console", "file": upload.filename[:100]})
    except ops.ConsentImportError as exc:
        return _page(None, None, problem=f"Nothing was imported: {exc}.", status=400)
    event(log, "console.consent_imported", rows=count)
    return _page(None, None, notice=f"Imported {count} row{'s' if count != 1 else ''}.")


def _page(number: str | None, state: dict[str, Any] | None, *, notice: str | None = None,
          problem: str | None = None, status: int = 200) -> Any:
    return render_template("console/consent.html", number=number, state=state,
                           statuses=STATUSES, notice=notice, problem=problem), status
