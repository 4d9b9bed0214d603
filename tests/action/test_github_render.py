"""What the GitHub front end renders from a run report: annotations within GitHub's limits, the
log's groups, and a step summary with its table, Gantt chart, totals, cause and fix."""

from __future__ import annotations

from sample_reports import make_report, make_row

from cycle_vmss.decide import Failure
from cycle_vmss.events import Event
from cycle_vmss.github import ANNOTATIONS_PER_TYPE, GitHubLog, annotations, render_summary, summary_markdown
from cycle_vmss.report import Capacity, InstanceError


def test_summary_has_result_settings_rows_gantt_and_totals():
    skipped = make_row(2, "skipped", reason="deallocated", reimage_start=None, ready_time=None)
    text = summary_markdown(make_report([make_row(0), make_row(1), skipped]))
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
    unhealthy = {"provisioning": "succeeded", "power": "running", "health": "unhealthy"}
    rows = [make_row(0), make_row(1, "failed", ready_time=None, last_states=unhealthy,
                                  error=InstanceError("Timeout", "not ready in 30 min")),
            make_row(2, "not-started", reimage_start=None, reimage_end=None, ready_time=None)]
    report = make_report(rows, "failed", capacity=Capacity(3, 4, 4),
                         failure=Failure("1", "Timeout", "not ready in 30 min", unhealthy))
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
    rows = [make_row(i, "failed", error=InstanceError("Timeout", "late")) for i in range(25)]
    rows += [make_row(100 + i, "skipped", reason="protected from scale-set actions") for i in range(15)]
    lines = annotations(make_report(rows, "failed", warnings=("surge capacity kept: 4 instead of 3",)))
    errors = [l for l in lines if l.startswith("::error")]
    warnings = [l for l in lines if l.startswith("::warning")]
    assert len(errors) == ANNOTATIONS_PER_TYPE and len(warnings) == ANNOTATIONS_PER_TYPE
    assert "16 more failed instances" in errors[-1] and "instance 24" in errors[-1]
    assert "7 more warnings" in warnings[-1]


def test_summary_stays_under_one_mebibyte_for_a_huge_set():
    rows = [make_row(i) for i in range(8000)] + [make_row(8000, "failed", error=InstanceError("X", "y"))]
    text = render_summary(make_report(rows, "failed"))
    assert len(text.encode()) < 1_000_000
    assert "| 8000 `vmss_8000` |" in text  # the instance that needs attention is kept
    assert "more instances are in the report file" in text


def test_log_groups_phases_and_each_instance_and_never_emits_a_stray_command(capsys):
    log = GitHubLog()
    for e in (Event("phase", 0, message="preflight"), Event("phase", 1, message="rolling"),
              Event("started", 2, instance_id="0"), Event("state", 3, "0", data={"provisioning": "updating"}),
              Event("waiting", 4, message="::error::not a command"), Event("done", 5, "0")):
        log.event(e)
    log.finish(make_report([make_row(0)]))
    out = capsys.readouterr().out.splitlines()
    assert [l for l in out if l.startswith("::")] == [
        "::group::Preflight (read only)", "::endgroup::", "::group::Rolling reimage", "::endgroup::",
        "::group::Reimage instance 0 (#1)", "::endgroup::", "::group::Results", "::endgroup::"]
    assert "00:00:03 instance 0: provisioning updating" in out


def test_a_failed_instance_is_out_of_service_until_the_run_ends_and_states_are_said_once():
    row = make_row(1, "failed", ready_time=None, error=InstanceError("NotReady", "late; last states x"))
    report = make_report([row], "failed", failure=Failure("1", "NotReady", "late; last states x", None))
    text = summary_markdown(report)
    assert "1 vmss_1 : crit, i0, 2026-01-01 00:00:10, 2026-01-01 00:20:00" in text
    assert text.count("ast states") == 1 + text.count("| Last states |")
    (error,) = annotations(report)
    assert error.endswith("failed: NotReady: late; last states x.")


def test_instances_outside_the_scope_are_not_warnings():
    # instance-ids: 0 on a three-instance set: 1 and 2 were never asked for, like the pipelines'
    # log (no issue for them); a real skip in scope is still a warning.
    rows = [make_row(0), make_row(1, "skipped", reason="out of scope", reimage_start=None, ready_time=None),
            make_row(2, "skipped", reason="out of scope", reimage_start=None, ready_time=None),
            make_row(3, "skipped", reason="deallocated", reimage_start=None, ready_time=None)]
    lines = annotations(make_report(rows))
    assert lines == ["::warning title=cycle-vmss%3A instance 3::Instance 3 (vmss_3) skipped: deallocated."]
    # The summary's table lists the instances in scope; the others get one line after it.
    summary = summary_markdown(make_report(rows))
    table = [l.split(" | ")[0] for l in summary.splitlines() if l.startswith("| ") and "`vmss_" in l]
    assert table == ["| 0 `vmss_0`", "| 3 `vmss_3`"]
    assert "\n2 instances outside instance-ids left alone: 1, 2.\n" in summary
