"""Reading request bodies in blueprints: JSON that is exact and bounded, or a 400."""

from __future__ import annotations

from typing import Any

from flask import abort, request

from app.inputs import InvalidInput, parse_json


def json_body(*, required: bool = True) -> Any:
    """The request's JSON body (decoded with a depth bound); 400 naming what is wrong.

    Without ``required`` an empty body is ``None``.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            abort(400, description="body must be JSON (Content-Type: application/json)")
        return None
    try:
        return parse_json(raw)
    except InvalidInput as exc:
        abort(400, description=str(exc))
