"""Which files one agent reply touches on its way from CXone to SENT (issue "One home per
concept": at most half of what it touched before).

Runs, in this process, against both simulators and a fresh database: one poll, the
send job, the status job. A tracer records every Python file of app/, worker/ and db/
that ran a line, and every SQL file a named query came from (plus the migrations
that define the server-side functions those queries called).

    .venv/bin/python tests/bench/trace_reply_path.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import psycopg
    from psycopg.conninfo import make_conninfo

    from app.config import Settings
    from app.services import Services
    from db import migrate, outbox
    from db import queries as queries_module
    from db.pool import Database
    from sandbox import cxone_sim, defaults, twilio_sim
    from sandbox.server import serve_in_thread
    from worker.jobs import JobContext
    from worker.poller import poll_once
    from worker.send import handle_send
    from worker.status_push import handle_cxone_status

    name = f"smsgw_trace_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    migrate.migrate(url)
    cx = serve_in_thread(cxone_sim.create_app(cxone_sim.CxoneSimConfig()))
    tw = serve_in_thread(twilio_sim.create_app(twilio_sim.TwilioSimConfig()))
    import requests

    requests.post(cx.url + "/_sandbox/replies", json={
        "to": "+14155550100", "from": defaults.SENDER_NUMBERS[0], "body": "traced"}, timeout=5)
    settings = Settings.from_env({
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID, "CXONE_CLIENT_SECRET":
        defaults.CXONE_CLIENT_SECRET, "CXONE_API_BASE_URL": cx.url,
        "CXONE_TOKEN_URL": cx.url + "/auth/token", "TWILIO_API_BASE_URL": tw.url,
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "SENDER_NUMBERS": ",".join(defaults.SENDER_NUMBERS),
        "CONSENT_MODE": "opt-out", "SENDER_MPS": "50"})
    services = Services(settings=settings, db=Database(url, max_size=4))
    ctx = JobContext(services=services, worker_id="trace")
    services.cxone, services.twilio  # noqa: B018 - build the adapters before tracing

    used_queries: set[str] = set()
    original = queries_module.Q

    class Recording(dict):
        def __getitem__(self, key: str) -> str:
            used_queries.add(key)
            return original[key]

    recording = Recording(original)
    for module in list(sys.modules.values()):
        if getattr(module, "Q", None) is original:
            module.Q = recording  # type: ignore[attr-defined]
    touched: set[str] = set()

    def tracer(frame, event, arg):
        path = frame.f_code.co_filename
        if path.startswith(str(ROOT)) and "/tests/" not in path and "/sandbox/" not in path \
                and "/.venv" not in path:
            touched.add(str(Path(path).relative_to(ROOT)))
        return None

    def claim_one(kind: str):
        with services.db.connection() as conn:
            conn.execute("UPDATE outbox SET run_at = now() WHERE state = 'queued'")
            jobs = outbox.claim(conn, worker="trace", limit=10, lease_s=60)
        return [j for j in jobs if j.kind == kind]

    sys.setprofile(tracer)
    leader = services.db.connect()
    poll_once(ctx, leader)
    [send] = claim_one("send_sms")
    handle_send(ctx, send)
    [status] = claim_one("cxone_status")
    handle_cxone_status(ctx, status)
    sys.setprofile(None)
    leader.close()

    sql_files = sorted({f"db/queries/{q.split('.')[0]}.sql" for q in used_queries})
    called = set()
    for q in used_queries:
        called |= set(re.findall(r"smsgw_[a-z_]+", original[q]))
    # Where the server-side functions called are defined now: db/schema.sql when there is
    # one (it holds the current definitions), else the migrations that define them.
    schema = ROOT / "db/schema.sql"
    if called and schema.exists():
        migrations = ["db/schema.sql"]
    else:
        migrations = sorted({str(p.relative_to(ROOT))
                             for p in (ROOT / "db/migrations").glob("*.sql")
                             for fn in called if f"FUNCTION {fn}(" in p.read_text()})
    python = sorted(p for p in touched if p.endswith(".py"))
    print(f"python files ({len(python)}):")
    for p in python:
        print(f"  {p}")
    print(f"sql files ({len(sql_files) + len(migrations)}):")
    for p in sql_files + migrations:
        print(f"  {p}")
    print(f"total: {len(python) + len(sql_files) + len(migrations)}")
    services.close()
    cx.stop()
    tw.stop()
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
