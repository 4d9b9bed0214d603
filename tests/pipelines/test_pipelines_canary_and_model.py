"""The steps template's script, as the agent runs it, for a canary stage and the rest, and for a
model update rolled out with applyLatestModel: output variables, summary, and what the
simulator's history says was done."""

from __future__ import annotations

import json

import pytest

from azp_agent import FAST_TIMINGS

pytestmark = pytest.mark.slow

OLD_MODEL = {"instances": 3, "timings": FAST_TIMINGS,
             "events": [{"at_seconds": 0, "model_update": True}]}


@pytest.mark.parametrize("agent", [OLD_MODEL], indirect=True)
def test_stop_after_one_then_the_rest_from_started_at(agent):
    canary = agent.run({"stopAfter": "1", "pollIntervalSeconds": 1})
    assert canary.returncode == 0, canary.stdout + canary.stderr
    out = canary.outputs()
    assert out["result"] == "paused" and len(json.loads(out["remainingInstances"])) == 2
    assert f"skipReimagedSince: {out['startedAt']}" in canary.stdout  # the log says how to go on
    assert "**Continue:**" in canary.summary_path().read_text()
    assert not canary.commands("task.complete")  # paused is not a failure

    rest = agent.run({"skipReimagedSince": out["startedAt"], "pollIntervalSeconds": 1})
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert rest.outputs()["result"] == "succeeded"
    assert sorted(json.loads(rest.outputs()["reimagedInstances"])) == \
        sorted(json.loads(out["remainingInstances"]))
    history = agent.sim.history()["instances"]
    assert [len(rec["reimages"]) for rec in history.values()] == [1, 1, 1]


@pytest.mark.parametrize("agent", [OLD_MODEL], indirect=True)
def test_apply_latest_model_brings_every_instance_to_it_and_reimages_it_once(agent):
    run = agent.run({"applyLatestModel": True, "pollIntervalSeconds": 1})
    assert run.returncode == 0, run.stdout + run.stderr
    history = agent.sim.history()
    for rec in history["instances"].values():
        assert len(rec["manual_upgrades"]) == 1 and len(rec["reimages"]) == 1
    assert history["max_reimages_in_flight"] == 1
    assert all(t["others_ready"] >= 2 for t in history["takeouts"] if t["was_ready"])


@pytest.mark.parametrize("agent", [{"instances": 4, "timings": {**FAST_TIMINGS, "reimage_seconds": 2}}],
                         indirect=True)
def test_a_cancelled_job_is_continued_from_its_output_variables(agent):
    import os
    import signal
    import time

    from azp_agent import StepRun

    process, env, script = agent.start({"maxUnavailable": "2", "pollIntervalSeconds": 1})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(
            len(r["reimages"]) for r in agent.sim.history()["instances"].values()) < 3:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)  # the agent cancelling the job
    stdout, stderr = process.communicate(timeout=30)
    first = StepRun(process.returncode, stdout, stderr, env, script)
    assert first.returncode == 130, stdout + stderr
    out = first.outputs()
    assert out["result"] == "cancelled" and json.loads(out["remainingInstances"])
    assert f"skipReimagedSince: {out['startedAt']}" in stdout

    rest = agent.run({"maxUnavailable": "2", "skipReimagedSince": out["startedAt"],
                      "pollIntervalSeconds": 1})
    assert rest.returncode == 0, rest.stdout + rest.stderr
    history = agent.sim.history()["instances"]
    assert [len(rec["reimages"]) for rec in history.values()] == [1, 1, 1, 1]


DRY = {"timings": FAST_TIMINGS, "instances": [{"id": "0", "latest_model_applied": False},
                                              {"id": "1", "os_disk_time": -60}, {"id": "2"}, {"id": "3"}]}


@pytest.mark.parametrize("agent", [DRY], indirect=True)
def test_a_dry_run_names_what_it_would_upgrade_skip_and_stop_before(agent):
    run = agent.run({"dryRun": True, "applyLatestModel": True, "skipReimagedSince": "1h",
                     "stopAfter": "1"})
    assert run.returncode == 0 and run.outputs()["result"] == "dry-run", run.stdout + run.stderr
    summary = run.summary_path().read_text()
    for said in ("then pause (stop-after 1) before", "first upgrade 0 to the latest model",
                 "skip 1 (reimaged-since)"):
        assert said in summary
    assert not [r for r in agent.sim.requests() if r["method"] != "GET"
                and r["path"].startswith("/subscriptions/")]
