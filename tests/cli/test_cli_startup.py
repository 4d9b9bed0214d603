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

from .conftest import REPO, clean_env

# Sign-in and Resource Manager on a port of this machine where nothing answers: should the run
# get that far, it fails there, and never leaves the machine.
NOWHERE = "https://127.0.0.1:1"
SIGN_IN = {"AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111", "AZURE_CLIENT_SECRET": "x",
           "AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222", "AZURE_AUTHORITY_HOST": NOWHERE}


def start(argv: list[str], env: dict[str, str], cwd) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_cancel_while_the_cli_starts_ends_with_exit_130_and_a_report(tmp_path, signum):
    report = tmp_path / "report.json"
    proc = start([sys.executable, "-m", "cycle_vmss", "-g", "rg", "-n", "vmss", "--subscription-id",
                  "00000000-0000-0000-0000-000000000001", "--arm-endpoint", NOWHERE,
                  "--report-file", str(report)], clean_env(**SIGN_IN), tmp_path)
    time.sleep(0.3)  # the interpreter is up; the Azure SDK is still loading
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert json.loads(report.read_text())["result"] == "cancelled"


def test_a_cancel_while_the_action_starts_ends_with_exit_130_and_outputs(tmp_path):
    outputs = tmp_path / "output"
    outputs.touch()
    env = clean_env(**SIGN_IN, GITHUB_OUTPUT=str(outputs), GITHUB_WORKSPACE=str(tmp_path),
                    **{"INPUT_RESOURCE-GROUP": "rg", "INPUT_SCALE-SET-NAME": "vmss",
                       "INPUT_SUBSCRIPTION-ID": "00000000-0000-0000-0000-000000000001",
                       "INPUT_ARM-ENDPOINT": NOWHERE})
    proc = start([sys.executable, str(REPO / "entrypoint.py")], env, tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # what the runner sends a container's PID 1 on cancel
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "result<<" in outputs.read_text() and "cancelled" in outputs.read_text()
