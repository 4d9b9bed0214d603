"""`cycle-vmss demo`'s target: a simulated scale set over HTTPS on 127.0.0.1, and a credential.

The simulator serves ARM and Entra in this process; the CLI then runs it like any other target,
through the same `execute`, azure-identity credential and azure-mgmt-compute calls as a run
against Azure, so what you see is what the tool does.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

# A small zoned set with short timings: six instances over three zones, about 4 s per reimage.
DEMO_SCENARIO = {
    "instances": 6,
    "zones": ["1", "2", "3"],
    "timings": {"reimage_seconds": 2, "boot_seconds": 1, "health_seconds": 1,
                "create_seconds": 2, "delete_seconds": 1},
}
DEMO_SETTINGS = {"max_unavailable": "2", "poll_interval_seconds": "1", "timeout_minutes": "2"}


@dataclass(frozen=True)
class SimulatedTarget:
    raw_settings: dict[str, str]  # for build_settings, like flags
    credential: Any  # a ClientSecretCredential for the simulator's Entra
    simulator: Any  # the running simulator (its `history()` is the judge of the run)

    @property
    def introduction(self) -> str:
        info = self.simulator.info
        return (f"Simulator: ARM and Entra at {info['arm_endpoint'].rstrip('/')}; scale set "
                f"{info['scale_set_name']} in {info['resource_group']}: 6 instances over zones "
                f"1-3, max-unavailable {DEMO_SETTINGS['max_unavailable']}.\n")

    def verdict(self) -> str:
        """What the simulator itself saw: the most instances not ready at once."""
        history = self.simulator.history()
        if not isinstance(history, dict) or "max_not_ready" not in history:
            return ""
        return (f"The simulator saw at most {history['max_not_ready']} instance(s) not ready at "
                f"once (budget: {DEMO_SETTINGS['max_unavailable']}).")


@contextmanager
def simulated_target(report_file: str) -> Iterator[SimulatedTarget]:
    """Start the simulator and trust its throwaway CA (both the SDK and the credential must) for
    as long as the run lasts; stop it and restore REQUESTS_CA_BUNDLE after."""
    from azure.identity import ClientSecretCredential

    from cycle_vmss.simulator.server import running_simulator

    with running_simulator(DEMO_SCENARIO) as sim:
        info = sim.info
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = info["ca_bundle"]
        try:
            credential = ClientSecretCredential(
                info["tenant_id"], info["client_id"], info["client_secret"],
                authority=info["authority_host"], disable_instance_discovery=True)
            yield SimulatedTarget(
                {"resource_group": info["resource_group"], "scale_set_name": info["scale_set_name"],
                 "subscription_id": info["subscription_id"], "arm_endpoint": info["arm_endpoint"],
                 "report_file": report_file, **DEMO_SETTINGS},
                credential, sim)
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
