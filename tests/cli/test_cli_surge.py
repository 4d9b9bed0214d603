"""The surge where Azure is unkind (issue 17): overprovisioning, reused instance ids and a
scale-out that fails, through the CLI over HTTPS and the real SDK. What is asserted comes from
the simulator's own record: which instances were deleted and by whom, the capacity and the
instance count at the end, and every ready instance taken out with R_min others ready."""

from __future__ import annotations

import json

import pytest

from .conftest import TIMINGS, arm_requests, assert_no_forbidden_calls, reimage_posts, run_cli

pytestmark = pytest.mark.slow  # each run waits on the simulator's real-time timings


def settled(sim) -> tuple[int, list[str]]:
    """The set's capacity and the ids of its instances now."""
    history = sim.history()["instances"]
    return sim.backend.capacity, sorted(i for i, r in history.items() if r["deleted"] is None)


def deleted_by_the_run(sim) -> set[str]:
    return {i for i, r in sim.history()["instances"].items() if r.get("deleted_by") == "request"}


def assert_availability_kept(sim, report: dict) -> None:
    for takeout in sim.history()["takeouts"]:
        if takeout["was_ready"]:
            assert takeout["others_ready"] >= report["plan"]["rMin"], takeout


def test_an_overprovisioned_surge_deletes_only_its_own_instances(simulate, tmp_path):
    # Ids 1 and 2 are freed before the run: the surge's instances and Azure's extras reuse them.
    sim = simulate({"instances": 6, "zones": [], "overprovision": True, "reuse_instance_ids": True,
                    "events": [{"at_seconds": 0, "delete_instance": "1"},
                               {"at_seconds": 0, "delete_instance": "2"}],
                    "timings": {**TIMINGS, "overprovision_delete_seconds": 1.5}})
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--max-surge", "2", "--report-file", str(report_file))

    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    history = sim.history()["instances"]
    new = {i for i, r in history.items() if r.get("created_by") == "capacity"}
    by_azure = {i for i in new if history[i].get("deleted_by") == "overprovision"}
    assert len(new) == 3 and len(by_azure) == 1  # 2 asked for, 1 extra (20%, at least 1) taken back
    assert {"1", "2"} <= new  # freed ids reused by the scale-out
    # the run deleted exactly the two Azure kept, never one of Azure's extras or an original
    assert deleted_by_the_run(sim) == new - by_azure
    assert settled(sim) == (4, ["0", "3", "4", "5"])
    assert report["capacity"] == {"before": 4, "during": 6, "after": 4}
    assert sorted(reimage_posts(sim)) == ["0", "3", "4", "5"]  # never a surge instance
    assert_availability_kept(sim, report)
    assert_no_forbidden_calls(sim)


@pytest.mark.parametrize("error, said", [
    ("AllocationFailed", "AllocationFailed: Allocation failed."),
    ("quota", "exceeding approved Total Regional Cores quota")])
def test_a_failing_scale_out_is_put_back_and_nothing_is_reimaged(simulate, tmp_path, error, said):
    sim = simulate({"instances": 3, "scale_out_error": error})
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--max-surge", "1", "--report-file", str(report_file))

    assert done.returncode == 2, done.stderr
    report = json.loads(report_file.read_text())
    assert report["result"] == "refused"
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, done.stderr
    assert "raising the capacity from 3 to 4 for the surge failed" in lines[0] and said in lines[0]
    assert "the capacity is back at 3 and no instance was reimaged" in lines[0]
    assert "or run with max-surge 0" in lines[0]
    assert reimage_posts(sim) == []
    assert settled(sim) == (3, ["0", "1", "2"])
    # AllocationFailed left a failed instance: the run deleted it, and nothing else
    history = sim.history()["instances"]
    assert all(history[i]["created_by"] == "capacity" for i in deleted_by_the_run(sim))
    assert len(deleted_by_the_run(sim)) == (1 if error == "AllocationFailed" else 0)
    patches = [r["status"] for r in arm_requests(sim) if r["method"] == "PATCH"]
    assert patches == ([200] if error == "AllocationFailed" else [409])
