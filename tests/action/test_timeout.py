"""A reimage whose instance never becomes healthy fails the run (exit 1) once `timeout-minutes`
has passed; the run was started in the background by `conftest.never_healthy_run`."""

from __future__ import annotations

import json
import re

import pytest


@pytest.mark.slow
def test_never_healthy_instance_fails_the_run_with_an_error_annotation(never_healthy_run):
    run, sim = never_healthy_run()
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["result"] == "failed"
    assert json.loads(run.outputs["failed-instances"]) == ["1"]
    assert json.loads(run.outputs["reimaged-instances"]) == ["0"]
    (error,) = [l for l in run.lines if l.startswith("::error")]
    assert error.startswith("::error title=cycle-vmss%3A instance 1::Instance 1 (vmss-demo_1) failed")
    assert re.search(r"[Ll]ast states:? provisioning succeeded, power running, health unhealthy", error)
    assert "**Cause:** Instance 1 failed" in run.summary
    assert "**Fix:**" in run.summary and "`instance-ids: 1 2`" in run.summary
    assert "1 vmss-demo_1 : crit, " in run.summary
    # Nothing new started after the failure: instance 2 was never reimaged.
    reimaged = {r["path"].split("/virtualMachines/")[1].split("/")[0] for r in sim.requests()
                if r["method"] == "POST" and r["path"].endswith("/reimage")}
    assert reimaged == {"0", "1"}
