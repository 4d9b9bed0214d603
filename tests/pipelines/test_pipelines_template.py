"""The template and the consumer example as Azure Pipelines would compile them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import azp_expander
from azp_expander import TemplateError
from azp_agent import CONSUMER, REPO, TEMPLATE

from cycle_vmss import __version__
from cycle_vmss.settings import SETTINGS, BOOLEAN

REQUIRED = {"azureSubscription": "conn", "resourceGroupName": "rg-web", "scaleSetName": "vmss-web"}


def declared() -> dict[str, dict]:
    return {d["name"]: d for d in azp_expander.load(TEMPLATE)["parameters"]}


@pytest.mark.parametrize("path", [TEMPLATE, CONSUMER], ids=["template", "consumer"])
def test_the_published_schema_accepts_it(path):
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.azure-pipelines", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_setting_with_a_pipeline_name_is_a_typed_parameter_passed_by_environment():
    params = declared()
    env = azp_expander.task_step(azp_expander.expand(TEMPLATE, REQUIRED), "AzureCLI@2")["env"]
    raw_env = azp_expander.task_step(azp_expander.load(TEMPLATE)["steps"], "AzureCLI@2")["env"]
    for spec in SETTINGS:
        if spec.pipeline is None:
            assert spec.env not in env, spec.env
            continue
        param = params[spec.pipeline]
        expected_type = ("boolean" if spec.accepted == BOOLEAN else
                         "number" if spec.field in ("timeout_minutes", "min_ready_seconds",
                                                    "poll_interval_seconds") else "string")
        assert param["type"] == expected_type, spec.pipeline
        assert raw_env[spec.env] == "${{ parameters.%s }}" % spec.pipeline
        if spec.default is None:
            assert "default" not in param, spec.pipeline  # required
        else:
            # Quoted: the published schema refuses an unquoted number or boolean default.
            assert isinstance(param["default"], str)
            assert param["default"] == (spec.default or ""), spec.pipeline
    assert params["healthSource"]["values"] == ["auto", "extension", "none"]
    assert {"azureSubscription", "pythonVersion"} <= set(params)


def test_no_parameter_reaches_any_script_text():
    for step in azp_expander.load(TEMPLATE)["steps"]:
        scripts = [step.get("bash"), step.get("script"), (step.get("inputs") or {}).get("inlineScript")]
        for text in filter(None, scripts):
            assert "${{" not in text and "$(" not in text, text


def test_the_step_runs_in_azure_cli_with_the_service_principal_and_the_access_token():
    step = azp_expander.task_step(azp_expander.expand(TEMPLATE, REQUIRED), "AzureCLI@2")
    assert step["name"] == "cycle_vmss"
    assert step["inputs"]["azureSubscription"] == "conn"
    assert step["inputs"]["scriptType"] == "bash"
    assert step["inputs"]["addSpnToEnvironment"] is True
    assert step["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"


def test_defaults_reach_the_tool_as_azure_pipelines_prints_them():
    env = azp_expander.step_env(
        azp_expander.task_step(azp_expander.expand(TEMPLATE, REQUIRED), "AzureCLI@2"), {})
    assert env["CYCLE_VMSS_TIMEOUT_MINUTES"] == "30"
    assert env["CYCLE_VMSS_DRY_RUN"] == "False"  # accepted by the tool as a YAML 1.2 boolean
    assert env["CYCLE_VMSS_MAX_UNAVAILABLE"] == "1"
    assert env["CYCLE_VMSS_HEALTH_SOURCE"] == "auto"
    assert env["CYCLE_VMSS_INSTANCE_IDS"] == ""

    from cycle_vmss.settings import Spelling, build_settings, raw_from_env
    settings = build_settings(raw_from_env(env), Spelling.PIPELINE)
    assert (settings.timeout_minutes, settings.dry_run, settings.instance_ids) == (30, False, None)


def test_the_install_step_pins_this_release_and_takes_its_requirement_from_the_environment():
    params = declared()
    assert params["toolPackage"]["default"].endswith(f"@v{__version__}")
    steps = azp_expander.expand(TEMPLATE, {**REQUIRED, "toolPackage": "cycle-vmss==9.9.9"})
    install = next(s for s in steps if "bash" in s)
    assert install["env"]["CYCLE_VMSS_TOOL_PACKAGE"] == "cycle-vmss==9.9.9"
    assert '-- "$CYCLE_VMSS_TOOL_PACKAGE"' in install["bash"]
    assert "##vso[task.prependpath]" in install["bash"]
    assert subprocess.run(["bash", "-n"], input=install["bash"], text=True).returncode == 0
    python = azp_expander.task_step(steps, "UsePythonVersion@0")
    assert python["inputs"]["versionSpec"] == "3.12"


@pytest.mark.parametrize("given, message", [
    ({"resourceGroupName": "rg"}, "'azureSubscription' parameter must be provided"),
    ({**REQUIRED, "healthSource": "maybe"}, "'healthSource' parameter value 'maybe' is not a valid value"),
    ({**REQUIRED, "dryRun": "yes"}, "'dryRun' parameter value 'yes' is not a valid Boolean"),
    ({**REQUIRED, "timeoutMinutes": "soon"}, "'timeoutMinutes' parameter value 'soon' is not a valid number"),
    ({**REQUIRED, "subscriptionId": "x"}, "Unexpected parameter 'subscriptionId'"),
])
def test_azure_pipelines_refuses_what_the_types_exclude(given, message):
    with pytest.raises(TemplateError, match=re.escape(message)):
        azp_expander.expand(TEMPLATE, given)


def test_values_are_substituted_as_data_not_as_yaml():
    hostile = 'x"; echo INJECTED; "\n  inlineScript: rm -rf /\n${{ parameters.azureSubscription }}'
    steps = azp_expander.expand(TEMPLATE, {**REQUIRED, "resourceGroupName": hostile})
    step = azp_expander.task_step(steps, "AzureCLI@2")
    assert step["env"]["CYCLE_VMSS_RESOURCE_GROUP"] == hostile  # verbatim, not re-expanded
    assert step["inputs"]["inlineScript"] == azp_expander.task_step(
        azp_expander.expand(TEMPLATE, REQUIRED), "AzureCLI@2")["inputs"]["inlineScript"]


def test_the_consumer_example_uses_the_template_and_its_outputs_correctly():
    consumer = azp_expander.load(CONSUMER)
    repo = consumer["resources"]["repositories"][0]
    assert repo["ref"].startswith("refs/tags/v")
    jobs = [job for stage in consumer["stages"] for job in stage["jobs"]]
    uses = [s for job in jobs for s in job.get("steps", []) if "template" in s]
    assert [u["template"] for u in uses] == [f"azure-pipelines-template.yml@{repo['repository']}"]
    azp_expander.expand(TEMPLATE, uses[0]["parameters"])  # compiles: names, types and values
    text = CONSUMER.read_text()
    from cycle_vmss.pipelines import OUTPUT_VARIABLES
    referenced = re.findall(r"cycle_vmss\.(\w+)", text)
    assert referenced and set(referenced) <= set(OUTPUT_VARIABLES)
    assert "dependencies.Reimage.outputs['cycle_vmss." in text           # a later job
    assert "stageDependencies.Rollout.Reimage.outputs['cycle_vmss." in text  # a later stage
