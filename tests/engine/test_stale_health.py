"""Fresh health only (issue 17): after a reimage, Azure may go on showing the old `healthy` and its
old time for a while. Over real HTTPS through azure-identity and the SDK, the run must count an
instance ready only on health reported after its reimage ended, and the simulator's history (the
truth, not what was served) must show the budget kept."""

from __future__ import annotations

import pytest

from cycle_vmss.azure_adapter import AzureComputePort
from cycle_vmss.clock import SystemClock
from cycle_vmss.engine import run_rollout
from cycle_vmss.settings import build_settings

from .conftest import Recorder

pytestmark = pytest.mark.slow

# The reimage ends 1 s after it starts, the fresh healthy comes 1.5 s later, and the old healthy
# is shown for 3 s after the end: a poll every second sees it more than once. Three instances,
# max-unavailable 1: R_min = 2. On the Flexible set the VM list leaves vmHealth out, so the
# in-flight VMs' own instance views serve the stale health.
STALE = {"instances": 3, "zones": [],
         "timings": {"reimage_seconds": 0.6, "boot_seconds": 0.4, "health_seconds": 1.5,
                     "stale_health_seconds": 3}}


def test_a_stale_healthy_is_not_ready_and_the_budget_holds(simulator, secret_credential, mode):
    flexible = {"flexible_list_omits_health": True} if mode == "Flexible" else {}
    sim = simulator({**STALE, "orchestration_mode": mode, **flexible})
    info = sim.info
    port = AzureComputePort(secret_credential(sim), info["subscription_id"], info["resource_group"],
                            info["scale_set_name"], arm_endpoint=info["arm_endpoint"],
                            polling_interval=0.25, connection_verify=info["ca_bundle"])
    settings = build_settings({"resource_group": info["resource_group"],
                               "scale_set_name": info["scale_set_name"],
                               "subscription_id": info["subscription_id"],
                               "arm_endpoint": info["arm_endpoint"], "max_unavailable": "1",
                               "poll_interval_seconds": "1", "timeout_minutes": "1"})
    events = Recorder()
    try:
        report = run_rollout(settings, port, clock=SystemClock(), listener=events).as_dict()
    finally:
        port.close()

    assert report["result"] == "succeeded", report["message"]
    history = sim.history()
    assert history["max_not_ready"] == 1  # never two out at once: R_min = 2 held throughout
    assert all(t["others_ready"] >= 2 for t in history["takeouts"] if t["was_ready"])
    done = {e.instance_id: e.time for e in events.of("done")}
    assert sorted(done) == sorted(history["instances"])
    for name, record in history["instances"].items():
        # Done only once truly healthy: after the fresh report, not on the stale one.
        assert done[name] >= record["not_ready"][-1][1], name
