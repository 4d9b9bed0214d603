"""`cycle-vmss demo`: a real rolling reimage against the built-in simulator, no Azure account.

The simulator serves ARM and Entra over HTTPS on 127.0.0.1 in this process; the run goes through
the same `execute`, azure-identity credential and azure-mgmt-compute calls as a run against
Azure, so what you see is what the tool does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Sequence

# A small zoned set with short timings: six instances over three zones, about 4 s per reimage.
DEMO_SCENARIO = {
    "instances": 6,
    "zones": ["1", "2", "3"],
    "timings": {"reimage_seconds": 2, "boot_seconds": 1, "health_seconds": 1,
                "create_seconds": 2, "delete_seconds": 1},
}
DEMO_SETTINGS = {"max_unavailable": "2", "poll_interval_seconds": "1", "timeout_minutes": "2"}


def main(argv: Sequence[str] = ()) -> int:
    from azure.identity import ClientSecretCredential

    from cycle_vmss.cli import PROG, fail
    from cycle_vmss.progress import TerminalProgress, print_summary
    from cycle_vmss.report import exit_code
    from cycle_vmss.runner import execute, install_signal_handlers
    from cycle_vmss.settings import SettingError, build_settings
    from cycle_vmss.simulator.server import running_simulator

    parser = argparse.ArgumentParser(prog=f"{PROG} demo", description=(
        "Run a rolling reimage of a simulated six-instance zoned scale set over HTTPS on "
        "127.0.0.1, through the real Azure SDK. No Azure account needed."))
    parser.add_argument("--report-file", metavar="PATH",
                        help="where to write the JSON run report (default: a new file in the temp folder)")
    parser.error = fail  # type: ignore[method-assign]  # one line, exit 2, like the main command
    args = parser.parse_args(list(argv))
    report_file = args.report_file or os.path.join(
        tempfile.gettempdir(), f"cycle-vmss-demo-{time.strftime('%Y%m%d-%H%M%S')}.json")

    with running_simulator(DEMO_SCENARIO) as sim:
        info = sim.info
        try:
            settings = build_settings({
                "resource_group": info["resource_group"], "scale_set_name": info["scale_set_name"],
                "subscription_id": info["subscription_id"], "arm_endpoint": info["arm_endpoint"],
                "report_file": report_file, **DEMO_SETTINGS})
        except SettingError as err:
            fail(str(err))
        # Both the SDK and the credential must trust the simulator's throwaway CA.
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = info["ca_bundle"]
        try:
            credential = ClientSecretCredential(
                info["tenant_id"], info["client_id"], info["client_secret"],
                authority=info["authority_host"], disable_instance_discovery=True)
            print(f"Simulator: ARM and Entra at {info['arm_endpoint'].rstrip('/')}; scale set "
                  f"{settings.scale_set_name} in {settings.resource_group}: 6 instances over zones "
                  f"1-3, max-unavailable {settings.max_unavailable}.\n", flush=True)
            cancelled = threading.Event()
            install_signal_handlers(cancelled)
            with TerminalProgress() as progress:
                report = execute(settings, credential=credential, listener=progress,
                                 cancelled=cancelled)
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
        history = sim.history()

    print()
    print_summary(report)
    if isinstance(history, dict) and "max_not_ready" in history:
        print(f"The simulator saw at most {history['max_not_ready']} instance(s) not ready at "
              f"once (budget: {settings.max_unavailable}).")
    print(f"report: {report_file}")
    code = exit_code(report)
    if code in (1, 2):
        print(f"{PROG}: error: {report.message or report.result}", file=sys.stderr)
    return code
