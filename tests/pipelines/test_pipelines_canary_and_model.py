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
