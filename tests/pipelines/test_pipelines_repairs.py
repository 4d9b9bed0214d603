"""suspendAutomaticRepairs through the steps template's script, as the agent runs it."""

from __future__ import annotations

import pytest

from azp_agent import FAST_TIMINGS

pytestmark = pytest.mark.slow

REPAIRS = {"instances": 2, "timings": FAST_TIMINGS, "automatic_repairs": {"grace_minutes": 30}}


@pytest.mark.parametrize("agent", [REPAIRS], indirect=True)
def test_repairs_are_suspended_for_the_run_and_resumed(agent):
    run = agent.run({"pollIntervalSeconds": 1})
    assert run.returncode == 0, run.stdout + run.stderr
    [(start, end)] = agent.sim.history()["repairs"]["suspended"]
    reimages = [x for h in agent.sim.history()["instances"].values() for x in h["reimages"]]
    assert len(reimages) == 2 and all(start <= x["start"] and x["end"] <= end for x in reimages)


@pytest.mark.parametrize("agent", [REPAIRS], indirect=True)
def test_with_the_parameter_false_a_warning_spelled_as_the_parameter_says_they_stay_on(agent):
    run = agent.run({"suspendAutomaticRepairs": False, "pollIntervalSeconds": 1})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "suspendAutomaticRepairs: false" in run.stdout
    assert agent.sim.history()["repairs"]["suspended"] == []
