"""The benchmark harness on a tiny set: `python -m bench` as `make bench` runs it,
with small sizes, must print the table and write one JSON object per case whose figures hold
together (the engine never beats the lower bound, reads stay within the economy rule, the
closed forms of the baselines agree with their simulation)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import model

REPO = Path(__file__).resolve().parents[2]


def test_ideal_is_list_scheduling_and_never_below_the_lower_bound():
    # two slots: 5 | 3 -> slot 2 frees at 3 and takes 4 (ends 7); slot 1 frees at 5 and takes 2
    assert model.ideal_makespan([5, 3, 4, 2], 2) == 7
    assert model.lower_bound([5, 3, 4, 2], 2) == 7
    assert model.ideal_makespan([10, 1, 1], 2) == 10 == model.lower_bound([10, 1, 1], 2)
    d = model.draw_durations(50, 7).in_order([str(i) for i in range(50)])
    for k in (1, 3, 10, 50):
        assert model.ideal_makespan(d, k) >= model.lower_bound(d, k) - 1e-9
    assert model.ideal_makespan(d, 1) == pytest.approx(sum(d))


def test_durations_are_seeded_and_in_range():
    a, b = model.draw_durations(20, 3), model.draw_durations(20, 3)
    assert a == b and a != model.draw_durations(20, 4)
    assert model.draw_durations(5, 3).reimage == {i: a.reimage[i] for i in map(str, range(5))}
    assert all(300 <= r <= 540 for r in a.reimage.values())
    assert all(30 <= h <= 120 for h in a.health.values())


def test_script_closed_form_counts_every_instance_view():
    # 2 instances, 20 s and 31 s out of service, 15 s polls: 2 and 3 polls of 2 GETs each,
    # plus the initial health check of 2 GETs
    fig = model.script_analytic([20.0, 31.0], 2)
    assert fig.makespan == 75 and fig.reads == 2 + 2 * 2 + 3 * 2 and fig.writes == 2


@pytest.mark.slow  # ~7 s: a subprocess, six virtual runs and a real-time HTTPS run
def test_bench_prints_the_table_and_writes_consistent_json(tmp_path):
    out = tmp_path / "bench-results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "6", "--max-unavailable", "1,50%",
         "--https-instances", "4", "--https-reimage-seconds", "0.5", "--https-max-unavailable", "50%",
         "--fleet-sets", "3", "--fleet-instances", "6", "--fleet-max-unavailable", "50%",
         "--large-set-instances", "0",
         "--output", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO)  # bench/ is a top-level folder
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| N | max-unavail. | k | makespan s | LB s | ideal s | makespan/ideal |")
    rows = [line for line in lines if line.startswith("| 6 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "50%"]
    assert any(line.startswith("| 4 instances, 0.5 s reimage") for line in lines)
    assert "Targets:" in proc.stdout

    doc = json.loads(out.read_text())
    virtual = [c for c in doc["cases"] if c["kind"] == "virtual"]
    https = [c for c in doc["cases"] if c["kind"] == "https"]
    assert [(c["n"], c["maxUnavailable"], c["k"]) for c in virtual] == [(6, "1", 1), (6, "50%", 3)]
    for c in virtual:
        e = c["engine"]
        assert e["result"] == "succeeded"
        assert len(c["durations"]["reimageSeconds"]) == 6 and c["seed"] == doc["cases"][0]["seed"]
        assert sorted(c["order"]) == [str(i) for i in range(6)]
        # the ratios can be recomputed from the inputs in the file
        d = [c["durations"]["reimageSeconds"][int(i)] + c["durations"]["healthSeconds"][int(i)]
             for i in c["order"]]
        assert c["idealSeconds"] == pytest.approx(model.ideal_makespan(d, c["k"]), abs=1e-3)
        assert c["lowerBoundSeconds"] == pytest.approx(model.lower_bound(d, c["k"]), abs=1e-3)
        assert e["makespanSeconds"] >= c["lowerBoundSeconds"]
        assert e["makespanSeconds"] >= c["idealSeconds"]
        assert c["makespanOverIdeal"] == pytest.approx(e["makespanSeconds"] / c["idealSeconds"], abs=1e-4)
        assert e["maxNotReady"] <= c["k"]
        # reads: one list per poll plus in-flight operation polls, plus the two preflight GETs
        econ = e["economy"]
        assert econ["ok"], econ
        assert e["reads"] == econ["listPages"] + econ["operationPolls"] + 2
        # a list of one page costs no more than one status: the list alone follows each reimage
        assert econ["operationPolls"] == econ["statusOnlyPasses"] == 0
        assert e["byCall"].get("get_instance_view", 0) == 0
        assert e["writes"] == 6
        # the baselines' closed forms agree with their simulation
        assert c["batch"]["how"] == c["script"]["how"] == "simulated"
        assert c["batch"]["makespanSeconds"] == c["batch"]["analyticMakespanSeconds"]
        assert c["batch"]["reads"] == c["batch"]["analyticReads"]
        assert c["script"]["makespanSeconds"] == c["script"]["analyticMakespanSeconds"]
        assert c["script"]["reads"] == c["script"]["analyticReads"]
        assert c["script"]["byCall"]["get_instance_view"] == c["script"]["reads"]
    (h,) = https
    assert h["engine"]["result"] == "succeeded" and h["k"] == 2
    assert h["engine"]["wallSeconds"] >= h["idealSeconds"] == 1.0
    assert h["engine"]["economy"]["ok"], h["engine"]["economy"]
    assert {t["target"].split(" ")[0] for t in doc["targets"]} >= {"makespan/ideal", "reads:"}
    assert any(t["target"].startswith("the whole bench under") and t["met"] for t in doc["targets"])
    assert "not run" not in proc.stdout and "--full" not in proc.stdout

    (f,) = [c for c in doc["cases"] if c["kind"] == "fleet"]
    assert any(line.startswith("| fleet: 3 sets x 6 in one subscription") for line in lines)
    assert (f["sets"], f["n"], f["k"], f["seeds"]) == (3, 6, 3, [doc["cases"][0]["seed"] + j for j in range(3)])
    for run, limits in ((f["limited"], "azure"), (f["unlimited"], "none")):
        assert run["computeLimits"] == limits and run["succeeded"] == 3
        assert [s["writes"] for s in run["sets"]] == [6, 6, 6]
        assert run["reads"] == sum(s["reads"] for s in run["sets"])
        assert run["throttled"] == sum(run["throttledByBucket"].values())
        assert run["makespanSeconds"] == max(s["makespanSeconds"] for s in run["sets"])
    # the first set has the N=6 case's durations: alone or in the fleet, the same rollout
    assert f["unlimited"]["sets"][0]["makespanSeconds"] == virtual[1]["engine"]["makespanSeconds"]
    assert f["makespanPenalty"] == pytest.approx(
        f["limited"]["makespanSeconds"] / f["unlimited"]["makespanSeconds"], abs=1e-4)
    assert f["limited"]["lowestSubscriptionTokens"] and not f["unlimited"]["lowestSubscriptionTokens"]
