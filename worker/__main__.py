"""``python -m worker``: the worker process (gevent greenlets inside).

``--burst`` runs until no job is due, then exits (tests, one-off catch-up).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when no job is due")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="jobs run at once (default: WORKER_CONCURRENCY)")
    parser.add_argument("--no-poll", action="store_true", help="do not poll CXone")
    args = parser.parse_args(argv)

    from app.config import Settings, exit_on_config_error, load_dotenv_file
    from app.logs import configure_logging
    from app.services import build_services

    load_dotenv_file()
    with exit_on_config_error("worker"):
        settings = Settings.from_env()
        configure_logging(settings.log_level, process_name="worker")
        services = build_services(settings, process_name="worker")

    from worker.runtime import Worker

    return Worker(services, burst=args.burst, concurrency=args.concurrency,
                  poll=not args.no_poll).run()


if __name__ == "__main__":
    sys.exit(main())
