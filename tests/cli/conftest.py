"""The CLI as a user runs it: a subprocess talking HTTPS to a simulator in this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from cycle_vmss.simulator.server import running_simulator

REPO = Path(__file__).resolve().parents[2]
# A reimage takes about a second of wall time; the CLI polls every second.
TIMINGS = {"reimage_seconds": 0.4, "boot_seconds": 0.2, "health_seconds": 0.2,
           "create_seconds": 0.4, "delete_seconds": 0.2}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def clean_env(sim=None, **extra: str) -> dict[str, str]:
    """The test's environment without Azure or cycle-vmss settings, plus the simulator's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "CYCLE_VMSS_", "ARM_", "MSI_", "IDENTITY_"))
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PYTHONUNBUFFERED"] = "1"
    if sim is not None:
        env.update(sim.env())
    env.update(extra)
    return env


def cli_args(sim, *args: str) -> list[str]:
    """`python -m cycle_vmss -g <rg> -n <set> --poll-interval-seconds 1 ...`"""
    base = [sys.executable, "-m", "cycle_vmss", "-g", sim.info["resource_group"],
            "-n", sim.info["scale_set_name"], "--poll-interval-seconds", "1"]
    return base + list(args)


def run_cli(sim, *args: str, env: dict | None = None, timeout: float = 60,
            bare: bool = False) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cycle_vmss", *args] if bare else cli_args(sim, *args)
    return subprocess.run(argv, cwd=REPO, env=env if env is not None else clean_env(sim),
                          capture_output=True, text=True, timeout=timeout, check=False)


def interrupt(proc: subprocess.Popen) -> tuple[str, str, float]:
    """SIGINT to a running CLI: its stdout, its stderr and the seconds it took to exit."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return out, err, time.monotonic() - sent


def interrupt_on(sim, needle: str, *args: str, settle: float = 0.0
                 ) -> tuple[subprocess.Popen, str, str, str, float]:
    """Run the CLI with `args`, wait for the first stdout line holding `needle` (a run that never
    prints one is killed after 30 s, not left hanging), `settle` seconds more, then SIGINT it:
    the process, that line ("" if none came), its later stdout, its stderr and the seconds it
    took to exit."""
    proc = subprocess.Popen(cli_args(sim, *args), cwd=REPO, env=clean_env(sim),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        line = next((line for line in proc.stdout if needle in line), "")
        time.sleep(settle)
        out, err, elapsed = interrupt(proc)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    return proc, line, out, err, elapsed


def instance_id(sim, scenario_id: str) -> str:
    """The id the product uses for a scenario's instance: the instanceId on a Uniform set, the
    VM name `<set>_<id>` on a Flexible one."""
    if sim.backend.scenario.orchestration_mode == "Flexible":
        return f"{sim.info['scale_set_name']}_{scenario_id}"
    return scenario_id


def arm_requests(sim) -> list[dict]:
    return [r for r in sim.requests() if r["path"].startswith("/subscriptions/")]


def reimage_posts(sim) -> list[str]:
    """Instance ids of accepted per-instance reimage calls, in order."""
    out = []
    for r in arm_requests(sim):
        parts = r["path"].rstrip("/").split("/")
        if r["method"] == "POST" and r["status"] == 202 and parts[-1] in ("reimage", "reimageall") \
                and parts[-3].lower() == "virtualmachines":
            out.append(parts[-2])
    return out


def assert_no_forbidden_calls(sim) -> None:
    """No whole-set reimage call and no instance reimaged twice, by the simulator's own record."""
    history = sim.history()
    assert history["whole_set_reimages"] == 0
    for path in (r["path"] for r in arm_requests(sim) if r["method"] == "POST"):
        assert not path.rstrip("/").lower().endswith(("/virtualmachinescalesets/vmss-demo/reimage",
                                                      "/virtualmachinescalesets/vmss-demo/reimageall"))
    twice = {i: len(h["reimages"]) for i, h in history["instances"].items() if len(h["reimages"]) > 1}
    assert twice == {}
    posts = reimage_posts(sim)
    assert len(posts) == len(set(posts))


@pytest.fixture
def simulate():
    """`simulate({...})` starts a simulator for this test (short timings unless given)."""
    with ExitStack() as stack:
        def start(scenario: dict | None = None):
            return stack.enter_context(running_simulator({"timings": TIMINGS, **(scenario or {})}))
        yield start
