"""Status reports for CXone: queued in Postgres, pushed in order by one job per message.

Anything that decides CXone should hear a status (a refusal, a failure, a repair)
queues a :class:`~app.cxone.StatusReport` here; the status job
(worker/status_push.py) pushes a message's reports in order through the CXone port.
"""

from __future__ import annotations

from app.cxone import StatusReport
from app.jobs import Kind
from db import cxone_state
from db.pool import Connection


def queue_report(conn: Connection, message_id: str, report: StatusReport) -> None:
    """Record a report for CXone and make sure the message's status job will run."""
    cxone_state.queue_update(conn, Kind.CXONE_STATUS, message_id, report)
