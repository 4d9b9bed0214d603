"""The jobs-level template and the many-scale-sets examples, as Azure Pipelines and GitHub would
compile them: one deployment job (or matrix job) per set, each with its own lock."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

import azp_expander
from azp_agent import REPO, TEMPLATE
from test_pipelines_template import schema_errors

JOB_TEMPLATE = REPO / "azure-pipelines-job.yml"
MANY_PIPELINES = REPO / "examples" / "azure-pipelines-many-scale-sets.yml"
MANY_GITHUB = REPO / "examples" / "github-many-scale-sets.yml"
REIMAGE = {"azureSubscription": "conn", "resourceGroupName": "rg-web", "scaleSetName": "vmss-web"}


def test_the_jobs_template_is_one_deployment_job_running_the_steps_template(tmp_path):
    jobs = azp_expander.expand(JOB_TEMPLATE, {"environment": "production-web", "reimage": REIMAGE})
    assert len(jobs) == 1
    job = jobs[0]
    assert (job["deployment"], job["environment"], job["displayName"]) == ("Reimage", "production-web", "Reimage vmss-web")
    assert job["pool"] == {"vmImage": "ubuntu-latest"} and job["timeoutInMinutes"] == 360
    steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    assert steps[0] == {"download": "none"}
    assert steps[1:] == azp_expander.expand(TEMPLATE, REIMAGE)
    assert not schema_errors({"jobs": jobs}, tmp_path)


def test_the_jobs_template_passes_windows_and_its_own_settings_through():
    jobs = azp_expander.expand(JOB_TEMPLATE, {
        "jobName": "Web", "displayName": "Web servers", "environment": "prod", "dependsOn": ["Build"],
        "pool": {"vmImage": "windows-latest"}, "reimage": {**REIMAGE, "agentOs": "Windows", "maxSurge": "1"}})
    job = jobs[0]
    assert (job["deployment"], job["displayName"], job["dependsOn"]) == ("Web", "Web servers", ["Build"])
    cli = azp_expander.task_step(job["strategy"]["runOnce"]["deploy"]["steps"], "AzureCLI@2")
    assert cli["inputs"]["scriptType"] == "pscore" and cli["env"]["CYCLE_VMSS_MAX_SURGE"] == "1"


def test_the_jobs_template_needs_an_environment_and_checks_the_steps_parameters():
    with pytest.raises(azp_expander.TemplateError, match="'environment' parameter must be provided"):
        azp_expander.expand(JOB_TEMPLATE, {"reimage": REIMAGE})
    with pytest.raises(azp_expander.TemplateError, match="'healthSource' parameter value 'maybe'"):
        azp_expander.expand(JOB_TEMPLATE, {"environment": "e", "reimage": {**REIMAGE, "healthSource": "maybe"}})


def test_the_pipelines_example_is_one_job_and_one_environment_per_set(tmp_path):
    pipeline = azp_expander.expand_pipeline(MANY_PIPELINES)
    sets = azp_expander.load(MANY_PIPELINES)["parameters"][0]["default"]
    jobs = pipeline["stages"][0]["jobs"]
    assert [j["deployment"] for j in jobs] == [s["job"] for s in sets]
    assert [j["environment"] for j in jobs] == [f"vmss-{s['scaleSet']}" for s in sets]
    assert len({j["environment"] for j in jobs}) == len(sets)  # one exclusive lock per set
    for job, each in zip(jobs, sets):
        env = azp_expander.task_step(job["strategy"]["runOnce"]["deploy"]["steps"], "AzureCLI@2")["env"]
        assert (env["CYCLE_VMSS_RESOURCE_GROUP"], env["CYCLE_VMSS_SCALE_SET_NAME"]) == (each["resourceGroup"], each["scaleSet"])
    assert pipeline["lockBehavior"] == "sequential"
    compiled = {k: v for k, v in pipeline.items() if k != "parameters"}
    assert not schema_errors(compiled, tmp_path)


def test_the_github_example_is_one_matrix_job_and_one_concurrency_group_per_set():
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(MANY_GITHUB)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    job = yaml.safe_load(MANY_GITHUB.read_text())["jobs"]["reimage"]
    sets = job["strategy"]["matrix"]["include"]
    assert len({(s["resource-group"], s["scale-set"]) for s in sets}) == len(sets) > 1
    assert job["strategy"]["fail-fast"] is False
    group = job["concurrency"]["group"]
    assert "${{ matrix.resource-group }}" in group and "${{ matrix.scale-set }}" in group
    assert job["concurrency"]["cancel-in-progress"] is False  # a second run waits, never cancels
    step = next(s for s in job["steps"] if s.get("id") == "cycle")
    assert step["with"]["scale-set-name"] == "${{ matrix.scale-set }}"
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
