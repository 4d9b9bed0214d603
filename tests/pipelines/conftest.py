"""Fixtures for the Azure Pipelines tests; the agent stand-in itself is in `azp_agent`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers beside this file have names no other test folder uses.
sys.path.insert(0, str(Path(__file__).parent))

from azp_agent import FAST, AdoOidcEndpoint, Agent  # noqa: E402


@pytest.fixture
def agent(tmp_path, request):
    """An agent against a simulator; parametrize `agent` indirectly to choose the scenario."""
    from cycle_vmss.simulator.server import running_simulator

    scenario = getattr(request, "param", FAST)
    with running_simulator(scenario) as sim:
        oidc = AdoOidcEndpoint(sim.info)
        try:
            yield Agent(tmp_path, sim, oidc)
        finally:
            oidc.close()
