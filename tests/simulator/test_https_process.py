"""`python -m cycle_vmss.simulator` as a process: one JSON line, real HTTPS, clean exit on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEC_KEYS = {"arm_endpoint", "authority_host", "ca_bundle", "tenant_id", "client_id", "client_secret",
             "subscription_id", "resource_group", "scale_set_name", "github_oidc_url", "github_oidc_token"}


def _start(*args: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen([sys.executable, "-m", "cycle_vmss.simulator", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line, process.stderr.read()
    return process, json.loads(line)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_process_prints_one_json_line_serves_https_and_exits_0_on_signal(signum):
    process, info = _start("--scenario", str(EXAMPLES / "scenario-faults.json"), "--port", "0")
    try:
        assert SPEC_KEYS <= set(info)
        assert info["resource_group"] == "rg-faults" and info["scale_set_name"] == "vmss-faults"
        assert info["arm_endpoint"].startswith("https://127.0.0.1:")
        assert Path(info["ca_bundle"]).is_file()
        answer = requests.get(info["arm_endpoint"] + "_simulator/requests", verify=info["ca_bundle"],
                              timeout=10)
        assert answer.status_code == 200 and answer.json() == []
        started = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
        assert process.stdout.read() == ""  # exactly one line
        assert not Path(info["ca_bundle"]).exists()  # the throwaway CA is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_process_refuses_a_bad_scenario_with_one_line_and_exit_2(tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text('{"instances": "many"}')

    done = subprocess.run([sys.executable, "-m", "cycle_vmss.simulator", "--scenario", str(scenario)],
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "instances" in done.stderr
