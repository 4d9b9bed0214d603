"""The run's pictures: the SVG timeline, the Mermaid chart within Mermaid's limit, and the
`cycle-vmss timeline` command."""

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from cycle_vmss.timeline import MERMAID_LIMIT, main, mermaid_gantt, out_of_service_steps, bars, svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_report(n: int, *, window: int, zones=("1", "2", "3"), failed=(), in_flight=()) -> dict:
    """A run of `n` instances, `window` out of service at a time, each out for 5 to 7 minutes."""
    free = [T0] * window
    rows = []
    for i in range(n):
        start = min(free)
        end = start + timedelta(seconds=300 + (i * 37) % 120)
        free[free.index(start)] = end
        action = "failed" if str(i) in failed else "in-flight" if str(i) in in_flight else "reimaged"
        rows.append({"id": str(i), "name": f"vmss_{i}", "zone": zones[i % len(zones)],
                     "action": action, "reimageStart": iso(start),
                     "reimageEnd": iso(end - timedelta(seconds=60)) if action == "reimaged" else None,
                     "readyTime": iso(end) if action == "reimaged" else None})
    rows.append({"id": str(n), "name": f"vmss_{n}", "zone": zones[0], "action": "skipped",
                 "reimageStart": None, "reimageEnd": None, "readyTime": None})
    end = max(free) + timedelta(seconds=30)
    return {"scaleSet": "vmss-web", "resourceGroup": "rg-web", "result": "failed" if failed else "succeeded",
            "startTime": iso(T0), "endTime": iso(end), "durationSeconds": (end - T0).total_seconds(),
            "plan": {"n0": n + 1, "maxUnavailable": window, "maxInFlight": window, "rMin": n + 1 - window},
            "instances": rows}


def parsed(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert {"width", "height", "viewBox"} <= set(root.attrib)
    return root


def bar_classes(root: ET.Element) -> list[str]:
    return [r.get("class") for r in root.iter(f"{SVG}rect") if r.get("class")]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_a_small_run_has_a_labelled_bar_per_instance_under_its_zone():
    root = parsed(svg(synthetic_report(6, window=2, failed={"4"})))
    labels = texts(root)
    assert "vmss-web in rg-web: failed, 5 reimaged in 19 min 3 s" in labels
    assert [t for t in labels if t.startswith("zone ")] == [
        "zone 1: 2 instances", "zone 2: 2 instances", "zone 3: 2 instances"]
    # zone 1 holds 0 and 3, listed under its title, before zone 2's
    assert labels.index("zone 1: 2 instances") < labels.index("0 vmss_0") < labels.index("3 vmss_3") \
        < labels.index("zone 2: 2 instances") < labels.index("4 vmss_4")
    assert bar_classes(root).count("reimaged") == 5 + 1  # five bars, one legend swatch
    assert bar_classes(root).count("failed") == 1 + 1


def test_the_budget_panel_draws_the_limit_and_the_count_out_of_service():
    report = synthetic_report(6, window=2)
    root = parsed(svg(report))
    assert "max-unavailable 2 (R_min 5 of 7)" in texts(root)
    assert max(level for _, level in out_of_service_steps(bars(report))) == 2
    assert len(list(root.iter(f"{SVG}polygon"))) == 1


def test_a_failed_instance_stays_out_of_service_until_the_run_ends():
    report = synthetic_report(3, window=1, failed={"2"})
    last = bars(report)[-1]
    assert (last.id, last.action, iso(last.end)) == ("2", "failed", report["endTime"])


def test_odd_names_are_escaped():
    report = synthetic_report(2, window=1)
    report["scaleSet"] = "a<b>&c"
    report["instances"][0]["name"] = 'vm"<x>'
    root = parsed(svg(report))
    assert "0 vm\"<x>" in texts(root)
    assert texts(root)[0].startswith("a<b>&c in rg-web")


def test_a_thousand_instances_make_a_small_valid_picture_with_every_bar():
    text = svg(synthetic_report(1000, window=100, failed={"17"}, in_flight={"999"}))
    assert len(text.encode()) < 200_000
    root = parsed(text)
    assert bar_classes(root).count("reimaged") == 998 + 1
    assert [t for t in texts(root) if t.startswith("zone ")] == [
        "zone 1: 334 instances", "zone 2: 333 instances", "zone 3: 333 instances"]


def test_a_run_that_took_nothing_out_says_so():
    report = synthetic_report(0, window=1)
    assert "No instance was taken out of service." in texts(parsed(svg(report)))
    assert mermaid_gantt(report) == ["No instance was taken out of service."]


def test_the_mermaid_chart_has_a_bar_per_instance_for_a_small_run():
    lines = mermaid_gantt(synthetic_report(4, window=2, zones=("1", "2"), failed={"3"}))
    assert lines == [
        "```mermaid", "gantt", "    title Time out of service",
        "    dateFormat YYYY-MM-DD HH:mm:ss", "    axisFormat %H:%M:%S",
        "    section zone 1",
        "    0 vmss_0 : done, i0, 2026-01-01 00:00:00, 2026-01-01 00:05:00",
        "    2 vmss_2 : done, i2, 2026-01-01 00:05:00, 2026-01-01 00:11:14",
        "    section zone 2",
        "    1 vmss_1 : done, i1, 2026-01-01 00:00:00, 2026-01-01 00:05:37",
        "    3 vmss_3 : crit, i3, 2026-01-01 00:05:37, 2026-01-01 00:12:58",  # the run's end
        "```"]


@pytest.mark.parametrize("n", [101, 1000, 5000])
def test_a_large_mermaid_chart_is_grouped_within_mermaids_limit_and_says_so(n):
    lines = mermaid_gantt(synthetic_report(n, window=100, failed={"17"}))
    text = "\n".join(lines) + "\n"
    assert len(text) < MERMAID_LIMIT
    assert lines[0].startswith(f"{n:,} instances were out of service at some point: each bar stands "
                               f"for the instances of a zone that started together")
    grouped = [line for line in lines if " : " in line]
    assert sum(int(line.split()[0]) if line.split()[1] == "instances" else 1 for line in grouped) == n
    assert any(line.split(" : ")[1].startswith("crit, ") for line in grouped)  # 17's group


def test_the_command_writes_the_svg_beside_the_report(tmp_path, capsys):
    report = tmp_path / "run.json"
    report.write_text(json.dumps(synthetic_report(6, window=2)))
    assert main([str(report)]) == 0
    out = tmp_path / "run.svg"
    assert capsys.readouterr().out == f"{out}\n"
    parsed(out.read_text())


@pytest.mark.parametrize("content, error", [
    (None, "cycle-vmss timeline: error: {path}: cannot read it (No such file or directory)"),
    ("{not json", "cycle-vmss timeline: error: {path}: not a run report (not JSON: Expecting "
                  "property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ('{"result": "succeeded"}', "cycle-vmss timeline: error: {path}: not a run report (no "
                                "instances list); expected the JSON that --report-file writes"),
])
def test_a_bad_report_is_one_line_and_exit_2(tmp_path, capsys, content, error):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    assert main([str(path), "-o", str(tmp_path / "out.svg")]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", error.format(path=path) + "\n")
    assert not (tmp_path / "out.svg").exists()
