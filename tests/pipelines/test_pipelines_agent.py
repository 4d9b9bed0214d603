"""The template's AzureCLI@2 script, run with bash as the agent runs it, against the simulator."""

from __future__ import annotations

import getpass
import json
import os
import signal
import time
from pathlib import Path

import pytest

import azp_expander
from azp_agent import CONSUMER, FAST, FAST_TIMINGS, SYSTEM_ACCESS_TOKEN, StepRun

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def arm_writes(sim) -> list[dict]:
    return [r for r in sim.requests()
            if r["method"] in WRITE_METHODS and r["path"].startswith("/subscriptions/")]


def assert_no_secret_printed(run):
    secrets = [run.env[name] for name in ("servicePrincipalKey", "idToken", "SYSTEM_ACCESSTOKEN",
                                          "AZURE_CLIENT_SECRET") if run.env.get(name)]
    assert secrets
    for line in run.stdout.splitlines() + run.stderr.splitlines():
        if line.startswith("##vso[task.setsecret]"):
            continue  # the agent consumes this line; it never reaches the log
        for secret in secrets:
            assert secret not in line, line


def assert_groups_balanced(run):
    depth = 0
    for line in run.lines:
        if line.startswith("##[group]"):
            assert depth == 0, "groups do not nest in Azure Pipelines"
            depth += 1
        elif line == "##[endgroup]":
            assert depth == 1
            depth -= 1
    assert depth == 0


def instance_id(sim, scenario_id: str) -> str:
    """The id the tool reports: the instanceId (Uniform) or the VM name `<set>_<id>` (Flexible)."""
    if sim.backend.scenario.orchestration_mode == "Flexible":
        return f"{sim.info['scale_set_name']}_{scenario_id}"
    return scenario_id


def in_mode(scenario: dict, mode: str) -> dict:
    return {**scenario, "orchestration_mode": mode}


BOTH_MODES = dict(ids=["Uniform", "Flexible"], indirect=True)
# Protected from the rollout: a protection policy (Uniform), a resource lock on the VM (Flexible).
GUARDED = {"Uniform": {"protect_from_scale_set_actions": True}, "Flexible": {"locked": True}}
ROLLOUT = [{"timings": FAST_TIMINGS, "orchestration_mode": mode,
            "instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}, {"id": "3", **GUARDED[mode]}]}
           for mode in ("Uniform", "Flexible")]


@pytest.mark.slow
@pytest.mark.parametrize("agent", ROLLOUT, **BOTH_MODES)
def test_a_rollout_sets_outputs_progress_and_a_summary(agent):
    report = Path(agent.dirs["BUILD_ARTIFACTSTAGINGDIRECTORY"]) / "run.json"
    ids = [instance_id(agent.sim, i) for i in "0123"]
    run = agent.run({"maxUnavailable": "2", "maxSurge": "1", "healthSource": "extension",
                     "pollIntervalSeconds": 1,
                     "reportFile": "$(Build.ArtifactStagingDirectory)/run.json"})
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = run.outputs()
    assert sorted(outputs) == ["durationSeconds", "failedInstances", "reimagedInstances",
                               "remainingInstances", "reportFile", "result", "skippedInstances",
                               "startedAt"]
    assert outputs["reportFile"] == str(report) and json.loads(report.read_text())["result"] == "succeeded"
    assert (outputs["result"], outputs["failedInstances"], outputs["skippedInstances"]) == \
        ("succeeded", "[]", json.dumps([ids[3]]))
    assert sorted(json.loads(outputs["reimagedInstances"])) == ids[:3]
    assert any(ids[3] in w for w in run.issues("warning"))  # the skip is a warning
    assert 0 <= int(outputs["durationSeconds"]) < 60
    assert run.commands("task.setprogress")[-1].startswith("##vso[task.setprogress value=100;]")
    assert not run.commands("task.complete") and not run.issues("error")
    assert_groups_balanced(run)
    assert any(line.startswith("##[group]Rolling") for line in run.lines)
    summary = run.summary_path()
    assert summary.parent == Path(run.env["AGENT_TEMPDIRECTORY"]) and summary.is_file()
    text = summary.read_text()
    assert "### cycle-vmss: succeeded" in text and text.count("| reimaged |") == 3
    # The macro in the parameter was expanded by the agent, not by a shell.
    written = json.loads(report.read_text())
    assert written["result"] == "succeeded"
    # surge and restore: one more instance while it ran, deleted after
    assert written["capacity"] == {"before": 4, "during": 5, "after": 4}
    assert_no_secret_printed(run)
    reimages = [r for r in agent.sim.requests() if r["method"] == "POST"
                and r["path"].endswith("/reimage") and r["status"] == 202]
    assert len(reimages) == 3


def test_workload_identity_uses_the_pipelines_credential_and_a_dry_run_writes_nothing(agent):
    run = agent.run({"dryRun": True, "healthSource": "extension"}, identity="workload")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs()["result"] == "dry-run"
    assert run.outputs()["reimagedInstances"] == "[]"
    # The federated token came through SYSTEM_OIDCREQUESTURI with the job's access token.
    assert agent.oidc.calls and all(c["authorization"] == f"Bearer {SYSTEM_ACCESS_TOKEN}"
                                    for c in agent.oidc.calls)
    assert arm_writes(agent.sim) == []
    assert "| Plan |" in run.summary_path().read_text()
    assert_no_secret_printed(run)


FAILING = {"instances": [{"id": "0", "zone": "1"},
                         {"id": "1", "zone": "2", "on_reimage": "fail", "error_code": "OSProvisioningTimedOut"},
                         {"id": "2", "zone": "3"}],
           "timings": FAST_TIMINGS}


@pytest.mark.parametrize("agent", [in_mode(FAILING, m) for m in ("Uniform", "Flexible")], **BOTH_MODES)
def test_a_failed_instance_fails_the_task_with_exit_1(agent):
    failing = instance_id(agent.sim, "1")
    run = agent.run({"instanceIds": failing, "pollIntervalSeconds": 1})
    assert run.returncode == 1, run.stdout + run.stderr
    outputs = run.outputs()
    assert outputs["result"] == "failed" and outputs["failedInstances"] == json.dumps([failing])
    errors = run.issues("error")
    assert errors and any("OSProvisioningTimedOut" in e for e in errors)
    assert run.commands("task.complete") == ["##vso[task.complete result=Failed;]cycle-vmss: failed"]
    assert "| failed |" in run.summary_path().read_text()
    assert_groups_balanced(run)


def test_a_preflight_refusal_exits_2_and_changes_nothing(agent):
    run = agent.run({"scaleSetName": "vmss-missing"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.outputs()["result"] == "refused"
    assert any("vmss-missing" in e for e in run.issues("error"))
    assert run.commands("task.complete") == ["##vso[task.complete result=Failed;]cycle-vmss: refused"]
    assert arm_writes(agent.sim) == []


@pytest.mark.parametrize("parameter, value", [
    ("resourceGroupName", 'x"; echo INJECTED; "'),
    ("resourceGroupName", "$(whoami)"),
    ("scaleSetName", "`echo INJECTED`"),
    ("maxUnavailable", "1; echo INJECTED"),
    ("instanceIds", "0; echo INJECTED"),
])
def test_a_hostile_value_is_a_literal_and_is_refused(agent, parameter, value):
    run = agent.run({parameter: value})
    assert run.returncode == 2, run.stdout + run.stderr
    errors = run.issues("error")
    assert len(errors) == 1 and errors[0].startswith(f"{parameter}: "), run.stdout
    decoded = errors[0].replace("%0A", "\n")
    assert repr(value) in decoded  # the tool received exactly the text given
    for line in run.stdout.splitlines() + run.stderr.splitlines():
        assert line.strip() not in ("INJECTED", getpass.getuser()), line
    assert agent.sim.requests() == []  # refused before any call to Azure


def test_a_hostile_value_where_text_is_allowed_is_used_as_data(agent):
    folder = Path(agent.dirs["BUILD_ARTIFACTSTAGINGDIRECTORY"])
    name = '$(whoami) "; echo INJECTED; ".json'
    run = agent.run({"dryRun": True, "healthSource": "none",
                     "reportFile": str(folder / name)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert (folder / name).is_file()  # the literal name, nothing run, nothing expanded
    assert "INJECTED" not in [line.strip() for line in run.stdout.splitlines()]


CONSUMER_SCENARIO = {**FAST, "instances": 2, "resource_group": "rg-web", "scale_set_name": "vmss-web"}


@pytest.mark.slow
@pytest.mark.parametrize("agent", [CONSUMER_SCENARIO], indirect=True)
def test_the_consumer_example_runs_as_written(agent):
    consumer = azp_expander.load(CONSUMER)
    use = next(s for stage in consumer["stages"] for job in stage["jobs"]
               for s in job.get("steps", []) if "template" in s)
    parameters = {k: v for k, v in use["parameters"].items()}
    run = agent.run({**parameters, "pollIntervalSeconds": 1})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs()["result"] == "succeeded"
    report = Path(agent.dirs["BUILD_ARTIFACTSTAGINGDIRECTORY"]) / "cycle-vmss.json"
    assert json.loads(report.read_text())["capacity"]["after"] == 2  # the surge was removed


SLOW_REIMAGE = {"instances": 3, "timings": {**FAST_TIMINGS, "reimage_seconds": 60}}


@pytest.mark.parametrize("agent", [in_mode(SLOW_REIMAGE, m) for m in ("Uniform", "Flexible")], **BOTH_MODES)
def test_cancelling_the_job_reports_in_flight_instances_and_exits_130(agent):
    process, env, script = agent.start({"pollIntervalSeconds": 1})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            r["path"].endswith("/reimage") for r in agent.sim.requests()):
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGTERM)  # what the agent does to the step's process tree
    stopped = time.monotonic()
    stdout, stderr = process.communicate(timeout=10)
    assert time.monotonic() - stopped < 3
    run = StepRun(process.returncode, stdout, stderr, env, script)
    assert run.returncode == 130, stdout + stderr
    assert run.outputs()["result"] == "cancelled"
    assert "| in-flight |" in run.summary_path().read_text()
    assert not run.commands("task.complete")  # the job's cancellation sets the result
