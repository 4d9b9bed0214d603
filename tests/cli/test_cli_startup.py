"""A cancel that arrives while the tool is still starting (loading the Azure SDK takes about a
second) ends like any other cancel: exit 130 and a report that says `cancelled`, not a process
killed by the signal with nothing written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from .conftest import REPO, clean_env, cli_args

def start(argv: list[str], env: dict[str, str], cwd) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_cancel_while_the_cli_starts_ends_with_exit_130_and_a_report(tmp_path, signum, simulate):
    # The simulator signs the run in: should it get that far, it never leaves this machine.
    sim = simulate({"instances": 2})
    report = tmp_path / "report.json"
    proc = start(cli_args(sim, "--report-file", str(report)), clean_env(sim), tmp_path)
    time.sleep(0.3)  # the interpreter is up; the Azure SDK is still loading
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert json.loads(report.read_text())["result"] == "cancelled"


def test_a_cancel_while_the_action_starts_ends_with_exit_130_and_outputs(tmp_path, simulate):
    sim = simulate({"instances": 2})
    outputs = tmp_path / "output"
    outputs.touch()
    env = clean_env(sim, GITHUB_OUTPUT=str(outputs), GITHUB_WORKSPACE=str(tmp_path),
                    **{"INPUT_RESOURCE-GROUP": sim.info["resource_group"],
                       "INPUT_SCALE-SET-NAME": sim.info["scale_set_name"]})
    proc = start([sys.executable, str(REPO / "entrypoint.py")], env, tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # what the runner sends a container's PID 1 on cancel
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "result<<" in outputs.read_text() and "cancelled" in outputs.read_text()
