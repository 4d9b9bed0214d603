"""The action's metadata, image recipe, lock and workflows: validated by the tools GitHub's own
ecosystem uses, and compared with the settings table instead of a hand-written copy."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from cycle_vmss.report import OUTPUTS
from cycle_vmss.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
AUTH_INPUTS = ("client-id", "tenant-id", "client-secret", "creds", "audience", "environment")
REQUIRED = {"resource_group", "scale_set_name"}
SIMULATOR_ONLY = {"trustme", "cryptography"}  # `cycle-vmss demo`'s CA and token signing


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_action_yml_validates_against_githubs_schema():
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_validates_against_githubs_schema(workflow):
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing():
    done = _tool("zizmor", "--offline", "--no-progress", ".github/workflows", "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_finds_nothing():
    done = _tool("hadolint", "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_inputs_and_defaults_are_the_settings_table():
    inputs = _action()["inputs"]
    assert list(inputs) == [s.action for s in SETTINGS] + list(AUTH_INPUTS)
    for spec in SETTINGS:
        meta = inputs[spec.action]
        assert meta["description"].strip(), spec.action
        assert meta.get("required", False) is (spec.field in REQUIRED), spec.action
        if spec.default is None:
            assert "default" not in meta, f"{spec.action} has a default the engine does not"
        else:
            assert str(meta.get("default")) == spec.default, spec.action


def test_outputs_are_the_ones_the_entrypoint_writes():
    assert list(_action()["outputs"]) == list(OUTPUTS)
    assert _action()["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_lock_pins_every_dependency_with_hashes_and_matches_the_in_file():
    lock = (ROOT / "requirements" / "action.txt").read_text()
    pins = re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", lock, re.M)
    assert pins, "no pins in requirements/action.txt"
    blocks = re.split(r"^(?=[a-z0-9])", lock, flags=re.M)
    for block in blocks:
        if "==" in block.split("\n")[0]:
            assert "--hash=sha256:" in block, block.split("\n")[0]
    pinned = {name.lower().replace("_", "-") for name, _ in pins}
    direct = [line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
              for line in (ROOT / "requirements" / "action.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert set(direct) <= pinned
    # actions-toolkit's GitHub API client: 8 MB the action never imports (the image test runs without it)
    assert not pinned & {"pygithub", "pynacl"}
    # The image runs what the package declares: pyproject's dependencies plus the action extra,
    # less the simulator's own (the image leaves the simulator out; see .dockerignore).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["action"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in declared}
    assert names - SIMULATOR_ONLY == set(direct)


def test_dockerfile_installs_the_lock_before_copying_code():
    lines = [l.strip() for l in (ROOT / "Dockerfile").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    copy_lock = next(i for i, l in enumerate(lines) if l.startswith("COPY requirements/action.txt"))
    install = next(i for i, l in enumerate(lines) if l.startswith("RUN pip install"))
    assert "--require-hashes" in lines[install]
    copy_code = next(i for i, l in enumerate(lines) if l.startswith("COPY cycle_vmss"))
    assert copy_lock < install < copy_code
    assert re.match(r'ENTRYPOINT \["python", "/app/entrypoint.py"\]', lines[-1])


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_starts_from_no_permissions_pins_actions_and_times_out(workflow):
    doc = yaml.safe_load(workflow.read_text())
    assert doc["permissions"] == {}
    for name, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name} has no timeout-minutes"
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{name}: {uses} not pinned by SHA"


def test_self_test_runs_the_action_itself_and_has_a_job_that_must_fail():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "self-test.yml").read_text())
    local = [s for job in doc["jobs"].values() for s in job["steps"] if s.get("uses") == "./"]
    assert len(local) >= 2
    assert any(s.get("continue-on-error") for s in local)


def test_release_publishes_by_trusted_publishing_and_builds_the_image_for_both_platforms():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    jobs = doc["jobs"]
    with_oidc = [name for name, job in jobs.items() if job["permissions"].get("id-token") == "write"]
    assert with_oidc == ["pypi"]
    publish = next(s for s in jobs["pypi"]["steps"] if s.get("uses", "").startswith("pypa/gh-action-pypi-publish@"))
    assert not publish.get("with"), "trusted publishing needs no token or password"
    assert {i["platform"] for i in jobs["image"]["strategy"]["matrix"]["include"]} == {"linux/amd64", "linux/arm64"}
    push = next(s for s in jobs["image"]["steps"] if s.get("id") == "push")
    assert "push-by-digest=true" in push["with"]["outputs"]
    assert "scripts/release.py release" in next(s["run"] for s in jobs["tag"]["steps"] if "run" in s)


def test_ci_builds_and_checks_the_dists():
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["package"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "python -m build" in script and "twine check --strict" in script
