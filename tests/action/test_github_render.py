"""What the GitHub front end renders from a run report: annotations within GitHub's limits,
outputs, and a step summary with its table, Gantt chart, totals, cause and fix."""

from __future__ import annotations

import json

from cycle_vmss.github import (ANNOTATIONS_PER_TYPE, GitHubLog, annotations, outputs, render_summary,
                               summary_markdown)
from cycle_vmss.events import Event


def _row(i: int, action: str = "reimaged", **extra) -> dict:
    row = {"id": str(i), "name": f"vmss_{i}", "zone": str(i % 3 + 1), "faultDomain": 0, "action": action,
           "reason": None, "reimageStart": "2026-01-01T00:00:10Z", "reimageEnd": "2026-01-01T00:03:10Z",
           "readyTime": "2026-01-01T00:04:00Z", "reimageSeconds": 180.0, "outOfServiceSeconds": 230.0,
           "lastStates": {"provisioning": "succeeded", "power": "running", "health": "healthy"},
           "error": None}
    row.update(extra)
    return row


def _report(rows: list[dict], result: str = "succeeded", **extra) -> dict:
    report = {"tool": "cycle-vmss", "version": "0.1.0", "subscriptionId": "sub", "resourceGroup": "rg",
              "scaleSet": "vmss", "orchestrationMode": "Uniform",
              "settings": {"resourceGroupName": "rg", "scaleSetName": "vmss", "maxUnavailable": "1",
                           "instanceIds": None, "dryRun": False},
              "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:20:00Z",
              "durationSeconds": 1200.4, "result": result, "message": f"the run {result}",
              "failure": None, "plan": None, "capacity": {"before": 3, "during": 4, "after": 3},
              "requests": {"reads": 40, "writes": 6, "throttled": 1}, "warnings": [], "instances": rows}
    report.update(extra)
    return report


def test_summary_has_result_settings_rows_gantt_and_totals():
    text = summary_markdown(_report([_row(0), _row(1), _row(2, "skipped", reason="deallocated",
                                                            reimageStart=None, readyTime=None)]))
    assert text.startswith("## ✅ cycle-vmss succeeded: `vmss`")
    assert "| `max-unavailable` | 1 |" in text and "| `instance-ids` | (all) |" in text
    assert "| `dry-run` | false |" in text
    assert "| 0 `vmss_0` | 1 | reimaged | 00:00:10 | 00:03:10 | 00:04:00 | 3 min 50 s |" in text
    assert "| skipped (deallocated) |" in text
    gantt = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert gantt.startswith("gantt\n")
    assert "    0 vmss_0 : done, i0, 2026-01-01 00:00:10, 2026-01-01 00:04:00" in gantt
    assert "2 vmss_2" not in gantt  # never out of service
    assert "| Duration | 20 min 0 s (00:00:00 to 00:20:00 UTC) |" in text
    assert "| ARM requests | 40 reads, 6 writes, 1 throttled |" in text
    assert "**Cause:**" not in text


def test_failed_run_names_the_cause_and_the_fix():
    rows = [_row(0), _row(1, "failed", readyTime=None, error={"code": "Timeout", "message": "not ready in 30 min"},
                          lastStates={"provisioning": "succeeded", "power": "running", "health": "unhealthy"}),
            _row(2, "not-started", reimageStart=None, reimageEnd=None, readyTime=None)]
    report = _report(rows, "failed", capacity={"before": 3, "during": 4, "after": 4},
                     failure={"instanceId": "1", "code": "Timeout", "message": "not ready in 30 min",
                              "states": {"provisioning": "succeeded", "power": "running", "health": "unhealthy"}})
    text = summary_markdown(report)
    assert "**Cause:** Instance 1 failed: Timeout: not ready in 30 min. Last states: provisioning succeeded, " \
           "power running, health unhealthy." in text
    assert "`instance-ids: 1 2`" in text
    assert "az vmss scale -g rg -n vmss --new-capacity 3" in text
    assert "1 vmss_1 : crit, i1," in text
    lines = annotations(report)
    assert lines[0].startswith("::error title=cycle-vmss%3A instance 1::Instance 1 (vmss_1) failed: Timeout")
    assert "health unhealthy" in lines[0]


def test_annotations_stay_within_githubs_limit_by_aggregating():
    rows = [_row(i, "failed", error={"code": "Timeout", "message": "late"}) for i in range(25)]
    rows += [_row(100 + i, "skipped", reason="protected from scale-set actions") for i in range(15)]
    lines = annotations(_report(rows, "failed", warnings=["surge capacity kept: 4 instead of 3"]))
    errors = [l for l in lines if l.startswith("::error")]
    warnings = [l for l in lines if l.startswith("::warning")]
    assert len(errors) == ANNOTATIONS_PER_TYPE and len(warnings) == ANNOTATIONS_PER_TYPE
    assert "16 more failed instances" in errors[-1] and "instance 24" in errors[-1]
    assert "7 more warnings" in warnings[-1]


def test_summary_stays_under_one_mebibyte_for_a_huge_set():
    rows = [_row(i) for i in range(8000)] + [_row(8000, "failed", error={"code": "X", "message": "y"})]
    text = render_summary(_report(rows, "failed"))
    assert len(text.encode()) < 1_000_000
    assert "| 8000 `vmss_8000` |" in text  # the instance that needs attention is kept
    assert "more instances are in the report file" in text


def test_outputs_are_json_arrays_and_a_workspace_relative_report_path(tmp_path):
    rows = [_row(0), _row(1, "failed"), _row(2, "skipped", reason="stopped"), _row(3),
            _row(4, "skipped", reason="out of scope")]
    values = outputs(_report(rows), str(tmp_path / "out" / "r.json"), str(tmp_path))
    assert values["result"] == "succeeded"
    assert json.loads(values["reimaged-instances"]) == ["0", "3"]
    assert json.loads(values["failed-instances"]) == ["1"]
    assert json.loads(values["skipped-instances"]) == ["2"]
    assert values["duration-seconds"] == "1200"
    assert values["report-file"] == "out/r.json"
    assert outputs(_report([]), "/elsewhere/r.json", str(tmp_path))["report-file"] == "/elsewhere/r.json"


def test_log_groups_phases_and_each_instance_and_never_emits_a_stray_command(capsys):
    log = GitHubLog()
    for e in (Event("phase", 0, message="preflight"), Event("phase", 1, message="rolling"),
              Event("started", 2, instance_id="0"), Event("state", 3, "0", data={"provisioning": "updating"}),
              Event("waiting", 4, message="::error::not a command"), Event("done", 5, "0")):
        log.event(e)
    log.finish(_report([_row(0)]))
    out = capsys.readouterr().out.splitlines()
    assert [l for l in out if l.startswith("::")] == [
        "::group::Preflight (read only)", "::endgroup::", "::group::Rolling reimage", "::endgroup::",
        "::group::Reimage instance 0 (#1)", "::endgroup::", "::group::Results", "::endgroup::"]
    assert "00:00:03 instance 0: provisioning updating" in out


def test_a_failed_instance_is_out_of_service_until_the_run_ends_and_states_are_said_once():
    row = _row(1, "failed", readyTime=None, error={"code": "NotReady", "message": "late; last states x"})
    report = _report([row], "failed", failure={"instanceId": "1", "code": "NotReady",
                                               "message": "late; last states x", "states": {}})
    text = summary_markdown(report)
    assert "1 vmss_1 : crit, i0, 2026-01-01 00:00:10, 2026-01-01 00:20:00" in text
    assert text.count("ast states") == 1 + text.count("| Last states |")
    (error,) = annotations(report)
    assert error.endswith("failed: NotReady: late; last states x.")


def test_instances_outside_the_scope_are_not_warnings():
    # instance-ids: 0 on a three-instance set: 1 and 2 were never asked for, like the pipelines'
    # log (no issue for them); a real skip in scope is still a warning.
    rows = [_row(0), _row(1, "skipped", reason="out of scope", reimageStart=None, readyTime=None),
            _row(2, "skipped", reason="out of scope", reimageStart=None, readyTime=None),
            _row(3, "skipped", reason="deallocated", reimageStart=None, readyTime=None)]
    lines = annotations(_report(rows))
    assert lines == ["::warning title=cycle-vmss%3A instance 3::Instance 3 (vmss_3) skipped: deallocated."]
