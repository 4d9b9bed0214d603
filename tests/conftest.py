"""Shared fixtures: a running simulator (HTTPS in a thread) and the real SDK clients pointed at it.

    def test_x(simulator, compute_client, fast_timings):
        sim = simulator({"instances": 3, "timings": fast_timings})
        client = compute_client(sim)
        client.virtual_machine_scale_sets.get(sim.info["resource_group"], sim.info["scale_set_name"])
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

# Short phases so that a reimage takes about a second of wall time.
FAST_TIMINGS = {"reimage_seconds": 0.4, "boot_seconds": 0.2, "health_seconds": 0.2,
                "create_seconds": 0.4, "delete_seconds": 0.2}
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def simulator():
    """Factory: `simulator(scenario_dict_or_path_or_None)` -> a running simulator handle
    (`.info`, `.backend`, `.env()`, `.requests()`, `.history()`), stopped after the test."""
    from cycle_vmss.simulator.server import running_simulator

    with ExitStack() as stack:
        yield lambda scenario=None: stack.enter_context(running_simulator(scenario))


def _secret_credential(sim, *, client_id: str | None = None, client_secret: str | None = None,
                       tenant_id: str | None = None):
    """azure-identity's ClientSecretCredential against the simulator's Entra endpoint."""
    from azure.identity import ClientSecretCredential

    info = sim.info
    return ClientSecretCredential(
        tenant_id or info["tenant_id"], client_id or info["client_id"],
        info["client_secret"] if client_secret is None else client_secret,
        authority=info["authority_host"], disable_instance_discovery=True,
        connection_verify=info["ca_bundle"])


@pytest.fixture
def secret_credential():
    """Factory: `secret_credential(sim, client_id=..., client_secret=..., tenant_id=...)` ->
    ClientSecretCredential (authority = the simulator, instance discovery off, its CA trusted)."""
    return _secret_credential


@pytest.fixture(params=("Uniform", "Flexible"))
def mode(request) -> str:
    """Both orchestration modes, for a test that runs the same rollout over each: Uniform (the
    scale-set VM APIs) and Flexible (the single-VM APIs; instances are VMs named `<set>_<id>`)."""
    return request.param


@pytest.fixture
def fast_timings() -> dict:
    return dict(FAST_TIMINGS)


@pytest.fixture
def compute_client():
    """Factory: `compute_client(sim, credential=None, **kwargs)` -> the real
    ComputeManagementClient over HTTPS (ClientSecretCredential unless one is given)."""
    from azure.mgmt.compute import ComputeManagementClient

    clients = []

    def make(sim, credential=None, **kwargs):
        kwargs.setdefault("polling_interval", 0.05)
        kwargs.setdefault("credential_scopes", [ARM_SCOPE])
        client = ComputeManagementClient(
            credential or _secret_credential(sim), sim.info["subscription_id"],
            base_url=sim.info["arm_endpoint"], connection_verify=sim.info["ca_bundle"], **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
