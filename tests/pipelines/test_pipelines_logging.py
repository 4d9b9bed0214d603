"""What the tool writes for the agent: logging commands, escaping, outputs, summary."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from sample_reports import at, make_report, make_row

from cycle_vmss import pipelines
from cycle_vmss.compute import RequestCounts
from cycle_vmss.decide import Failure
from cycle_vmss.events import Event
from cycle_vmss.report import Capacity, InstanceError, InstanceRow, Report


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def unescape(text: str) -> str:
    """The agent's decoding, to prove the escaping round-trips."""
    for code, char in (("%3B", ";"), ("%5D", "]"), ("%0D", "\r"), ("%0A", "\n"), ("%AZP25", "%")):
        text = text.replace(code, char)
    return text


@pytest.mark.parametrize("raw", ["100%", "a;b]c", "line1\r\nline2", "%0A literal", "##vso[task.complete]"])
def test_escaping_keeps_one_command_per_line_and_round_trips(raw):
    line = pipelines.command("task.setvariable", raw, variable=raw, isOutput="true")
    assert "\n" not in line and "\r" not in line
    head, _, message = line.partition("]")
    props = head[len("##vso[task.setvariable "):]
    assert props.count(";") == 2  # only the separators: a value cannot end a property early
    assert unescape(message) == raw
    assert unescape(props.split(";")[0].split("=", 1)[1]) == raw


def test_escape_rules_are_azures():
    assert pipelines.escape_data("50%\r\n") == "50%AZP25%0D%0A"
    assert pipelines.escape_property("a;b]c%") == "a%3Bb%5Dc%AZP25"


def test_active_only_on_an_agent():
    assert pipelines.active({"TF_BUILD": "True"})
    assert not pipelines.active({})
    assert not pipelines.active({"TF_BUILD": ""})


def run_events(events: list[Event]) -> list[str]:
    out = io.StringIO()
    log = pipelines.listener(out)
    for event in events:
        log.event(event)
    log.close()
    return lines(out)


def test_the_log_groups_phases_and_reports_issues_and_progress():
    got = run_events([
        Event("phase", 0, message="preflight"),
        Event("plan", 1, data={"n0": 3, "maxUnavailable": 1, "maxSurge": 0, "rMin": 2,
                               "maxInFlight": 1, "order": ["0", "1", "2"], "surgeTo": None}),
        Event("skipped", 1, instance_id="3", message="protected from scale-set actions"),
        Event("skipped", 1, message="1 instance outside instance-ids left alone: 4", data={"ids": ["4"]}),
        Event("phase", 2, message="rolling"),
        Event("started", 3, instance_id="0"),
        Event("done", 4, instance_id="0"),
        Event("failed", 5, instance_id="1", message="reimage failed: disk; ]broken\nsecond line",
              data={"code": "OSProvisioningTimedOut"}),
        Event("removed", 6, instance_id="2"),
        Event("waiting", 6, message="##vso[task.complete result=Succeeded;]sneaky"),
        Event("finished", 7, data={}),
    ])
    assert got[0] == "##[group]Preflight (read only)"
    assert got.count("##[endgroup]") == 2 and got[-1] == "##[endgroup]"
    assert [l for l in got if l.startswith("##[group]")] == ["##[group]Preflight (read only)",
                                                          "##[group]Rolling reimage"]
    assert "##vso[task.logissue type=warning;]instance 3 skipped: protected from scale-set actions" in got
    # Out of scope: one plain line, not a warning.
    assert "1 instance outside instance-ids left alone: 4" in got
    assert not any("instance-ids" in l and l.startswith("##vso") for l in got)
    errors = [l for l in got if l.startswith("##vso[task.logissue type=error;]")]
    assert len(errors) == 1 and "OSProvisioningTimedOut" in errors[0] and "%0A" in errors[0]
    progress = [l for l in got if l.startswith("##vso[task.setprogress")]
    assert progress == ["##vso[task.setprogress value=33;]1 of 3 instances finished",
                        "##vso[task.setprogress value=66;]2 of 3 instances finished",
                        "##vso[task.setprogress value=100;]3 of 3 instances finished"]
    # Text from Azure or elsewhere can never become a logging command.
    assert not any(l.startswith("##vso[task.complete") for l in got)
    assert all("##vso[" not in l for l in got if not l.startswith("##"))


REPORT = make_report(
    [make_row(0, name="vmss-web_0", zone="1", reimage_start=at("2025-01-01T00:01:00Z"),
              reimage_end=at("2025-01-01T00:03:00Z"), ready_time=at("2025-01-01T00:04:00Z"),
              out_of_service_seconds=180.0),
     InstanceRow("2", "failed", name="vmss-web_2", zone="2",
                 error=InstanceError("OSProvisioningTimedOut", "timed out")),
     InstanceRow("1", "not-started", name="vmss-web_1", zone="3"),
     InstanceRow("5", "skipped", name="vmss-web_5", zone="1", reason="deallocated")],
    "failed", message="instance 2 failed: OSProvisioningTimedOut | see the log",
    subscription_id="00000000-0000-0000-0000-000000000001", resource_group="rg-web",
    scale_set="vmss-web", start_time=at("2025-01-01T00:00:00Z"), end_time=at("2025-01-01T00:10:00Z"),
    duration_seconds=600.04,
    settings={"resourceGroupName": "rg-web", "scaleSetName": "vmss-web", "dryRun": False,
              "instanceIds": None},
    failure=Failure("2", "OSProvisioningTimedOut", "timed out",
                    {"provisioning": "failed", "power": "running", "health": None}),
    plan={"n0": 3, "maxUnavailable": 1, "maxSurge": 0, "automaticSurge": 0, "rMin": 2, "maxInFlight": 1,
          "order": ["0", "2", "1"], "surgeTo": None},
    capacity=Capacity(3, 3, 3), requests=RequestCounts(40, 2, 1),
    warnings=("instance 5 was skipped: deallocated",))


def test_publish_sets_outputs_uploads_a_summary_and_fails_the_task(tmp_path):
    out = io.StringIO()
    path = pipelines.publish(REPORT, None, {"AGENT_TEMPDIRECTORY": str(tmp_path)}, out)
    got = lines(out)
    outputs = {l.split("variable=")[1].split(";")[0]: l.split("]", 1)[1]
               for l in got if l.startswith("##vso[task.setvariable")}
    assert all("isOutput=true;" in l for l in got if l.startswith("##vso[task.setvariable"))
    assert outputs == {"result": "failed", "reimagedInstances": '["0"]', "failedInstances": '["2"]',
                       "skippedInstances": '["5"]', "remainingInstances": "[]",
                       "startedAt": "2025-01-01T00:00:00Z", "durationSeconds": "600", "reportFile": ""}
    assert "##vso[task.logissue type=warning;]instance 5 was skipped: deallocated" in got
    assert f"##vso[task.uploadsummary]{path}" in got
    assert path.startswith(str(tmp_path)) and path.endswith(".md")
    # The failed instance had its error issue while the run went on; not a second one here.
    assert not [l for l in got if l.startswith("##vso[task.logissue type=error")]
    assert got[-1] == "##vso[task.complete result=Failed;]cycle-vmss: failed"

    summary = open(path, encoding="utf-8").read()
    assert "mermaid" not in summary
    # The picture of the run goes with the job's logs, and the summary says so.
    picture = path[:-len(".md")] + ".svg"
    assert f"##vso[task.uploadfile]{picture}" in got
    assert ET.parse(picture).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert summary.rstrip().endswith(f"is attached to this job's logs as `{os.path.basename(picture)}` "
                                     "(Download logs).")
    assert "| Instance | Name | Zone | Action |" in summary
    assert "| 2 | vmss-web_2 | 2 | failed |" in summary
    assert "OSProvisioningTimedOut \\| see the log" in summary  # a pipe cannot break the table
    assert "| resourceGroupName | rg-web |" in summary

    # A second run in the same job gets its own summary file.
    again = pipelines.publish(REPORT, None, {"AGENT_TEMPDIRECTORY": str(tmp_path)}, io.StringIO())
    assert again != path


def test_a_run_blocked_without_a_failed_instance_says_why(tmp_path):
    out = io.StringIO()
    blocked = replace(REPORT, message="blocked for 30 minutes by unready instance 7",
                      instances=tuple(i for i in REPORT.instances if i.action != "failed"))
    pipelines.publish(blocked, None, {"AGENT_TEMPDIRECTORY": str(tmp_path)}, out)
    assert lines(out)[-2:] == [
        "##vso[task.logissue type=error;]blocked for 30 minutes by unready instance 7",
        "##vso[task.complete result=Failed;]cycle-vmss: failed"]


def test_success_does_not_touch_the_task_result(tmp_path):
    out = io.StringIO()
    pipelines.publish(replace(REPORT, result="succeeded", warnings=()), None,
                      {"AGENT_TEMPDIRECTORY": str(tmp_path)}, out)
    assert not any(l.startswith(("##vso[task.complete", "##vso[task.logissue")) for l in lines(out))


def test_secrets_are_masked_and_only_secrets(tmp_path):
    out = io.StringIO()
    pipelines.mask_secrets({"servicePrincipalKey": "s3cr;et]\nx", "SYSTEM_ACCESSTOKEN": "tok",
                            "idToken": "", "servicePrincipalId": "not-a-secret",
                            "AZURE_CLIENT_SECRET": "$(unmapped)"}, out)
    got = lines(out)
    assert got == ["##vso[task.setsecret]s3cr;et]%0Ax", "##vso[task.setsecret]tok"]


def test_bad_input_is_one_error_naming_the_pipeline_parameter(tmp_path):
    out = io.StringIO()
    env = {"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(tmp_path),
           "CYCLE_VMSS_RESOURCE_GROUP": "rg", "CYCLE_VMSS_SCALE_SET_NAME": "vmss",
           "CYCLE_VMSS_MAX_SURGE": "lots"}
    assert pipelines.main({}, environ=env, out=out) == 2
    got = lines(out)
    errors = [l for l in got if l.startswith("##vso[task.logissue type=error;]")]
    assert errors == ["##vso[task.logissue type=error;]maxSurge: 'lots' is not accepted; expected "
                      "a whole number >= 0 or a percentage from 0%AZP25 to 100%AZP25"]
    assert "##vso[task.setvariable variable=result;isOutput=true;]refused" in got
    assert got[-1] == "##vso[task.complete result=Failed;]cycle-vmss: refused"
    # Given as a flag, the flag's name is the one the user wrote.
    out = io.StringIO()
    assert pipelines.main({"max_surge": "lots"}, environ=env, out=out) == 2
    assert "]--max-surge: 'lots'" in out.getvalue()
    assert json.loads(pipelines.outputs(Report.refused("bad input"), None)["reimagedInstances"]) == []


def test_a_malformed_tenant_of_the_service_connection_is_named_with_its_value(tmp_path):
    out = io.StringIO()
    env = {"AZURESUBSCRIPTION_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
           "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "33333333-3333-3333-3333-333333333333",
           "SYSTEM_ACCESSTOKEN": "token", "AZURESUBSCRIPTION_TENANT_ID": "contoso tenant",
           "TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(tmp_path),
           "CYCLE_VMSS_RESOURCE_GROUP": "rg", "CYCLE_VMSS_SCALE_SET_NAME": "vmss"}
    assert pipelines.main({}, environ=env, out=out) == 2
    errors = [l for l in lines(out) if l.startswith("##vso[task.logissue type=error;]")]
    assert errors == ["##vso[task.logissue type=error;]AZURESUBSCRIPTION_TENANT_ID: 'contoso tenant' "
                      "is not accepted; expected the service connection's tenant id (a GUID or a "
                      "domain such as contoso.onmicrosoft.com)"]


def test_the_summary_lists_instances_in_scope_and_sums_up_the_rest():
    rows = [make_row(0), make_row(1, "skipped", reason="out of scope", reimage_start=None,
                                  ready_time=None),
            make_row(2, "skipped", reason="out of scope", reimage_start=None, ready_time=None)]
    text = pipelines.summary_markdown(make_report(rows))
    table = [l.split(" | ")[0] for l in text.splitlines() if "| vmss_" in l]
    assert table == ["| 0"]
    assert "\n2 instances outside instance-ids left alone: 1, 2.\n" in text
