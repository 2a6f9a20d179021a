"""Run one simulator as its own process: ``python -m sandbox twilio|cxone|dfo``.

The port comes from ``--port``, else ``TWILIO_SIM_PORT`` / ``CXONE_SIM_PORT`` /
``DFO_SIM_PORT``, else 5002 / 5001 / 5003.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from dotenv import load_dotenv  # noqa: E402

DEFAULT_PORTS = {"twilio": ("TWILIO_SIM_PORT", 5002), "cxone": ("CXONE_SIM_PORT", 5001),
                 "dfo": ("DFO_SIM_PORT", 5003)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("simulator", choices=sorted(DEFAULT_PORTS))
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    load_dotenv()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    env_name, default_port = DEFAULT_PORTS[args.simulator]
    port = args.port if args.port is not None else int(os.environ.get(env_name, default_port))
    app = _build(args.simulator)

    from sandbox.server import serve_forever

    print(f'{{"event": "sandbox.listening", "simulator": "{args.simulator}", "port": {port}}}',
          flush=True)
    serve_forever(app, args.host, port)
    return 0


def _build(simulator: str) -> Any:
    if simulator == "twilio":
        from sandbox import twilio_sim

        return twilio_sim.create_app(twilio_sim.config_from_env(os.environ))
    if simulator == "dfo":
        from sandbox import dfo_sim

        return dfo_sim.create_app(dfo_sim.config_from_env(os.environ))
    from sandbox import cxone_sim

    return cxone_sim.create_app(cxone_sim.config_from_env(os.environ))


if __name__ == "__main__":
    sys.exit(main())
