"""`python -m cycle_vmss.simulator [--scenario FILE] [--host 127.0.0.1] [--port 0]`

Prints one JSON line with everything a client needs (docs/simulator.md), then serves HTTPS until
SIGINT or SIGTERM and exits 0. A scenario that cannot be served exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .scenario import ScenarioError, load_scenario
from .server import INFO_KEYS, running_simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cycle_vmss.simulator",
        description="Local Azure simulator: ARM Compute (scale sets), Entra and GitHub OIDC over HTTPS.")
    parser.add_argument("--scenario", metavar="FILE", help="scenario JSON file (README: simulator)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    args = parser.parse_args(argv)

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with running_simulator(scenario, host=args.host, port=args.port) as simulator:
            line = {key: simulator.info[key] for key in INFO_KEYS}
            line["forbidden_client_id"] = simulator.info["forbidden_client_id"]
            if "scale_sets" in simulator.info:
                line["scale_sets"] = simulator.info["scale_sets"]
            print(json.dumps(line), flush=True)
            while not stop.wait(0.5):  # a timed wait keeps the signal handler responsive
                pass
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
