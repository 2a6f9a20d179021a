"""Named SQL queries kept in ``db/queries/*.sql``.

Each file holds queries introduced by ``-- name: <name>`` lines; the query is
reachable as ``Q["<file>.<name>"]``. SQL stays SQL: parameterised with
``%(name)s``, never built with f-strings.
"""

from __future__ import annotations

import re
from pathlib import Path

QUERIES_DIR = Path(__file__).parent / "queries"
_NAME = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Every named query of every ``.sql`` file in ``directory``."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        parts = _NAME.split(text)
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            key = f"{path.stem}.{name}"
            if key in queries:
                raise ValueError(f"query {key} is defined twice")
            queries[key] = body.strip().rstrip(";")
    return queries


Q = load_queries()
