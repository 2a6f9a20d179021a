"""``smsgw`` (or ``python -m app.cli``): the operator's command line.

    smsgw migrate | status
    smsgw dead-letters list [--kind K] [--error TEXT] [--limit N]
    smsgw dead-letters show ID
    smsgw dead-letters replay (ID... | --all [--kind K] [--error TEXT])
    smsgw dead-letters discard (ID... | --all [--kind K] [--error TEXT])
    smsgw consent get NUMBER | set NUMBER opted_in|opted_out [--note TEXT]
    smsgw consent import FILE.csv | export [FILE.csv]
    smsgw reconcile
    smsgw trace (CXONE_MESSAGE_ID | TWILIO_SID)

Add ``--json`` for machine-readable output. Bad arguments print a usage line
and exit 2; a configuration error exits 78; anything else that fails, 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from app.config import ConfigError, Settings, database_url_from_env, load_dotenv_file
from app.errors import GatewayError
from app.inputs import InvalidInput, canonical_phone, text

PROG = "smsgw"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Operate the CXone-Twilio gateway.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("status", help="queue depth, lag, dead letters, workers, senders")
    sub.add_parser("reconcile", help="run one reconciliation pass now")
    trace = sub.add_parser("trace", help="the timeline of one message")
    trace.add_argument("ref", help="CXone message id or Twilio MessageSid")

    dlq = sub.add_parser("dead-letters", help="list, show, replay or discard dead letters")
    dsub = dlq.add_subparsers(dest="action", required=True)
    lst = dsub.add_parser("list")
    _filters(lst)
    lst.add_argument("--limit", type=int, default=100)
    show = dsub.add_parser("show")
    show.add_argument("id", type=int)
    for name in ("replay", "discard"):
        act = dsub.add_parser(name)
        act.add_argument("ids", type=int, nargs="*")
        act.add_argument("--all", action="store_true", help="every dead letter matching filters")
        _filters(act)

    consent = sub.add_parser("consent", help="read and change the consent ledger")
    csub = consent.add_subparsers(dest="action", required=True)
    get = csub.add_parser("get")
    get.add_argument("number", type=_e164)
    set_ = csub.add_parser("set")
    set_.add_argument("number", type=_e164)
    set_.add_argument("status", choices=["opted_in", "opted_out"])
    set_.add_argument("--note", default="", type=_note, help="evidence kept in the history")
    imp = csub.add_parser("import")
    imp.add_argument("file", type=Path)
    exp = csub.add_parser("export")
    exp.add_argument("file", type=Path, nargs="?")
    return parser


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help="job kind, e.g. send_sms, cxone_status, cxone_inbound")
    parser.add_argument("--error", help="text the last error contains")


def _e164(value: str) -> str:
    try:
        return canonical_phone(value)
    except InvalidInput:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an E.164 number like +14155550100") from None


def _note(value: str) -> str:
    try:
        return text(value, "note", max_length=500)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", None) in ("replay", "discard") and not (args.ids or args.all):
        parser.error(f"dead-letters {args.action}: give job ids or --all")
    if getattr(args, "action", None) in ("replay", "discard") and args.ids and args.all:
        parser.error(f"dead-letters {args.action}: give job ids or --all, not both")
    load_dotenv_file()
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 78
    except (GatewayError, OSError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from db import migrate as migrations
    from db.embedded import resolve_database_url
    from db.pool import Database

    url = resolve_database_url(database_url_from_env())
    if args.command == "migrate":
        applied = migrations.migrate(url)
        _print(args, {"applied": [m.version for m in applied]},
               lambda d: f"applied {len(d['applied'])} migration(s); the database is current")
        return 0
    if args.command == "reconcile":
        return _reconcile(args)
    db = Database(url, max_size=2, application_name="smsgw-cli")
    try:
        with db.transaction() as conn:
            return _dispatch(args, conn)
    finally:
        db.close()


def _dispatch(args: argparse.Namespace, conn: Any) -> int:
    from app import operations as ops

    if args.command == "status":
        _print(args, ops.queue_status(conn), _format_status)
        return 0
    if args.command == "trace":
        found = ops.trace(conn, args.ref)
        if found is None:
            print(f"{PROG}: nothing known about {args.ref}", file=sys.stderr)
            return 1
        _print(args, found, _format_trace)
        return 0
    if args.command == "dead-letters":
        return _dead_letters(args, conn)
    return _consent(args, conn)


def _dead_letters(args: argparse.Namespace, conn: Any) -> int:
    from app import operations as ops

    if args.action == "list":
        rows = ops.dead_letters(conn, kind=args.kind, error=args.error, limit=args.limit)
        _print(args, rows, _format_dead)
        return 0
    if args.action == "show":
        job = ops.show_job(conn, args.id)
        if job is None:
            print(f"{PROG}: no job {args.id}", file=sys.stderr)
            return 1
        _print(args, job, lambda j: json.dumps(j, indent=2, default=str))
        return 0
    ids = args.ids or [r["id"] for r in ops.dead_letters(conn, kind=args.kind, error=args.error,
                                                         limit=100_000)]
    done = (ops.replay if args.action == "replay" else ops.discard)(conn, ids, source="cli")
    verb = "replayed" if args.action == "replay" else "discarded"
    _print(args, {verb: [r["id"] for r in done]},
           lambda d: f"{verb} {len(d[verb])} job(s)" +
           (f"; not dead letters: {sorted(set(ids) - set(d[verb]))}"
            if len(d[verb]) < len(ids) else ""))
    return 0 if len(done) == len(ids) else 1


def _consent(args: argparse.Namespace, conn: Any) -> int:
    from app import operations as ops
    from app.consent import record_consent

    if args.action == "get":
        _print(args, ops.consent_of(conn, args.number), _format_consent)
    elif args.action == "set":
        previous = record_consent(conn, args.number, args.status, source="cli",
                                  evidence={"note": args.note} if args.note else {})
        _print(args, {"phone_number": args.number, "status": args.status,
                      "previous": previous},
               lambda d: f"{d['phone_number']}: {d['previous'] or 'none'} -> {d['status']}")
    elif args.action == "import":
        count = ops.import_consent(conn, args.file.read_text(encoding="utf-8"),
                                   evidence={"file": args.file.name})
        _print(args, {"imported": count}, lambda d: f"imported {d['imported']} row(s)")
    else:
        text = ops.export_consent(conn)
        if args.file:
            args.file.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from app.services import build_services
    from worker.leader import Leadership
    from worker.reconciler import reconcile_once

    services = build_services(Settings.from_env(), process_name="cli", pool_size=2)
    leadership = Leadership(services.db, "reconciler")
    try:
        for _ in range(60):
            if leadership.acquire():
                break
            time.sleep(0.5)
        else:
            print(f"{PROG}: a worker is reconciling right now; try again in a minute",
                  file=sys.stderr)
            return 1
        result = reconcile_once(services)
    finally:
        leadership.release()
        services.close()
    _print(args, result, lambda d: ", ".join(f"{k}={v}" for k, v in d.items()))
    return 0


# -- output --------------------------------------------------------------------------------

def _print(args: argparse.Namespace, data: Any, human: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=_json_default))
    else:
        print(human(data))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _format_status(d: dict[str, Any]) -> str:
    lines = ["queue:"]
    lines += [f"  {r['kind']:<14} {r['state']:<10} {r['jobs']}" for r in d["queue"]] or \
        ["  (empty)"]
    lag = d["oldest_runnable_s"]
    lines.append(f"oldest runnable job: {'none' if lag is None else f'{lag:.1f}s'}")
    lines.append(f"dead letters: {d['dead_letters']}")
    lines.append(f"live workers: {len(d['workers'])}")
    lines += [f"  {w['worker_id']} (beat {float(w['age_s']):.1f}s ago)" for w in d["workers"]]
    webhook = d["last_webhook_s"]
    lines.append(f"last webhook: {'never' if webhook is None else f'{webhook:.0f}s ago'}")
    lines.append("senders (next free slot):")
    lines += [f"  {s['key']:<28} {s['next_slot'].isoformat()} "
              f"(backlog {float(s['backlog_s']):.1f}s)" for s in d["senders"]] or ["  (none yet)"]
    if d["pending_migrations"]:
        lines.append(f"PENDING MIGRATIONS: {', '.join(d['pending_migrations'])}")
    return "\n".join(lines)


def _format_dead(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no dead letters"
    return "\n".join(f"{r['id']:>8}  {r['kind']:<14} attempts={r['attempts']}  "
                     f"message={r['message_id'] or r['dedupe_key']}  "
                     f"{(r['last_error'] or '')[:100]}" for r in rows)


def _format_consent(d: dict[str, Any]) -> str:
    lines = [f"{d['phone_number']}: {d['status'] or 'no record'}"
             + (f" ({d['source']}, {d['updated_at'].isoformat()})" if d["status"] else "")]
    lines += [f"  {h['created_at'].isoformat()}  {h['status']:<10} {h['source']}"
              for h in d["history"]]
    return "\n".join(lines)


def _format_trace(d: dict[str, Any]) -> str:
    lines = [f"message {d['message_id']}"]
    if d["mapping"]:
        m = d["mapping"]
        lines.append(f"  now: SID {m['twilio_message_sid']} status {m['twilio_status']} "
                     f"outcome {m['outcome'] or '-'} dispatches {m['attempts']}")
    for job in d["jobs"]:
        lines.append(f"  job {job['id']} {job['kind']} {job['state']} attempts={job['attempts']}"
                     f" claims={job['claims']}" +
                     (f" last_error={job['last_error'][:80]}" if job["last_error"] else ""))
    for t in d["timeline"]:
        change = f"{t.get('from') or ''}->{t.get('to') or ''}".strip("->")
        extra = f" ({t['reason']})" if t.get("reason") else ""
        sid = f" {t['sid']}" if t.get("sid") else ""
        lines.append(f"  {t['at'].isoformat()}  {t['what']:<28} {change}{extra}{sid}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
