"""The action's entrypoint, as the runner starts it, for a canary and the rest, and for a model
update rolled out with apply-latest-model: outputs, summary, and the simulator's history."""

from __future__ import annotations

import json

import pytest

from .conftest import QUICK, sim_inputs

pytestmark = pytest.mark.slow


@pytest.fixture
def sim():
    from cycle_vmss.simulator.server import running_simulator

    with running_simulator({"instances": 4, "timings": QUICK,
                            "events": [{"at_seconds": 0, "model_update": True}]}) as sim:
        yield sim


def test_stop_after_one_then_the_rest_from_started_at(sim, run_action):
    canary = run_action(sim_inputs(sim, **{"stop-after": "1"}), sim=sim)
    assert canary.code == 0, canary.stdout + canary.stderr
    out = canary.outputs
    assert out["result"] == "paused" and len(json.loads(out["reimaged-instances"])) == 1
    remaining = json.loads(out["remaining-instances"])
    assert len(remaining) == 3
    assert "**Continue:** 3 instances not reimaged" in canary.summary
    assert f"skip-reimaged-since: {out['started-at']}" in canary.summary
    # without apply-latest-model, a warning annotation names the instances left on the old model
    assert any("not on the scale set's latest model" in w for w in canary.commands("warning"))

    rest = run_action(sim_inputs(sim, **{"skip-reimaged-since": out["started-at"]}), sim=sim)
    assert rest.code == 0, rest.stdout + rest.stderr
    assert rest.outputs["result"] == "succeeded"
    assert sorted(json.loads(rest.outputs["reimaged-instances"])) == sorted(remaining)
    assert json.loads(rest.outputs["remaining-instances"]) == []
    history = sim.history()["instances"]
    assert [len(rec["reimages"]) for rec in history.values()] == [1, 1, 1, 1]


def test_apply_latest_model_brings_every_instance_to_it_and_reimages_it_once(sim, run_action):
    run = run_action(sim_inputs(sim, **{"apply-latest-model": "true", "max-unavailable": "2"}),
                     sim=sim)
    assert run.code == 0, run.stdout + run.stderr
    report = json.loads((run.workspace / run.outputs["report-file"]).read_text())
    assert all(row["modelUpgraded"] for row in report["instances"])
    history = sim.history()
    for rec in history["instances"].values():
        assert len(rec["manual_upgrades"]) == 1 and len(rec["reimages"]) == 1
        assert rec["manual_upgrades"][0]["end"] <= rec["reimages"][0]["start"]
    assert all(t["others_ready"] >= 2 for t in history["takeouts"] if t["was_ready"])


def test_a_cancelled_run_is_continued_from_its_outputs(workspace, run_action):
    import signal
    import time

    from cycle_vmss.simulator.server import running_simulator

    from .conftest import action_env, collect, start_action

    with running_simulator({"instances": 4, "timings": {**QUICK, "reimage_seconds": 2}}) as sim:
        env = action_env(workspace, sim_inputs(sim, **{"max-unavailable": "2"}), sim=sim)
        proc = start_action(workspace, env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(
                len(r["reimages"]) for r in sim.history()["instances"].values()) < 3:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # the runner cancelling the job
        first = collect(proc, workspace, env)
        assert first.code == 130, first.stdout + first.stderr
        assert first.outputs["result"] == "cancelled"
        assert json.loads(first.outputs["remaining-instances"])
        assert f"skip-reimaged-since: {first.outputs['started-at']}" in first.summary

        rest = run_action(sim_inputs(sim, **{"skip-reimaged-since": first.outputs["started-at"]}),
                          sim=sim)
        assert rest.code == 0, rest.stdout + rest.stderr
        history = sim.history()["instances"]
        assert [len(rec["reimages"]) for rec in history.values()] == [1, 1, 1, 1]


def test_a_dry_run_names_what_it_would_upgrade_skip_and_stop_before(run_action):
    from cycle_vmss.simulator.server import running_simulator

    with running_simulator({"timings": QUICK, "instances": [
            {"id": "0", "latest_model_applied": False}, {"id": "1", "os_disk_time": -60},
            {"id": "2"}, {"id": "3"}]}) as sim:
        run = run_action(sim_inputs(sim, **{"dry-run": "true", "apply-latest-model": "true",
                                            "skip-reimaged-since": "1h", "stop-after": "1"}),
                         sim=sim)
        assert run.code == 0 and run.outputs["result"] == "dry-run", run.stdout + run.stderr
        assert "then pause (stop-after 1) before" in run.summary
        assert "first upgrade 0 to the latest model" in run.summary
        assert "skip 1 (reimaged-since)" in run.summary
        assert not [r for r in sim.requests() if r["method"] != "GET"
                    and r["path"].startswith("/subscriptions/")]
