"""The adapter against the simulator over real HTTPS, through azure-identity and the SDK."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from azure.identity import ClientSecretCredential

from cycle_vmss.azure_adapter import AzureComputePort
from cycle_vmss.simulator.server import running_simulator

FAST = {"reimage_seconds": 0.4, "boot_seconds": 0.2, "health_seconds": 0.2,
        "create_seconds": 0.4, "delete_seconds": 0.2}


def make_port(sim, *, client_id=None, secret=None, resource_group=None, scale_set_name=None):
    info = sim.info
    credential = ClientSecretCredential(
        info["tenant_id"], client_id or info["client_id"], secret or info["client_secret"],
        authority=info["authority_host"], disable_instance_discovery=True,
        connection_verify=info["ca_bundle"])
    return AzureComputePort(
        credential, info["subscription_id"], resource_group or info["resource_group"],
        scale_set_name or info["scale_set_name"], arm_endpoint=info["arm_endpoint"],
        polling_interval=0.25, connection_verify=info["ca_bundle"])


@pytest.fixture
def simulate():
    """`simulate({...})` starts a simulator for the test (short timings unless given)."""
    with ExitStack() as stack:
        def start(scenario: dict | None = None):
            return stack.enter_context(running_simulator({"instances": 3, "timings": FAST,
                                                          **(scenario or {})}))
        yield start


def arm_requests(sim) -> list[dict]:
    """Requests to ARM (not to the Entra or GitHub endpoints, not introspection)."""
    return [r for r in sim.requests() if r["path"].startswith("/subscriptions/")]


def wait(op, limit: float = 15):
    """Poll an adapter operation until it finishes (its SDK poller runs in its own thread)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = op.status()
        if status.finished:
            return status
        time.sleep(0.1)
    raise AssertionError("operation did not finish")
