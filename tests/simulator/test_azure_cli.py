"""The simulator serves the real Azure CLI (`az` 2.91), unmodified.

`az` is an independent client: its own code-generated HTTP layer, MSAL used directly, other
api-versions than our SDK. Each step is what a person types in a second terminal while a rollout
runs (README, section simulator). The CLI lives in a venv cached outside the repository
(`scripts/azure-cli-env.sh`, built on first use in about a minute, then instant).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cycle_vmss.simulator import bodies
from cycle_vmss.simulator.server import running_simulator

# The first run installs azure-cli (about a minute); the LROs below wait for az's 30 s poll.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ENV_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "azure-cli-env.sh"
CLOUD = "Simulator"
# Instance 2 reports unhealthy, so the instance view az prints must come from the simulator.
SCENARIO = {
    "instances": [{"id": "0"}, {"id": "1"}, {"id": "2", "health": "unhealthy"}],
    "zones": ["1", "2", "3"],
    "timings": {"reimage_seconds": 1, "boot_seconds": 0.5, "health_seconds": 0.5,
                "create_seconds": 1, "delete_seconds": 0.5},
}
# Anything az would send past the simulator (its version check on a fresh config dir) goes to a
# closed local port instead of the internet.
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def az_executable() -> Path:
    try:
        built = subprocess.run(["bash", str(ENV_SCRIPT)], capture_output=True, text=True,
                               timeout=900, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip("the Azure CLI environment could not be built: scripts/azure-cli-env.sh "
                    "took more than 15 minutes")
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"the Azure CLI environment could not be built: scripts/azure-cli-env.sh "
                    f"exited {built.returncode}: {last}")
    return Path(built.stdout.strip().splitlines()[-1]) / "bin" / "az"


class Az:
    """`az` with an isolated config dir, the simulator's CA trusted and telemetry off."""

    def __init__(self, executable: Path, config_dir: Path, ca_bundle: str, secret: str) -> None:
        self.executable = executable
        self.config_dir = config_dir
        self.secret = secret
        self.login: Any = None  # what `az login` printed (set by the `az` fixture)
        inherited = {k: v for k, v in os.environ.items()
                     if not k.upper().startswith("AZURE_")
                     and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
                                           "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        self.env = {**inherited,
                    "AZURE_CONFIG_DIR": str(config_dir),
                    "AZURE_CORE_COLLECT_TELEMETRY": "false",
                    "REQUESTS_CA_BUNDLE": ca_bundle,
                    "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY,
                    "NO_PROXY": "127.0.0.1,localhost"}

    def copy(self, config_dir: Path) -> "Az":
        """The same signed-in az with its own config dir (for a second process at once)."""
        shutil.copytree(self.config_dir, config_dir)
        return Az(self.executable, config_dir, self.env["REQUESTS_CA_BUNDLE"], self.secret)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(self.executable), *args, "--output", "json"], env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def finish(self, process: subprocess.Popen, timeout: float = 180) -> Any:
        stdout, stderr = process.communicate(timeout=timeout)
        shown = " ".join(process.args[1:]).replace(self.secret, "***")
        if process.returncode != 0:
            pytest.fail(f"az {shown} exited {process.returncode}:\n{stderr.replace(self.secret, '***')}")
        return json.loads(stdout) if stdout.strip() else None

    def __call__(self, *args: str) -> Any:
        return self.finish(self.start(*args))


@pytest.fixture(scope="module")
def sim():
    with running_simulator(SCENARIO) as handle:
        yield handle


@pytest.fixture(scope="module")
def az(az_executable, sim, tmp_path_factory) -> Az:
    return _signed_in(az_executable, sim, tmp_path_factory.mktemp("azure-config"))


def _signed_in(executable: Path, sim, config_dir: Path) -> Az:
    """az signed in to the simulator as a person would be (README, section simulator)."""
    info = sim.info
    cli = Az(executable, config_dir, info["ca_bundle"], info["client_secret"])
    cli("cloud", "register", "--name", CLOUD, "--endpoint-resource-manager", info["arm_endpoint"])
    cli("cloud", "set", "--name", CLOUD)
    # Without this MSAL asks login.microsoftonline.com whether our authority is known.
    cli("config", "set", "core.instance_discovery=false")
    cli.login = cli("login", "--service-principal", "--username", info["client_id"],
                    f"--password={info['client_secret']}", "--tenant", info["tenant_id"])
    return cli


def _calls(sim, method: str, suffix: str) -> list[dict]:
    return [r for r in sim.requests() if r["method"] == method and r["path"].endswith(suffix)]


def test_cloud_register_reads_the_metadata_document_and_login_finds_the_subscription(az, sim):
    info = sim.info
    cloud = az("cloud", "show", "--name", CLOUD)
    assert cloud["endpoints"]["resourceManager"] == info["arm_endpoint"]
    assert cloud["endpoints"]["activeDirectory"] == info["authority_host"]
    assert cloud["isActive"] is True
    metadata = _calls(sim, "GET", "/metadata/endpoints")
    assert [r["status"] for r in metadata] == [200]

    [listed] = az.login
    account = dict(listed)
    assert account.pop("name")  # the subscription's display name
    assert account == {
        "cloudName": CLOUD, "homeTenantId": info["tenant_id"], "id": info["subscription_id"],
        "isDefault": True, "managedByTenants": [], "state": "Enabled",
        "tenantId": info["tenant_id"],
        "user": {"name": info["client_id"], "type": "servicePrincipal"},
    }
    assert [r["status"] for r in _calls(sim, "GET", "/subscriptions")] == [200]
    assert az("account", "show")["id"] == info["subscription_id"]


def test_list_instances_shows_the_simulated_instances(az, sim):
    info = sim.info
    listed = az("vmss", "list-instances", "-g", info["resource_group"], "-n", info["scale_set_name"])
    assert [vm["instanceId"] for vm in listed] == ["0", "1", "2"]
    assert [vm["zones"] for vm in listed] == [["1"], ["2"], ["3"]]
    assert {vm["provisioningState"] for vm in listed} == {"Succeeded"}
    assert listed[0]["name"] == f"{info['scale_set_name']}_0"


@pytest.mark.parametrize("instance_id, health", [("0", "HealthState/healthy"),
                                                 ("2", "HealthState/unhealthy")])
def test_get_instance_view_prints_states_and_health_as_the_simulator_holds_them(
        az, sim, instance_id, health):
    info = sim.info
    view = az("vmss", "get-instance-view", "-g", info["resource_group"], "-n",
              info["scale_set_name"], "--instance-id", instance_id)
    held = bodies.instance_view(sim.backend.scenario, sim.backend.get_instance(
        info["resource_group"], info["scale_set_name"], instance_id))
    assert [s["code"] for s in view["statuses"]] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert [s["code"] for s in view["statuses"]] == [s["code"] for s in held["statuses"]]
    assert view["vmHealth"]["status"]["code"] == health == held["vmHealth"]["status"]["code"]


def test_reimage_of_one_instance_and_scale_out_run_to_completion(az, sim, tmp_path):
    info = sim.info
    rg, name = info["resource_group"], info["scale_set_name"]
    # Both wait for their operation like a person's az does (first poll at once, then 30 s), so
    # they run side by side, each with its own copy of the signed-in config dir.
    scaler = az.copy(tmp_path / "azure-config")
    reimaging = az.start("vmss", "reimage", "-g", rg, "-n", name, "--instance-ids", "1")
    scaling = scaler.start("vmss", "scale", "-g", rg, "-n", name, "--new-capacity", "4")
    az.finish(reimaging)
    scaled = scaler.finish(scaling)

    # The scale-set level reimage with instanceIds touched exactly the one instance.
    history = sim.history()
    assert [call["instances"] for call in history["whole_set_reimage_calls"]] == [["1"]]
    reimages = {i: h["reimages"] for i, h in history["instances"].items() if h["reimages"]}
    assert list(reimages) == ["1"]
    assert [r["status"] for r in reimages["1"]] == ["Succeeded"]
    assert history["instances"]["1"]["not_ready"], "the reimaged instance was never out of service"
    assert history["instances"]["0"]["not_ready"] == []
    assert [r["status"] for r in _calls(sim, "POST", f"/{name}/reimageall")] == [202]

    # Scale reads the set and PUTs it back with the new capacity (not PATCH).
    assert scaled["sku"]["capacity"] == 4
    assert [r["status"] for r in _calls(sim, "PUT", f"/virtualMachineScaleSets/{name}")] == [200]
    listed = az("vmss", "list-instances", "-g", rg, "-n", name)
    assert [vm["instanceId"] for vm in listed] == ["0", "1", "2", "3"]
    assert {vm["provisioningState"] for vm in listed} == {"Succeeded"}


def test_reimage_without_instance_ids_takes_every_instance_at_once(az_executable, tmp_path):
    # What Azure does and this product exists to avoid: the simulator's history must show it.
    with running_simulator(SCENARIO) as fresh:
        rg, name = fresh.info["resource_group"], fresh.info["scale_set_name"]
        az = _signed_in(az_executable, fresh, tmp_path / "azure-config")
        az("vmss", "reimage", "-g", rg, "-n", name, "--no-wait")
        history, seen = fresh.history(), fresh.requests()
    assert [call["instances"] for call in history["whole_set_reimage_calls"]] == [["0", "1", "2"]]
    assert [r["status"] for r in seen if r["path"].endswith(f"/{name}/reimage")] == [202]
