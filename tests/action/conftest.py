"""Run `entrypoint.py` the way the runner runs a Docker container action: `INPUT_<NAME>`
variables with hyphens kept, the file-command files, GITHUB_ACTIONS=true, the workspace as the
working directory, and the OIDC request variables (here: the simulator's GitHub endpoint)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A reimage takes about 1.5 s of wall time; polls are 1 s (the smallest the settings allow).
QUICK = {"reimage_seconds": 0.5, "boot_seconds": 0.3, "health_seconds": 0.3,
         "create_seconds": 0.5, "delete_seconds": 0.2}


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def commands(self, kind: str) -> list[str]:
        return [l for l in self.lines if l.startswith(f"::{kind}")]


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it: `name<<DELIMITER` ... `DELIMITER`, or `name=value`."""
    values, lines, i = {}, text.splitlines(), 0
    while i < len(lines):
        if m := re.fullmatch(r"([\w-]+)<<(.+)", lines[i]):
            end = lines.index(m.group(2), i + 1)
            values[m.group(1)] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, _, value = lines[i].partition("=")
            values[name] = value
            i += 1
    return values


def action_env(workspace: Path, inputs: dict[str, str], *, sim=None, oidc: bool = True,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    files = workspace.parent / "file_commands"
    files.mkdir(exist_ok=True)
    for name in ("output", "step_summary", "env", "path", "state"):
        (files / name).touch()
    env = {"PATH": os.environ["PATH"], "HOME": str(workspace.parent), "GITHUB_ACTIONS": "true",
           "CI": "true", "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(workspace.parent),
           "GITHUB_OUTPUT": str(files / "output"), "GITHUB_STEP_SUMMARY": str(files / "step_summary"),
           "GITHUB_ENV": str(files / "env"), "GITHUB_PATH": str(files / "path"),
           "GITHUB_STATE": str(files / "state")}
    if sim is not None:
        env["AZURE_AUTHORITY_HOST"] = sim.info["authority_host"]
        env["REQUESTS_CA_BUNDLE"] = sim.info["ca_bundle"]
        if oidc:
            env["ACTIONS_ID_TOKEN_REQUEST_URL"] = sim.info["github_oidc_url"]
            env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = sim.info["github_oidc_token"]
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update(extra or {})
    return env


def sim_inputs(sim, **more: str) -> dict[str, str]:
    """The inputs a workflow would pass for the simulator's scale set (OIDC sign-in)."""
    info = sim.info
    inputs = {"resource-group": info["resource_group"], "scale-set-name": info["scale_set_name"],
              "subscription-id": info["subscription_id"], "arm-endpoint": info["arm_endpoint"],
              "client-id": info["client_id"], "tenant-id": info["tenant_id"],
              "poll-interval-seconds": "1"}
    inputs.update(more)
    return inputs


def instance_id(sim, scenario_id: str) -> str:
    """The id the action reports for a scenario's instance: the instanceId on a Uniform set,
    the VM name `<set>_<id>` on a Flexible one."""
    if sim.backend.scenario.orchestration_mode == "Flexible":
        return f"{sim.info['scale_set_name']}_{scenario_id}"
    return scenario_id


def start_action(workspace: Path, env: dict[str, str], command: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(command or [sys.executable, str(ROOT / "entrypoint.py")], cwd=workspace,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen, workspace: Path, env: dict[str, str], timeout: float = 120) -> ActionRun:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"entrypoint did not finish in {timeout} s:\n{stdout}\n{stderr}")
    return ActionRun(proc.returncode, stdout, stderr, parse_outputs(Path(env["GITHUB_OUTPUT"]).read_text()),
                     Path(env["GITHUB_STEP_SUMMARY"]).read_text(), workspace)


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def run_action(workspace):
    """`run_action(inputs, sim=..., oidc=True, extra={})` -> ActionRun (entrypoint as a subprocess)."""

    def run(inputs: dict[str, str], *, sim=None, oidc: bool = True, extra: dict[str, str] | None = None,
            timeout: float = 120) -> ActionRun:
        env = action_env(workspace, inputs, sim=sim, oidc=oidc, extra=extra)
        return collect(start_action(workspace, env), workspace, env, timeout)

    return run


NEVER_HEALTHY_TEST = "test_never_healthy_instance_fails_the_run_with_an_error_annotation"


def pytest_collection_modifyitems(session, config, items):
    """The never-healthy check goes last in the session, so its minute of waiting overlaps
    everything else."""
    last = [item for item in items if item.name == NEVER_HEALTHY_TEST]
    for item in last:
        items.remove(item)
    items.extend(last)


@pytest.fixture(scope="session", autouse=True)
def never_healthy_run(request, tmp_path_factory):
    """The never-healthy run waits out `timeout-minutes: 1`, the smallest the settings allow.
    It starts with the first action test and runs in the background meanwhile; the test that
    checks it is moved to the end of the session. Started only when that test was collected."""
    if not any(item.name == NEVER_HEALTHY_TEST for item in request.session.items):
        yield None
        return
    from cycle_vmss.simulator.server import running_simulator

    scenario = {"instances": [{"id": "0"}, {"id": "1", "on_reimage": "never-healthy"}, {"id": "2"}],
                "timings": QUICK}
    workspace = tmp_path_factory.mktemp("never-healthy") / "workspace"
    workspace.mkdir()
    with running_simulator(scenario) as sim:
        env = action_env(workspace, sim_inputs(sim, **{"timeout-minutes": "1"}), sim=sim)
        proc = start_action(workspace, env)
        try:
            yield lambda: (collect(proc, workspace, env, timeout=150), sim)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
