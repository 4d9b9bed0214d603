"""The template and the consumer example as Azure Pipelines would compile them."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

import azp_expander
from azp_expander import TemplateError
from azp_agent import CONSUMER, REPO, TEMPLATE

sys.path.insert(0, str(REPO / "scripts"))
import release  # noqa: E402

from cycle_vmss import __version__
from cycle_vmss.settings import SETTINGS, BOOLEAN

REQUIRED = {"azureSubscription": "conn", "resourceGroupName": "rg-web", "scaleSetName": "vmss-web"}


def declared() -> dict[str, dict]:
    return {d["name"]: d for d in azp_expander.load(TEMPLATE)["parameters"]}


def _as_compiled(node):
    """Numbers as Azure Pipelines prints them into the compiled YAML (the schema wants strings)."""
    if isinstance(node, dict):
        return {key: _as_compiled(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_as_compiled(item) for item in node]
    return str(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else node


def schema_errors(document: dict, tmp_path) -> str:
    """What Microsoft's published Azure Pipelines schema says of `document` ('' if valid)."""
    path = tmp_path / "compiled.yml"
    path.write_text(yaml.safe_dump(_as_compiled(document), sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.azure-pipelines", str(path)], capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stdout + done.stderr


# The schema knows no template expressions (`${{ if }}`), so it checks what Azure Pipelines
# compiles: the template expanded for each agent, and the consumer example as written.
@pytest.mark.parametrize("agent_os", ["Linux", "Windows"])
def test_the_published_schema_accepts_the_compiled_steps(agent_os, tmp_path):
    steps = azp_expander.expand(TEMPLATE, {**REQUIRED, "agentOs": agent_os})
    assert not schema_errors({"steps": steps}, tmp_path)


def test_the_published_schema_accepts_the_consumer_example(tmp_path):
    assert not schema_errors(azp_expander.load(CONSUMER), tmp_path)


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


def _scripts(steps: list[dict]) -> list[str]:
    return [text for step in steps for text in (
        step.get("bash"), step.get("script"), (step.get("inputs") or {}).get("inlineScript"),
        (step.get("inputs") or {}).get("script")) if text]


@pytest.mark.parametrize("agent_os", ["Linux", "Windows"])
def test_no_parameter_reaches_any_script_text(agent_os):
    hostile = "$(whoami)${{ parameters.azureSubscription }}"
    given = {**REQUIRED, "agentOs": agent_os, "toolPackage": hostile, "indexUrl": hostile}
    scripts = _scripts(azp_expander.expand(TEMPLATE, given))
    assert len(scripts) == 2
    for text in scripts:
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


def test_the_install_step_is_one_python_script_for_every_agent_and_reads_the_environment():
    steps = azp_expander.expand(TEMPLATE, {**REQUIRED, "toolPackage": "cycle-vmss==9.9.9",
                                           "indexUrl": "https://pkgs.example/simple"})
    install = azp_expander.task_step(steps, "PythonScript@0")
    assert install["env"] == {"CYCLE_VMSS_TOOL_VERSION": __version__,
                              "CYCLE_VMSS_TOOL_PACKAGE": "cycle-vmss==9.9.9",
                              "CYCLE_VMSS_INDEX_URL": "https://pkgs.example/simple"}
    assert install["inputs"]["scriptSource"] == "inline"
    compile(install["inputs"]["script"], "install.py", "exec")  # Python, not shell: Linux and Windows
    python = azp_expander.task_step(steps, "UsePythonVersion@0")
    assert python["inputs"]["versionSpec"] == "3.12"
    assert [s.get("task") for s in steps] == ["UsePythonVersion@0", "PythonScript@0", "AzureCLI@2"]


def test_the_lock_pins_every_dependency_of_the_package_with_hashes():
    lock = release.lock_of(TEMPLATE.read_text())
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", lock, re.M))
    for block in re.split(r"^(?=[a-z0-9])", lock, flags=re.M)[1:]:
        assert "--hash=sha256:" in block, block.split("\n")[0]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in declared}
    assert names <= set(pins)
    assert "cycle-vmss" not in pins  # written by the release, with the hashes of what it publishes


@pytest.mark.parametrize("agent_os, script_type, script", [
    ("Linux", "bash", "exec cycle-vmss\n"),
    ("Windows", "pscore", "& cycle-vmss\nexit $LASTEXITCODE\n"),
])
def test_the_run_step_speaks_the_agents_shell(agent_os, script_type, script):
    step = azp_expander.task_step(azp_expander.expand(TEMPLATE, {**REQUIRED, "agentOs": agent_os}), "AzureCLI@2")
    assert (step["inputs"]["scriptType"], step["inputs"]["inlineScript"]) == (script_type, script)
    assert step["env"]["CYCLE_VMSS_RESOURCE_GROUP"] == "rg-web"


@pytest.mark.parametrize("given, message", [
    ({"resourceGroupName": "rg"}, "'azureSubscription' parameter must be provided"),
    ({**REQUIRED, "healthSource": "maybe"}, "'healthSource' parameter value 'maybe' is not a valid value"),
    ({**REQUIRED, "dryRun": "yes"}, "'dryRun' parameter value 'yes' is not a valid Boolean"),
    ({**REQUIRED, "timeoutMinutes": "soon"}, "'timeoutMinutes' parameter value 'soon' is not a valid number"),
    ({**REQUIRED, "subscriptionId": "x"}, "Unexpected parameter 'subscriptionId'"),
    ({**REQUIRED, "agentOs": "macOS"}, "'agentOs' parameter value 'macOS' is not a valid value"),
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
