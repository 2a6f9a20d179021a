"""``python -m db migrate``, ``python -m db status`` (and ``python -m db schema``).

Reads only DATABASE_URL (unset: the embedded Postgres under .data/).
"""

from __future__ import annotations

import argparse
import sys

from app.config import database_url_from_env, exit_on_config_error, load_dotenv_file
from db import migrate as migrations
from db.embedded import EmbeddedUnavailable, resolve_database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description="Database migrations.")
    parser.add_argument("command", choices=["migrate", "status", "schema"])
    args = parser.parse_args(argv)
    load_dotenv_file()
    with exit_on_config_error("db"):
        explicit = database_url_from_env()
    try:
        url = resolve_database_url(explicit)
        if args.command == "schema":
            print(migrations.dump_schema(url), end="")
        elif args.command == "migrate":
            applied = migrations.migrate(url)
            for m in applied:
                print(f"applied {m.version} {m.name}")
            print(f"database is current ({len(applied)} applied now)")
        else:
            done, waiting = migrations.status(url)
            for m, at in done:
                print(f"applied  {m.version} {m.name}  {at}")
            for m in waiting:
                print(f"pending  {m.version} {m.name}")
            print(f"{len(done)} applied, {len(waiting)} pending")
    except (migrations.MigrationError, EmbeddedUnavailable) as exc:
        print(f"db: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from db.pool import first_line

        print(f"db: cannot {args.command}: {first_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
