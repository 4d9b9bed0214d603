"""The run report: its constructors, its JSON form (the report file), the step outputs in both
spellings, the exit codes and the formatters the front ends share."""

from __future__ import annotations

import json
import os

import pytest
from report_schema import SCHEMA, validate_report
from sample_reports import at, make_report, make_row

from cycle_vmss import __version__
from cycle_vmss.compute import Instance, RequestCounts
from cycle_vmss.decide import Failure, Status, Track
from cycle_vmss.report import (
    OUTPUTS,
    SCHEMA_VERSION,
    InstanceError,
    InstanceRow,
    Report,
    exit_code,
    iso,
    state_slashes,
    write_report,
)
from cycle_vmss.settings import build_settings, camel

REPORT_KEYS = ["tool", "version", "schemaVersion", "subscriptionId", "resourceGroup", "scaleSet",
               "orchestrationMode", "settings", "startTime", "endTime", "durationSeconds", "result", "message", "failure",
               "plan", "capacity", "requests", "warnings", "instances", "continueWith",
               "automaticRepairs"]
ROW_KEYS = ["id", "name", "zone", "faultDomain", "action", "reason", "reimageStart", "reimageEnd",
            "readyTime", "reimageSeconds", "outOfServiceSeconds", "lastStates", "error", "modelUpgraded"]


def test_the_json_form_has_every_key_in_order_and_is_plain_json():
    report = make_report([make_row(0)]).as_dict()
    assert list(report) == REPORT_KEYS and list(report["instances"][0]) == ROW_KEYS
    assert report["tool"] == "cycle-vmss" and report["version"] == __version__
    assert report["startTime"] == "2026-01-01T00:00:00Z" and report["durationSeconds"] == 1200.4
    assert report["capacity"] == {"before": 3, "during": 4, "after": 3}
    assert report["requests"] == {"reads": 40, "writes": 6, "throttled": 1}
    assert report["instances"][0]["readyTime"] == "2026-01-01T00:04:00Z"
    assert json.loads(json.dumps(report)) == report


def test_a_row_from_the_engines_track():
    first = Instance(id="3", name="vmss_3", zone="2", fault_domain=1, provisioning="succeeded",
                     power="running", health="healthy")
    track = Track(id="3", status=Status.DONE, started=100.0, op_end=250.0, ready_since=280.0, last=first)
    row = InstanceRow.of(track, first).as_dict()
    assert row["action"] == "reimaged" and (row["name"], row["zone"], row["faultDomain"]) == ("vmss_3", "2", 1)
    assert (row["reimageSeconds"], row["outOfServiceSeconds"]) == (150.0, 180.0)
    assert row["readyTime"] == iso(280.0) and row["error"] is None
    failed = Track(id="3", status=Status.FAILED, started=100.0, error_code="Timeout", error_message="late")
    row = InstanceRow.of(failed, first).as_dict()
    assert row["error"] == {"code": "Timeout", "message": "late"}
    assert row["readyTime"] is None and row["outOfServiceSeconds"] is None
    assert row["lastStates"] == {"provisioning": "succeeded", "power": "running", "health": "healthy"}


def test_a_refusal_before_settings_and_after():
    early = Report.refused("max-surge: 'lots' is not accepted", resource_group="rg", scale_set=None)
    d = early.as_dict()
    assert list(d) == REPORT_KEYS
    assert (d["result"], d["resourceGroup"], d["scaleSet"], d["subscriptionId"]) == \
        ("refused", "rg", None, None)
    assert d["settings"] == {} and d["instances"] == [] and d["plan"] is None
    assert d["requests"] == {"reads": 0, "writes": 0, "throttled": 0}
    assert d["capacity"] == {"before": None, "during": None, "after": None}
    sub = "00000000-0000-0000-0000-000000000001"
    settings = build_settings({"resource_group": "rg", "scale_set_name": "vmss", "subscription_id": sub})
    late = Report.refused("no credential", settings=settings, start=at("2026-01-01T00:00:00Z"),
                          requests=RequestCounts(reads=2))
    d = late.as_dict()
    assert (d["resourceGroup"], d["scaleSet"], d["subscriptionId"]) == ("rg", "vmss", sub)
    assert d["settings"] == settings.as_report() and d["requests"]["reads"] == 2
    assert d["startTime"] == "2026-01-01T00:00:00Z" and d["durationSeconds"] > 0


def test_outputs_list_the_instances_in_scope_as_json_arrays():
    rows = [make_row(0), make_row(1, "failed"), make_row(2, "skipped", reason="stopped"), make_row(3),
            make_row(4, "skipped", reason="out of scope")]
    values = make_report(rows).outputs("r.json")
    assert list(values) == list(OUTPUTS)
    assert values["result"] == "succeeded"
    assert json.loads(values["reimaged-instances"]) == ["0", "3"]
    assert json.loads(values["failed-instances"]) == ["1"]
    assert json.loads(values["skipped-instances"]) == ["2"]
    assert values["duration-seconds"] == "1200"
    assert json.loads(Report.refused("bad input").outputs(None)["skipped-instances"]) == []


def test_the_report_file_output_is_workspace_relative_inside_it_else_absolute(tmp_path, monkeypatch):
    report = make_report([])
    assert report.outputs(str(tmp_path / "out" / "r.json"), str(tmp_path))["report-file"] == "out/r.json"
    assert report.outputs("/elsewhere/r.json", str(tmp_path))["report-file"] == "/elsewhere/r.json"
    monkeypatch.chdir(tmp_path)
    assert report.outputs("r.json")["report-file"] == str(tmp_path / "r.json")
    assert report.outputs(None)["report-file"] == ""


def test_pipelines_spell_the_outputs_in_camel_case():
    assert [camel(name) for name in OUTPUTS] == ["result", "reimagedInstances", "failedInstances",
                                                 "skippedInstances", "remainingInstances", "startedAt",
                                                 "durationSeconds", "reportFile"]


def test_report_file_is_written_whole(tmp_path):
    path = tmp_path / "report.json"
    write_report(make_report([make_row(0)]), str(path))
    assert json.loads(path.read_text()) == make_report([make_row(0)]).as_dict()
    assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.parametrize("result, code", [("succeeded", 0), ("dry-run", 0), ("failed", 1),
                                          ("refused", 2), ("cancelled", 130)])
def test_exit_codes(result, code):
    assert exit_code(make_report([], result)) == code


def test_formatters():
    assert iso(at("2026-01-01T00:00:10Z") + 0.9) == "2026-01-01T00:00:10Z" and iso(None) is None
    assert state_slashes({"provisioning": "succeeded", "power": None, "health": "healthy"}) == \
        "succeeded/-/healthy"
    assert state_slashes(None) == ""


def test_the_schema_describes_every_key_and_rejects_anything_else():
    assert SCHEMA["properties"]["schemaVersion"] == {"const": SCHEMA_VERSION}
    assert SCHEMA["required"] == REPORT_KEYS and SCHEMA["$defs"]["instance"]["required"] == ROW_KEYS
    failed = make_report(
        [make_row(0), make_row(1, "failed", ready_time=None, error=InstanceError("Timeout", "late"))],
        "failed", failure=Failure("1", "Timeout", "late", {"provisioning": "succeeded",
                                                           "power": "running", "health": None}),
        plan={"n0": 2, "maxUnavailable": 1, "maxSurge": 0, "automaticSurge": 0, "rMin": 1,
              "maxInFlight": 1, "order": ["0", "1"], "surgeTo": None}).as_dict()
    validate_report(failed)
    validate_report(Report.refused("bad input").as_dict())
    without_plan = {k: v for k, v in failed.items() if k != "plan"}
    for broken in ({**failed, "result": "maybe"}, without_plan, {**failed, "extra": 1},
                   {**failed, "startTime": "yesterday"}, {**failed, "schemaVersion": 1}):
        with pytest.raises(AssertionError, match="does not match the schema"):
            validate_report(broken)
