"""``python -m app.sandbox`` → ``python -m sandbox`` (run from a checkout of the repository)."""

import sys

try:
    from sandbox.__main__ import main
except ImportError:
    print("app.sandbox: the simulators live in the repository's sandbox/ folder; "
          "run `python -m sandbox ...` from a checkout", file=sys.stderr)
    raise SystemExit(2) from None

if __name__ == "__main__":
    sys.exit(main())
