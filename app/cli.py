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

``--json`` (anywhere on the line) prints JSON. Settings come from the
environment and one dotenv file (``--env-file``, else ``.env``, else
``.env.sandbox``); the database is found as web and worker find it (see
:mod:`app.cli_setup`). Bad arguments print a usage line and exit 2; missing
settings or no database exit 78; pending migrations and anything else that
fails print one line and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from app.cli_output import (
    format_consent,
    format_dead_letters,
    format_job,
    format_status,
    format_trace,
    render,
)
from app.cli_setup import CliSetupError, load_env_file, locate_database
from app.config import ConfigError, Settings
from app.errors import GatewayError
from app.inputs import InvalidInput, canonical_phone, text

PROG = "smsgw"
EX_CONFIG = 78


class PendingMigrations(RuntimeError):
    """The database is behind the code: only ``smsgw migrate`` may run."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``--json`` and ``--env-file`` are accepted at every level."""
    parser = argparse.ArgumentParser(prog=PROG, description="Operate the CXone-Twilio gateway.")
    _global_flags(parser, json_default=False, env_file_default=None)
    # Sub-commands accept the same flags; SUPPRESS keeps what an earlier level parsed.
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, json_default=argparse.SUPPRESS, env_file_default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(where: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return where.add_parser(name, parents=[common], **kwargs)  # type: ignore[no-any-return]

    command(sub, "migrate", help="apply pending database migrations")
    command(sub, "status", help="queue depth, lag, dead letters, workers, senders")
    command(sub, "reconcile", help="run one reconciliation pass now")
    trace = command(sub, "trace", help="the timeline of one message")
    trace.add_argument("ref", help="CXone message id or Twilio MessageSid")

    dlq = command(sub, "dead-letters", help="list, show, replay or discard dead letters")
    dsub = dlq.add_subparsers(dest="action", required=True)
    lst = command(dsub, "list")
    _filters(lst)
    lst.add_argument("--limit", type=int, default=100)
    command(dsub, "show").add_argument("id", type=int)
    for name in ("replay", "discard"):
        act = command(dsub, name)
        act.add_argument("ids", type=int, nargs="*")
        act.add_argument("--all", action="store_true", help="every dead letter matching filters")
        _filters(act)

    consent = command(sub, "consent", help="read and change the consent ledger")
    csub = consent.add_subparsers(dest="action", required=True)
    command(csub, "get").add_argument("number", type=_e164)
    set_ = command(csub, "set")
    set_.add_argument("number", type=_e164)
    set_.add_argument("status", choices=["opted_in", "opted_out"])
    set_.add_argument("--note", default="", type=_note, help="evidence kept in the history")
    command(csub, "import").add_argument("file", type=Path)
    command(csub, "export").add_argument("file", type=Path, nargs="?")
    return parser


def _global_flags(parser: argparse.ArgumentParser, *, json_default: Any,
                  env_file_default: Any) -> None:
    parser.add_argument("--json", action="store_true", default=json_default, help="print JSON")
    parser.add_argument("--env-file", default=env_file_default, metavar="FILE",
                        help="read settings from FILE (default: .env, else .env.sandbox)")


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
    from db.embedded import EmbeddedUnavailable

    try:
        load_env_file(args.env_file, Path.cwd())
        return _run(args)
    except (ConfigError, CliSetupError, EmbeddedUnavailable) as exc:
        prefix = "configuration error: " if isinstance(exc, ConfigError) else ""
        return _fail(f"{prefix}{exc}", EX_CONFIG)
    except PendingMigrations as exc:
        return _fail(str(exc), 1)
    except Exception as exc:  # an operator gets one line, never a traceback...
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            raise  # ...unless they asked for everything
        return _fail(_one_line(exc), 1)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def _one_line(exc: Exception) -> str:
    import psycopg

    from db import migrate as migrations
    from db.pool import first_line

    if isinstance(exc, psycopg.Error):
        return f"database error: {first_line(exc)}"
    if isinstance(exc, GatewayError | OSError | ValueError | migrations.MigrationError):
        return first_line(exc)
    return f"unexpected {type(exc).__name__}: {first_line(exc)}"


def _run(args: argparse.Namespace) -> int:
    from db import migrate as migrations
    from db.pool import Database

    # Reconcile talks to CXone and Twilio: check its settings before touching a database.
    settings = Settings.from_env() if args.command == "reconcile" else None
    url = locate_database(Path.cwd(), may_create=args.command == "migrate")
    if args.command == "migrate":
        applied = migrations.migrate(url)
        _print(args, {"applied": [m.version for m in applied]},
               lambda d: f"applied {len(d['applied'])} migration(s); the database is current")
        return 0
    db = Database(url, max_size=2, application_name="smsgw-cli")
    try:
        with db.connection() as conn:
            _refuse_pending_migrations(conn)
        if settings is not None:
            return _reconcile(args, settings, db)
        with db.transaction() as conn:
            return _dispatch(args, conn)
    finally:
        db.close()


def _refuse_pending_migrations(conn: Any) -> None:
    from db import migrate as migrations

    waiting = migrations.pending(conn)
    if waiting:
        versions = ", ".join(m.version for m in waiting)
        raise PendingMigrations(f"the database has {len(waiting)} pending migration(s) "
                                f"({versions}): run `smsgw migrate`")


def _dispatch(args: argparse.Namespace, conn: Any) -> int:
    from app import operations as ops

    if args.command == "status":
        _print(args, ops.queue_status(conn), format_status)
        return 0
    if args.command == "trace":
        found = ops.trace(conn, args.ref)
        if found is None:
            return _fail(f"nothing known about {args.ref}", 1)
        _print(args, found, format_trace)
        return 0
    if args.command == "dead-letters":
        return _dead_letters(args, conn)
    return _consent(args, conn)


def _dead_letters(args: argparse.Namespace, conn: Any) -> int:
    from app import operations as ops

    if args.action == "list":
        rows = ops.dead_letters(conn, kind=args.kind, error=args.error, limit=args.limit)
        _print(args, rows, format_dead_letters)
        return 0
    if args.action == "show":
        job = ops.show_job(conn, args.id)
        if job is None:
            return _fail(f"no job {args.id}", 1)
        _print(args, job, format_job)
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
        _print(args, ops.consent_of(conn, args.number), format_consent)
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


def _reconcile(args: argparse.Namespace, settings: Settings, db: Any) -> int:
    """One pass, as the worker's reconciler would run it (never beside a running one)."""
    from app.services import Services
    from worker.leader import holding
    from worker.reconciler import reconcile_once

    services = Services(settings=settings, db=db, process_name="cli")
    with holding(services.db, "reconciler", wait_s=30) as held:
        if not held:
            return _fail("a worker is reconciling right now; try again in a minute", 1)
        result = reconcile_once(services)
    _print(args, result, lambda d: ", ".join(f"{k}={v}" for k, v in d.items()))
    return 0


def _print(args: argparse.Namespace, data: Any, human: Any) -> None:
    print(render(data, human, as_json=args.json))


if __name__ == "__main__":
    sys.exit(main())
