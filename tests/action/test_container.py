"""The action's image, built without a Docker engine by replaying the Dockerfile's own
instructions (`image_replay`), runs the entrypoint as PID 1 against the simulator.

It fails when the Dockerfile would not build (a RUN that fails, a COPY of a missing file, an
instruction the replay cannot honour) or when the entrypoint cannot start in the image. The
base is Debian bookworm's python3 in place of python.org's (CONTRIBUTING.md says how close).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from .conftest import QUICK, parse_outputs, sim_inputs
from .image_replay import BuildError, container_pid1, in_container, merged_view, replay

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="the daemonless image replay needs root (chroot, overlayfs, namespaces)"),
]


@pytest.fixture(scope="module")
def image():
    try:
        return replay(ROOT / "Dockerfile")
    except BuildError as err:
        pytest.fail(f"the Dockerfile would not build: {err}")


class ContainerRun:
    def __init__(self, code, stdout, stderr, outputs, summary, workspace, seconds_after_signal=None):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.outputs, self.summary, self.workspace = outputs, summary, workspace
        self.seconds_after_signal = seconds_after_signal


def run_container(image, root: Path, sim, inputs: dict[str, str], *, signum=None) -> ContainerRun:
    """As the runner does: workspace and file commands under /github, INPUT_* with hyphens, the
    step's env (here the simulator's endpoints and CA), workdir /github/workspace."""
    github = root / "github"
    for sub in ("workspace/.simulator", "file_commands", "home", "workflow"):
        (github / sub).mkdir(parents=True, exist_ok=True)
    (github / "file_commands" / "set_output").write_text("")
    (github / "file_commands" / "step_summary").write_text("")
    shutil.copyfile(sim.info["ca_bundle"], github / "workspace" / ".simulator" / "ca.pem")
    env = {**image.env, "HOME": "/github/home", "GITHUB_ACTIONS": "true", "CI": "true",
           "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_OUTPUT": "/github/file_commands/set_output",
           "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
           "AZURE_AUTHORITY_HOST": sim.info["authority_host"],
           "REQUESTS_CA_BUNDLE": "/github/workspace/.simulator/ca.pem",
           "ACTIONS_ID_TOKEN_REQUEST_URL": sim.info["github_oidc_url"],
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": sim.info["github_oidc_token"]}
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    import subprocess

    proc = in_container(root, image.entrypoint, env, "/github/workspace",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "reimage started" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    after = None
    try:
        if signum is not None:
            assert started.wait(90), "".join(lines) + proc.stderr.read()
            pid1 = container_pid1(proc)
            sent = time.monotonic()
            os.kill(pid1, signum)
            proc.wait(timeout=10)
            after = time.monotonic() - sent
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    return ContainerRun(proc.returncode, "".join(lines), proc.stderr.read(),
                        parse_outputs((github / "file_commands" / "set_output").read_text()),
                        (github / "file_commands" / "step_summary").read_text(), github / "workspace", after)


def test_image_runs_the_action_against_the_simulator(image, simulator):
    sim = simulator({"instances": 3, "timings": QUICK})
    with merged_view(image) as root:
        assert not (root / "app" / "cycle_vmss" / "simulator").exists(), ".dockerignore not honoured"
        assert (root / "usr" / "local" / "bin" / "python").exists()
        run = run_container(image, root, sim, sim_inputs(sim, **{"max-unavailable": "2"}))
        assert run.code == 0, run.stdout + run.stderr
        assert run.outputs["result"] == "succeeded"
        assert sorted(json.loads(run.outputs["reimaged-instances"])) == ["0", "1", "2"]
        assert run.outputs["report-file"] == "cycle-vmss-report.json"
        assert json.loads((run.workspace / "cycle-vmss-report.json").read_text())["result"] == "succeeded"
        assert "```mermaid\ngantt\n" in run.summary
        assert "::group::Results" in run.stdout.splitlines()
    assert any(r["path"].startswith("/_github/oidc/token") for r in sim.requests())


def test_entrypoint_as_pid1_stops_on_sigterm_within_5_seconds(image, simulator):
    """Python as PID 1 ignores SIGTERM unless it handles it: the kernel drops signals to a
    namespace's init that has no handler, exactly as in a container."""
    sim = simulator({"instances": 3, "timings": dict(QUICK, reimage_seconds=30)})
    with merged_view(image) as root:
        run = run_container(image, root, sim, sim_inputs(sim), signum=signal.SIGTERM)
        assert run.code == 130, run.stdout + run.stderr
        assert run.seconds_after_signal < 3
        assert run.outputs["result"] == "cancelled"
        assert "cancelled" in run.summary


def test_dependency_size_in_the_docs_is_what_the_image_installs(image):
    installed_mb = (image.site_packages_bytes - image.base_site_packages_bytes) / 1e6
    docs = (ROOT / "docs" / "github-action.md").read_text()
    recorded = re.search(r"dependencies installed in the image:\s+about\s+(\d+)\s+MB", docs, re.I)
    assert recorded, "docs/github-action.md does not record the installed dependency size"
    assert abs(installed_mb - int(recorded.group(1))) <= max(5, 0.2 * installed_mb), installed_mb


@pytest.mark.parametrize("change,expected", [
    (("COPY entrypoint.py ./", "COPY entrypoint-missing.py ./"), "not found"),
    (("RUN python -m compileall", "RUN exit 3 && python -m compileall"), "exited 3"),
    (("WORKDIR /app", "WORKDIR /app\nHEALTHCHECK CMD true"), "does not know"),
    (('ENTRYPOINT ["python", "/app/entrypoint.py"]', "ENTRYPOINT python /app/entrypoint.py"), "exec form"),
], ids=["missing-copy-source", "failing-run", "unknown-instruction", "shell-form-entrypoint"])
def test_replay_fails_where_docker_build_would(image, tmp_path, change, expected):
    text = (ROOT / "Dockerfile").read_text()
    assert change[0] in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(change[0], change[1]))
    with pytest.raises(BuildError, match=expected):
        replay(broken, context=ROOT)


def test_an_entrypoint_that_cannot_start_is_caught(image, simulator):
    sim = simulator({"instances": 1})
    broken = type(image)(layers=image.layers, env=image.env, workdir=image.workdir,
                         entrypoint=["python", "/app/no-such-entrypoint.py"])
    with merged_view(broken) as root:
        run = run_container(broken, root, sim, sim_inputs(sim))
    assert run.code != 0 and run.outputs == {}
    assert sim.requests() == []
