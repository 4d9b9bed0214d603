"""suspend-automatic-repairs through the action's entrypoint: the set's running repairs are
suspended for the run and resumed, and with the input false a warning annotation, spelled as the
action's input, says they stay on."""

from __future__ import annotations

import json

import pytest

from .conftest import QUICK, sim_inputs

pytestmark = pytest.mark.slow


@pytest.fixture
def sim():
    from cycle_vmss.simulator.server import running_simulator

    with running_simulator({"instances": 2, "timings": QUICK,
                            "automatic_repairs": {"grace_minutes": 30}}) as sim:
        yield sim


def test_repairs_are_suspended_for_the_run_and_resumed(sim, run_action):
    run = run_action(sim_inputs(sim), sim=sim)
    assert run.code == 0, run.stdout + run.stderr
    report = json.loads((run.workspace / run.outputs["report-file"]).read_text())
    assert report["automaticRepairs"] == {"state": "Running", "suspended": True, "resumed": True}
    [(start, end)] = sim.history()["repairs"]["suspended"]
    reimages = [x for h in sim.history()["instances"].values() for x in h["reimages"]]
    assert len(reimages) == 2 and all(start <= x["start"] and x["end"] <= end for x in reimages)


def test_with_the_input_false_a_warning_annotation_says_repairs_stay_on(sim, run_action):
    run = run_action(sim_inputs(sim, **{"suspend-automatic-repairs": "false"}), sim=sim)
    assert run.code == 0, run.stdout + run.stderr
    assert any("suspend-automatic-repairs: false" in w and "replace an instance" in w
               for w in run.commands("warning"))
    assert sim.history()["repairs"]["suspended"] == []
