"""Shared fixtures: a running simulator (HTTPS in a thread) and the real SDK clients pointed at it.

    def test_x(simulator, compute_client, fast_timings):
        sim = simulator({"instances": 3, "timings": fast_timings})
        client = compute_client(sim)
        client.virtual_machine_scale_sets.get(sim.info["resource_group"], sim.info["scale_set_name"])
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest
from report_schema import is_run_report, validate_report

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


@pytest.fixture(autouse=True)
def reports_match_the_schema(monkeypatch, tmp_path_factory):
    """Every run report a test produces matches schemas/run-report.schema.json: each one this
    process turns into JSON, and each report file that another process (the action, the CLI,
    the pipeline task) wrote under the test's temporary folders while the test ran."""
    from cycle_vmss.report import Report

    as_dict = Report.as_dict

    def checked(report: Report) -> dict:
        data = as_dict(report)
        validate_report(data)
        return data

    monkeypatch.setattr(Report, "as_dict", checked)
    started = time.time() - 1  # file times may be a little coarser than the clock
    yield
    for path in tmp_path_factory.getbasetemp().rglob("*.json"):
        if path.stat().st_mtime < started:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # another file, or a report whose writer was killed
            continue
        if is_run_report(data):
            validate_report(data)
