"""Resume, canary and the latest model through `cycle-vmss` as a subprocess over HTTPS against
the simulator: what the user reads, and what the simulator's history says was done."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from .conftest import REPO, WRITE_METHODS, arm_requests, clean_env, cli_args, run_cli

pytestmark = pytest.mark.slow

CONTINUE = re.compile(r"run again with --skip-reimaged-since (\S+)")


def reimage_counts(sim) -> dict[str, int]:
    return {i: len(rec["reimages"]) for i, rec in sim.history()["instances"].items()}


def test_a_run_cancelled_halfway_is_continued_by_the_setting_it_printed(simulate):
    sim = simulate({"instances": 6, "timings": {"reimage_seconds": 2, "boot_seconds": 0.3,
                                                 "health_seconds": 0.3}})
    proc = subprocess.Popen(cli_args(sim, "--max-unavailable", "2"), cwd=REPO, env=clean_env(sim),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(reimage_counts(sim).values()) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # halfway: a reimage or two still in flight
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stdout + stderr
    (since,) = CONTINUE.findall(stdout)
    assert "not reimaged" in stdout

    second = run_cli(sim, "--max-unavailable", "2", "--skip-reimaged-since", since)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reimaged-since" in second.stdout
    assert set(reimage_counts(sim).values()) == {1}  # every instance once, in the two runs together
    assert not CONTINUE.search(second.stdout)


def test_a_model_update_then_apply_latest_model_upgrades_and_reimages_each_once(simulate):
    sim = simulate({"instances": 3, "events": [{"at_seconds": 0, "model_update": True}]})
    run = run_cli(sim, "--apply-latest-model")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "upgrading to the latest model, then reimaging" in run.stdout
    history = sim.history()
    for rec in history["instances"].values():
        assert [u["status"] for u in rec["manual_upgrades"]] == ["Succeeded"]
        assert [r["status"] for r in rec["reimages"]] == ["Succeeded"]
    assert history["max_reimages_in_flight"] == 1
    assert all(t["others_ready"] >= 2 for t in history["takeouts"] if t["was_ready"])


def test_a_dry_run_names_what_it_would_upgrade_skip_and_stop_before(simulate):
    sim = simulate({"instances": [{"id": "0", "latest_model_applied": False},
                                  {"id": "1", "os_disk_time": -60}, {"id": "2"}, {"id": "3"}]})
    run = run_cli(sim, "--dry-run", "--apply-latest-model", "--skip-reimaged-since", "1h",
                  "--stop-after", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    line = " ".join(run.stdout.split())
    assert "would reimage 1 of 3 instances (0), then pause (stop-after 1) before 3, 2" in line
    assert "first upgrade 0 to the latest model" in line
    assert "skip 1 (reimaged-since)" in line
    assert not [r for r in arm_requests(sim) if r["method"] in WRITE_METHODS]


def test_stop_after_one_then_the_printed_setting_reimages_the_rest(simulate):
    sim = simulate({"instances": 3})
    canary = run_cli(sim, "--stop-after", "1")
    assert canary.returncode == 0, canary.stdout + canary.stderr
    assert "PAUSED" in canary.stdout
    (since,) = CONTINUE.findall(canary.stdout)
    assert sum(reimage_counts(sim).values()) == 1

    rest = run_cli(sim, "--skip-reimaged-since", since)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert set(reimage_counts(sim).values()) == {1}
