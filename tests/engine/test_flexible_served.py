"""Rollouts on sets as Azure serves them (issue 17): protected instances on both kinds of set,
and a Flexible set whose VMs have random names and whose VM list leaves vmHealth out."""

from __future__ import annotations

import re

from cycle_vmss.simulator.backend import Backend

from .conftest import NAME, assert_budget_kept, rollout


def test_a_protected_instance_is_skipped_and_never_asked_to_reimage(mode):
    run = rollout({"instances": [{"id": "0"}, {"id": "1", "protect_from_scale_set_actions": True},
                                 {"id": "2"}]}, mode=mode)

    rows = {row["id"]: row for row in run.report["instances"]}
    assert run.report["result"] == "succeeded"
    assert (rows[run.id("1")]["action"], rows[run.id("1")]["reason"]) == (
        "skipped", "protected from scale-set actions")
    assert [rows[i]["action"] for i in run.ids("0", "2")] == ["reimaged", "reimaged"]
    # Azure would have accepted its reimage: the run never asked.
    assert not [r for r in run.writes() if run.id("1") in r["path"].split("/")]
    assert run.reimages("1") == []
    assert_budget_kept(run, r_min=2)  # the protected instance serves: N0 = 3


def test_a_flexible_list_without_health_reads_only_the_in_flight_vms_views():
    run = rollout({"instances": 4, "flexible_vm_names": "guid", "flexible_list_omits_health": True,
                   "timings": {"reimage_seconds": 60, "boot_seconds": 0, "health_seconds": 20}},
                  mode="Flexible")

    report = run.report
    names = [row["id"] for row in report["instances"]]
    assert report["result"] == "succeeded"
    assert all(re.fullmatch(rf"{NAME}_[0-9a-f]{{8}}", n) for n in names) and len(names) == 4
    assert [row["action"] for row in report["instances"]] == ["reimaged"] * 4
    assert_budget_kept(run, r_min=3)
    # Each VM is done only once it is healthy again (its own instance view said so).
    started = {e.instance_id: e.time for e in run.events.of("started")}
    done = {e.instance_id: e.time for e in run.events.of("done")}
    history = run.history["instances"]
    assert all(done[n] >= history[n]["not_ready"][-1][1] for n in names)
    # The instance views read are those of VMs in flight, each while it was.
    views = [(r["path"].split("/")[-2], r["time"]) for r in run.backend.requests()
             if r["path"].endswith("/instanceView")]
    assert views and {vm for vm, _ in views} <= set(names)
    assert all(started[vm] <= t <= done[vm] for vm, t in views)
    # ... and only once the list showed its reimage over: while it updates, health tells nothing
    assert all(t >= history[vm]["reimages"][-1]["end"] for vm, t in views)
    assert len(views) < 4 * len(done)  # a few passes each, never the whole set


def test_guid_names_are_the_ids_in_instance_ids_and_the_report():
    scenario = {"orchestration_mode": "Flexible", "flexible_vm_names": "guid", "instances": 3}
    names = sorted(Backend(scenario).history()["instances"])  # the same seed draws the same names

    run = rollout(scenario, instance_ids=f"{names[2]}, {names[0]}")

    rows = {row["id"]: (row["action"], row["reason"]) for row in run.report["instances"]}
    assert rows == {names[0]: ("reimaged", None), names[1]: ("skipped", "out of scope"),
                    names[2]: ("reimaged", None)}
    assert sorted(e.instance_id for e in run.events.of("done")) == [names[0], names[2]]
