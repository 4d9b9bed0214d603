"""suspend-automatic-repairs through the CLI, the real SDK and HTTPS: the scale set's running
automatic repairs are suspended before the first reimage and resumed at the run's end, on
success and on SIGINT too (within 3 s); what the run did not suspend is left alone."""

from __future__ import annotations

import json

from .conftest import arm_requests, interrupt_on, run_cli

ACTION = "Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"
REPAIRS = {"grace_minutes": 30, "action": "Replace"}


def orchestration_posts(sim) -> list[dict]:
    return [r for r in arm_requests(sim)
            if r["method"] == "POST" and r["path"].endswith("/setOrchestrationServiceState")]


def reimages(sim) -> list[dict]:
    return [x for h in sim.history()["instances"].values() for x in h["reimages"]]


def test_repairs_are_suspended_for_the_whole_rollout_and_resumed(simulate, tmp_path):
    sim = simulate({"instances": 3, "automatic_repairs": REPAIRS})
    report_file = tmp_path / "run.json"
    done = run_cli(sim, "--report-file", str(report_file))
    assert done.returncode == 0, done.stderr
    [(start, end)] = sim.history()["repairs"]["suspended"]
    assert len(reimages(sim)) == 3
    assert all(start <= x["start"] and x["end"] <= end for x in reimages(sim))
    assert [r["status"] for r in orchestration_posts(sim)] == [202, 202]  # Suspend, Resume
    assert sim.backend.get_scale_set(sim.info["resource_group"],
                                     sim.info["scale_set_name"]).repairs == "Running"
    report = json.loads(report_file.read_text())
    assert report["automaticRepairs"] == {"state": "Running", "suspended": True, "resumed": True}


def test_sigint_resumes_the_repairs_it_suspended_and_exits_130_within_3_seconds(simulate, tmp_path):
    sim = simulate({"instances": 3, "automatic_repairs": REPAIRS,
                    "timings": {"reimage_seconds": 20, "boot_seconds": 1, "health_seconds": 1}})
    report_file = tmp_path / "run.json"
    # Interrupted while a reimage runs: the repairs were suspended before it.
    proc, started, _, err, elapsed = interrupt_on(sim, "reimage started", "--report-file",
                                                  str(report_file))
    assert started, "the run never started a reimage"
    assert proc.returncode == 130, err
    assert elapsed < 3, f"took {elapsed:.1f} s"
    [(start, end)] = sim.history()["repairs"]["suspended"]
    assert end is not None  # resumed
    assert reimages(sim) and all(start <= x["start"] <= end for x in reimages(sim))
    assert [r["status"] for r in orchestration_posts(sim)] == [202, 202]
    report = json.loads(report_file.read_text())
    assert report["result"] == "cancelled"
    assert report["automaticRepairs"]["resumed"] is True


def test_repairs_already_suspended_are_left_suspended(simulate):
    sim = simulate({"instances": 2, "automatic_repairs": REPAIRS})
    sim.backend.set_orchestration_service_state(sim.info["resource_group"],
                                                sim.info["scale_set_name"], "AutomaticRepairs",
                                                "Suspend")
    done = run_cli(sim)
    assert done.returncode == 0, done.stderr
    assert orchestration_posts(sim) == []
    [(_, end)] = sim.history()["repairs"]["suspended"]
    assert end is None


def test_without_the_permission_the_run_is_refused_with_one_line_and_no_write(simulate):
    sim = simulate({"instances": 2, "automatic_repairs": REPAIRS, "denied_actions": [ACTION]})
    done = run_cli(sim)
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if ACTION in line]
    assert len(lines) == 1 and "--suspend-automatic-repairs false" in lines[0]
    assert [r for r in arm_requests(sim) if r["method"] != "GET" and r["status"] < 400] == []
    assert reimages(sim) == []


def test_with_the_setting_false_a_warning_says_repairs_stay_on(simulate):
    sim = simulate({"instances": 2, "automatic_repairs": REPAIRS})
    done = run_cli(sim, "--suspend-automatic-repairs", "false")
    assert done.returncode == 0, done.stderr
    assert orchestration_posts(sim) == []
    assert "may replace an instance during the run" in done.stdout + done.stderr
