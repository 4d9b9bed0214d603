"""Every rule of SPEC section 4, run by the real engine against the simulator in virtual time."""

from __future__ import annotations

import json
import threading

import pytest

from cycle_vmss import compute
from cycle_vmss.simulator.inprocess import SimulatorComputePort

from .conftest import assert_budget_kept, instance_id, rollout

ZONED6 = {"instances": 6}  # ids 0..5 over zones 1, 2, 3; reimage 3 s + boot 1 s + health 1 s


def started_at(run, iid):
    return next(e.time for e in run.events.of("started") if e.instance_id == iid)


def run_ids(mode, scenario_ids):
    return [instance_id(mode, i) for i in scenario_ids]


# --- the happy path --------------------------------------------------------------------------


def test_default_rollout_reimages_every_instance_within_the_budget(mode):
    run = rollout(ZONED6, mode=mode)
    r = run.report
    assert r["result"] == "succeeded"
    assert r["orchestrationMode"] == mode
    assert "reimaged 6 instances" in r["message"]
    assert [row["action"] for row in r["instances"]] == ["reimaged"] * 6
    assert all(row["reimageStart"] and row["readyTime"] and row["outOfServiceSeconds"] >= 5
               for row in r["instances"])
    h = run.history
    assert h["max_not_ready"] == 1 and h["max_reimages_in_flight"] == 1
    assert_budget_kept(run, r_min=5)
    assert all(len(run.reimages(str(i))) == 1 for i in range(6))
    assert sorted(run.events.ids("done")) == run.ids(*"012345")
    # Unready-free set, window 1: the zone with the most left to do (ties by zone name), then
    # fault domain, id: one per zone in turn.
    assert r["plan"]["order"] == run.events.ids("started") == run.ids(*"012345")
    assert r["requests"]["writes"] == 6 and r["capacity"] == {"before": 6, "during": 6, "after": 6}
    # Each mode through its own APIs: Flexible asks the scale-set VM API once, its list at
    # preflight for protection (a VM resource shows none), the rest through the single-VM
    # APIs; Uniform never asks the single-VM ones.
    paths = [q["path"] for q in run.backend.requests()]
    vmss_vm_api = [p for p in paths if "/virtualMachineScaleSets/vmss-demo/virtualMachines" in p]
    single_vm_api = [p for p in paths if "/providers/Microsoft.Compute/virtualMachines" in p]
    assert (len(vmss_vm_api), bool(single_vm_api)) == (1, True) if mode == "Flexible" else \
        (bool(vmss_vm_api), single_vm_api) == (True, [])
    if mode == "Flexible":
        assert [p.rsplit("/", 2)[-2:] for p in paths if p.endswith("/reimage")] == \
            [[i, "reimage"] for i in run.ids(*"012345")]


def zones_wholly_out(run, zones: dict[str, str]) -> list[tuple[float, str]]:
    """(seconds into the run, zone) whenever, from the simulator's record, no instance of a
    zone was ready: checked at every instant an instance went out of service."""
    h = run.history

    def ready(iid, t):
        return not any(a <= t and (b is None or t < b) for a, b in h["instances"][iid]["not_ready"])
    instants = sorted({a for r in h["instances"].values() for a, _ in r["not_ready"]})
    return [(t - h["start"], z) for t in instants for z in sorted(set(zones.values()))
            if not any(ready(i, t) for i in zones if zones[i] == z)]


@pytest.mark.parametrize("layout, mu, order, emptied", [
    # Six over three zones, two at a time: before, zone 3's two went out together at the end.
    ("123123", "2", "012345", []),
    # Zones of 5, 2 and 1: zone 3's lone instance waits until nothing else is left to start.
    ("11111223", "3", "05126347", ["3"]),
])
def test_zones_are_taken_out_as_outages_happen(layout, mu, order, emptied):
    zones = {str(i): z for i, z in enumerate(layout)}
    run = rollout({"instances": [{"id": i, "zone": z} for i, z in zones.items()]}, max_unavailable=mu)
    assert run.report["result"] == "succeeded"
    assert run.events.ids("started") == list(order)
    out = zones_wholly_out(run, zones)
    assert sorted({z for _, z in out}) == emptied
    # A zone went wholly out only once nothing else was left to start.
    last_start = max(e.time for e in run.events.of("started"))
    assert all(run.start + t >= last_start for t, _ in out)


def test_polling_economy_one_list_per_pass_and_no_per_instance_reads(mode):
    run = rollout({"instances": 250, "page_size": 100}, mode=mode, max_unavailable="25")
    assert run.report["result"] == "succeeded"
    log = run.backend.requests()
    paths = [r["path"] for r in log if r["method"] == "GET"]
    assert not [p for p in paths if p.endswith("/instanceView") or "/virtualMachines/" in p]
    lists = sum(1 for p in paths if p.endswith("/virtualMachines"))
    assert lists % 3 == 0  # every list is whole: 3 pages of 100
    passes = lists // 3
    polls = sum(1 for p in paths if "/operations/" in p)
    assert polls <= 250 * passes  # status of in-flight reimages only, each at most once a pass
    assert run.report["requests"]["reads"] == len(paths)
    assert [r["path"].rsplit("/", 1)[-1] for r in log if r["method"] == "POST"] == ["reimage"] * 250


def test_events_report_state_changes_only_when_they_change():
    run = rollout(ZONED6, poll_interval_seconds="1")
    last: dict = {}
    for e in run.events.of("state"):
        assert last.get(e.instance_id) != e.data
        last[e.instance_id] = e.data
    seen0 = [e.data for e in run.events.of("state") if e.instance_id == "0"]
    assert {"provisioning": "updating", "power": "stopping", "health": None} in seen0
    assert seen0[-1] == {"provisioning": "succeeded", "power": "running", "health": "healthy"}
    waits = [e.message for e in run.events.of("waiting")]
    assert all(a != b for a, b in zip(waits, waits[1:]))


def test_heartbeat_at_least_once_a_minute_of_clock_time():
    run = rollout({"instances": 3, "timings": {"reimage_seconds": 400}}, poll_interval_seconds="300")
    assert run.report["result"] == "succeeded"
    times = [run.start] + [e.time for e in run.events.of("heartbeat")] + [run.clock.now()]
    assert len(times) > 10 and max(b - a for a, b in zip(times, times[1:])) <= 60
    beat = run.events.of("heartbeat")[0].data
    assert set(beat) == {"done", "in_flight", "pending", "ready", "r_min"}


def test_reimage_all_uses_the_reimageall_operation():
    run = rollout({"instances": 2}, reimage_all="true", max_unavailable="1",
                  ignore_availability="true")
    assert run.report["result"] == "succeeded"
    assert all(r["all_disks"] for i in ("0", "1") for r in run.reimages(i))
    assert all(w["path"].endswith("/reimageall") for w in run.writes())


def test_min_ready_seconds_holds_an_instance_until_it_stayed_ready():
    run = rollout({"instances": 3}, min_ready_seconds="30", poll_interval_seconds="5")
    assert run.report["result"] == "succeeded"
    for e in run.events.of("done"):
        ready_at = run.history["instances"][e.instance_id]["not_ready"][-1][1]
        assert e.time - ready_at >= 30
    # the next one waited for it: never two out of service or in the window at once
    starts = [e.time for e in run.events.of("started")]
    dones = [e.time for e in run.events.of("done")]
    assert all(s >= d for s, d in zip(starts[1:], dones))


def test_dry_run_plans_and_writes_nothing(mode):
    run = rollout({"instances": 1}, mode=mode, dry_run="true")
    r = run.report
    assert r["result"] == "dry-run"
    assert run.writes() == []
    assert r["plan"]["surgeTo"] == 2 and r["plan"]["automaticSurge"] == 1
    assert run.events.of("plan")[0].data["order"] == [run.id("0")]
    assert "would reimage 1 instance" in r["message"] and "surge capacity 1 -> 2" in r["message"]


# --- preflight refusals: exit 2, nothing written ---------------------------------------------


@pytest.mark.parametrize("scenario, raw, words", [
    (ZONED6, {"scale_set_name": "vmss-missing"}, ["vmss-missing", "rg-demo", "not found"]),
    (ZONED6, {"resource_group": "rg-other"}, ["vmss-demo", "rg-other", "not found"]),
    # A VM's reimage has no all-disks form: refused before anything is touched.
    ({"orchestration_mode": "Flexible"}, {"reimage_all": "true"},
     ["reimage-all", "Flexible orchestration", "nothing was changed"]),
    ({"orchestration_mode": "Flexible"}, {"instance_ids": "vmss-demo_1, 1"},
     ["instance-ids", "1 is not in", "vmss-demo_0"]),
    ({"rolling_upgrade_in_progress": True}, {}, ["rolling upgrade in progress"]),
    ({"automatic_os_upgrade": True, "os_upgrade_in_progress": True}, {},
     ["automatic OS image upgrade in progress", "wait for it to finish"]),
    ({"health_extension": False}, {}, ["ApplicationHealthLinux", "health-source: none"]),
    ({"health_extension": False}, {"health_source": "extension"},
     ["ApplicationHealthLinux", "ApplicationHealthWindows", "health-source: none"]),
    (ZONED6, {"instance_ids": "1, 7 9"}, ["instance-ids", "7, 9", "are not in"]),
    ({"instances": [{"id": "0"}, {"id": "1", "health": "unhealthy"}, {"id": "2", "health": "unknown"}]},
     {}, ["2 instances", "1 (provisioning succeeded, power running, health unhealthy)",
          "2 (provisioning succeeded, power running, health unknown)", "ignore-initial-health"]),
])
def test_preflight_refusals(scenario, raw, words):
    run = rollout(scenario, **raw)
    r = run.report
    assert r["result"] == "refused"
    for word in words:
        assert word in r["message"]
    assert run.writes() == [] and r["requests"]["writes"] == 0


def test_a_dry_run_is_refused_the_same_way():
    run = rollout({"health_extension": False}, dry_run="true")
    assert run.report["result"] == "refused"


def test_health_source_none_needs_no_extension():
    run = rollout({"instances": 3, "health_extension": False}, health_source="none")
    assert run.report["result"] == "succeeded"
    assert_budget_kept(run, r_min=2)


def test_an_initializing_instance_is_waited_for_at_preflight():
    scenario = {"instances": [{"id": "0"}, {"id": "1"}, {"id": "2", "health": "initializing"}],
                "events": [{"at_seconds": 25, "instance": "2", "health": "healthy"}]}
    run = rollout(scenario)
    assert run.report["result"] == "succeeded"
    assert started_at(run, run.events.ids("started")[0]) - run.start >= 25
    assert any("initializing" in e.message for e in run.events.of("waiting"))


def test_ignore_initial_health_reimages_unready_instances_first():
    scenario = {"instances": [{"id": str(i)} for i in range(5)] + [{"id": "5", "health": "unhealthy"}]}
    run = rollout(scenario, ignore_initial_health="true")
    assert run.report["result"] == "succeeded"
    assert run.events.ids("started")[0] == "5"
    assert run.history["takeouts"][0] == {**run.history["takeouts"][0], "instance": "5", "was_ready": False}
    assert_budget_kept(run, r_min=5)


# How each mode protects an instance: a protection policy (seen in the list, skipped at
# preflight), or a resource lock on the VM (seen only when Azure refuses its reimage with 409
# ScopeLocked: skipped then, not failed).
GUARDED = {"Uniform": ({"protect_from_scale_set_actions": True}, "protected from scale-set actions"),
           "Flexible": ({"locked": True}, "locked")}


def test_skips_are_reported_and_never_touched(mode):
    guard, reason = GUARDED[mode]
    scenario = {"instances": [
        {"id": "0"}, {"id": "1", **guard},
        {"id": "2", "power": "stopped"}, {"id": "3", "power": "deallocated"}, {"id": "4"}, {"id": "5"}]}
    run = rollout(scenario, mode=mode, instance_ids=" ".join(run_ids(mode, "01234")))
    r = run.report
    assert r["result"] == "succeeded"
    rows = {row["id"]: (row["action"], row["reason"]) for row in r["instances"]}
    assert rows == dict(zip(run.ids(*"012345"), [
        ("reimaged", None), ("skipped", reason), ("skipped", "stopped"), ("skipped", "deallocated"),
        ("reimaged", None), ("skipped", "out of scope")]))
    assert all(run.reimages(i) == [] for i in "1235")
    assert r["plan"]["n0"] == 4  # 0, 1 (protected, serving), 4, 5 (out of scope, serving)
    skips = [e for e in run.events.events if e.kind == "skipped"]
    assert sorted(e.instance_id for e in skips if e.instance_id) == run.ids(*"123")
    # The instances outside instance-ids get one line between them, not one each.
    assert [e.message for e in skips if e.instance_id is None] == [
        f"1 instance outside instance-ids left alone: {run.id('5')}"]
    assert "skipped" in r["message"] and reason in r["message"]
    if mode == "Flexible":  # what Azure said about the lock stays in the report
        row1 = next(row for row in r["instances"] if row["id"] == run.id("1"))
        assert row1["error"]["code"] == "ScopeLocked" and "locked" in row1["error"]["message"]
        # 0 is zone 1's only serving instance (3 is deallocated): it goes last.
        assert [w["path"].rsplit("/", 2)[-2] for w in run.writes()] == run.ids("1", "4", "0")


def test_standby_pool_vms_are_skipped_and_serve_nothing():
    """Flexible: a VM parked in the set's standby pool (isVMInStandbyPool) is never touched and
    is not in service, even when it runs healthy: it is not in N0 and never counts as ready."""
    scenario = {"orchestration_mode": "Flexible", "instances": [
        {"id": "0"}, {"id": "1"}, {"id": "2", "standby": True}, {"id": "3", "standby": True,
                                                                  "power": "deallocated"}]}
    run = rollout(scenario, max_unavailable="2")
    r = run.report
    assert r["result"] == "succeeded"
    rows = {row["id"]: (row["action"], row["reason"]) for row in r["instances"]}
    assert rows == {run.id("0"): ("reimaged", None), run.id("1"): ("reimaged", None),
                    run.id("2"): ("skipped", "in standby pool"),
                    run.id("3"): ("skipped", "in standby pool")}
    assert r["plan"]["n0"] == 2 and r["plan"]["rMin"] == 1 and r["plan"]["maxInFlight"] == 2
    assert run.reimages("2") == [] and run.reimages("3") == []
    # Two slots, but R_min 1 of the two serving VMs: one at a time. Had the healthy standby VM
    # counted as ready, both would have gone out together.
    assert run.history["max_reimages_in_flight"] == 1
    assert r["capacity"]["before"] == 2  # standby VMs are not in the capacity either


def test_an_empty_set_has_nothing_to_do():
    run = rollout({"instances": 0})  # refused since issue 6: nothing to do is bad input (exit 2)
    assert run.report["result"] == "refused" and "nothing to reimage" in run.report["message"]
    assert run.writes() == []


def test_only_skipped_instances_means_nothing_to_do_and_no_surge():
    run = rollout({"instances": [{"id": "0", "power": "deallocated"}]})
    assert run.report["result"] == "refused" and run.writes() == []  # issue 6


# --- surge ------------------------------------------------------------------------------------


def test_a_one_instance_set_goes_to_two_and_back(mode):
    run = rollout({"instances": 1}, mode=mode)
    r = run.report
    assert r["result"] == "succeeded"
    assert r["capacity"] == {"before": 1, "during": 2, "after": 1}
    assert [c["capacity"] for c in run.history["capacity"]] == [1, 2, 1]
    new = run.history["instances"][run.id("1")]
    assert new["reimages"] == [] and new["deleted"] is not None  # fresh, never reimaged, removed
    assert_budget_kept(run, r_min=1)  # one instance was always ready
    assert [e.data for e in run.events.of("capacity")] == [{"from": 1, "to": 2}, {"from": 2, "to": 1}]


def test_configured_surge_widens_the_window_and_is_removed_after(mode):
    run = rollout({"instances": 6, "timings": {"reimage_seconds": 30}}, mode=mode, max_surge="2")
    r = run.report
    assert r["result"] == "succeeded"
    assert r["plan"]["maxInFlight"] == 3 and r["plan"]["surgeTo"] == 8
    assert run.history["max_reimages_in_flight"] == 3
    assert_budget_kept(run, r_min=5)
    assert [c["capacity"] for c in run.history["capacity"]] == [6, 8, 6]
    assert all(run.history["instances"][i]["deleted"] for i in run.ids("6", "7"))
    assert all(run.reimages(i) == [] for i in ("6", "7"))
    # removed by the scale set's batch delete, naming them as the mode names instances
    assert [w["path"].endswith("/virtualMachineScaleSets/vmss-demo/delete")
            for w in run.writes() if w["method"] == "POST" and w["path"].endswith("/delete")] == [True]


# --- failures -----------------------------------------------------------------------------------


def test_a_failed_reimage_stops_new_starts_and_names_instance_code_and_states(mode):
    scenario = {"instances": [{"id": str(i), "zone": "1"} for i in range(6)]}
    scenario["instances"][1] = {"id": "1", "zone": "1", "on_reimage": "fail",
                                "error_code": "OSProvisioningTimedOut"}
    run = rollout(scenario, mode=mode, max_unavailable="2", max_surge="1")
    r = run.report
    assert r["result"] == "failed"
    assert r["failure"]["instanceId"] == run.id("1") and r["failure"]["code"] == "OSProvisioningTimedOut"
    assert r["failure"]["states"] == {"provisioning": "failed", "power": "running", "health": "unknown"}
    assert "OSProvisioningTimedOut" in r["message"] and f"instance {run.id('1')}" in r["message"]
    failed_at = run.events.of("failed")[0].time
    assert all(e.time <= failed_at for e in run.events.of("started"))
    # in-flight ones were watched to the end
    assert {row["action"] for row in r["instances"] if row["id"] in run.ids("0", "2")} == {"reimaged"}
    rows = {row["id"]: row for row in r["instances"]}
    assert rows[run.id("1")]["action"] == "failed"
    assert rows[run.id("1")]["error"]["code"] == "OSProvisioningTimedOut"
    assert rows[run.id("5")]["action"] == "not-started"
    # the surge stays and the report says so
    assert r["capacity"]["after"] == 7 and run.history["capacity"][-1]["capacity"] == 7
    assert any("capacity stays at 7" in w for w in r["warnings"])


def test_an_instance_never_healthy_times_out():
    scenario = {"instances": [{"id": "0"}, {"id": "1", "on_reimage": "never-healthy"}, {"id": "2"}]}
    run = rollout(scenario, timeout_minutes="2", poll_interval_seconds="10")
    r = run.report
    assert r["result"] == "failed"
    assert r["failure"]["instanceId"] == "1" and "not done within 2 min of its start" in r["message"]
    assert "health unhealthy" in r["message"]
    assert run.events.ids("started") == ["0", "1"]  # nothing after the failing one
    assert 120 <= run.events.of("failed")[0].time - started_at(run, "1") < 130


def test_a_run_blocked_by_other_unready_instances_fails_after_timeout():
    scenario = {"instances": [{"id": str(i)} for i in range(5)] + [{"id": "5", "health": "unhealthy"}]}
    run = rollout(scenario, instance_ids="0,1,2,3,4", timeout_minutes="3")
    r = run.report
    assert r["result"] == "failed"
    assert r["failure"]["code"] == "Blocked" and "5" in r["failure"]["message"]
    assert run.writes() == []
    assert run.clock.now() - run.start >= 180
    assert any(e.message.startswith("blocked") for e in run.events.of("waiting"))


def test_a_block_that_clears_in_time_does_not_fail():
    scenario = {"instances": [{"id": str(i)} for i in range(6)],
                "events": [{"at_seconds": 1, "instance": "5", "health": "unhealthy", "for_seconds": 100}]}
    run = rollout(scenario, instance_ids="0,1,2,3,4", timeout_minutes="3")
    assert run.report["result"] == "succeeded"
    assert_budget_kept(run, r_min=5)


# --- others acting on the set -------------------------------------------------------------------


def test_an_instance_removed_by_someone_else_is_reported_removed(mode):
    scenario = {"instances": 6, "events": [{"at_seconds": 12, "delete_instance": "4"}]}
    run = rollout(scenario, mode=mode)
    r = run.report
    assert r["result"] == "succeeded" and "1 removed" in r["message"]
    assert {row["id"]: row["action"] for row in r["instances"]}[run.id("4")] == "removed"
    assert run.events.ids("removed") == [run.id("4")]
    assert run.reimages("4") == []


def test_an_in_flight_instance_removed_is_not_a_failure():
    scenario = {"instances": 3, "events": [{"at_seconds": 1, "delete_instance": "0"}]}
    run = rollout(scenario, ignore_availability="false")
    assert run.report["result"] == "succeeded"
    assert {row["id"]: row["action"] for row in run.report["instances"]}["0"] == "removed"


def test_instances_added_by_others_are_left_alone():
    scenario = {"instances": 4, "events": [{"at_seconds": 5, "add_instances": 2}]}
    run = rollout(scenario)
    assert run.report["result"] == "succeeded"
    assert [row["id"] for row in run.report["instances"]] == ["0", "1", "2", "3"]
    assert run.reimages("4") == [] and run.reimages("5") == []
    assert run.history["instances"]["4"]["deleted"] is None


# --- conflicts, unknown outcomes, throttling ---------------------------------------------------


class BusyOnce(SimulatorComputePort):
    """Azure answers 409 Conflict to the first reimage request of instance 1."""

    refused: list[str] = []

    def begin_reimage(self, instance_id, *, all_disks=False):
        if instance_id == "1" and "1" not in self.refused:
            self.refused.append("1")
            raise compute.Conflict("(Conflict) Another operation on this or a dependent resource "
                                   "is in progress.", code="Conflict", status=409)
        return super().begin_reimage(instance_id, all_disks=all_disks)


def test_a_409_conflict_is_not_a_start_and_is_asked_again():
    BusyOnce.refused = []
    run = rollout({"instances": 3}, port_class=BusyOnce)
    assert run.report["result"] == "succeeded"
    assert BusyOnce.refused == ["1"] and len(run.reimages("1")) == 1
    assert any("refused the reimage for now" in e.message for e in run.events.of("waiting"))


class LostAnswer(SimulatorComputePort):
    """The reimage of instance 1 is accepted by Azure, but the answer never arrives."""

    def begin_reimage(self, instance_id, *, all_disks=False):
        op = super().begin_reimage(instance_id, all_disks=all_disks)
        if instance_id == "1":
            raise compute.AzureError("connection reset by peer", status=None)
        return op


def test_an_unknown_outcome_is_never_reimaged_twice():
    run = rollout({"instances": 3}, port_class=LostAnswer, poll_interval_seconds="1")
    r = run.report
    assert r["result"] == "failed"
    assert r["failure"]["instanceId"] == "1" and "outcome is unknown" in r["message"]
    assert len(run.reimages("1")) == 1
    assert run.events.ids("started") == ["0"]


def test_throttled_reads_and_writes_are_absorbed_and_counted():
    scenario = {"instances": 6, "faults": {"throttle_reads_every": 4, "throttle_writes_every": 3,
                                           "retry_after_seconds": 2}}
    run = rollout(scenario)
    r = run.report
    assert r["result"] == "succeeded" and r["requests"]["throttled"] > 0
    assert all(len(run.reimages(str(i))) == 1 for i in range(6))


def test_a_list_throttled_on_its_last_page_every_time_still_finishes(mode):
    # 3 pages, every 3rd read throttled for 20 s, polled every 30 s: the list's 3rd read is its
    # last page each time. Read again from its first page, the list never finished (the run was
    # refused at preflight); resumed at the throttled page, it succeeds.
    run = rollout({"instances": 12, "page_size": 5, "timings": {"reimage_seconds": 30},
                   "faults": {"throttle_reads_every": 3, "retry_after_seconds": 20}},
                  mode=mode, poll_interval_seconds="30", timeout_minutes="5", max_unavailable="4")
    assert run.report["result"] == "succeeded", run.report["message"]
    assert all(len(run.reimages(str(i))) == 1 for i in range(12))


# --- cancellation --------------------------------------------------------------------------------


def test_cancel_starts_nothing_new_and_lists_in_flight(mode):
    cancelled = threading.Event()
    fourth = run_ids(mode, "4")[0]

    def on(event):
        if event.kind == "started" and event.instance_id == fourth:
            cancelled.set()

    run = rollout({"instances": 9, "timings": {"reimage_seconds": 60}}, mode=mode, listener=on,
                  cancelled=cancelled, max_unavailable="3")
    r = run.report
    assert r["result"] == "cancelled"
    actions = {row["id"]: row["action"] for row in r["instances"]}
    assert actions[fourth] == "in-flight" and fourth in r["message"]
    assert list(actions.values()).count("not-started") >= 4
    assert run.events.ids("started")[-1] == fourth
    assert run.clock.now() - run.events.of("started")[-1].time <= 3


# --- the report and exit codes ------------------------------------------------------------------


class NotAllowed(SimulatorComputePort):
    def begin_reimage(self, instance_id, *, all_disks=False):
        raise compute.Forbidden("(AuthorizationFailed) The client does not have authorization to "
                                "perform action 'Microsoft.Compute/virtualMachineScaleSets/"
                                "virtualMachines/reimage/action'", code="AuthorizationFailed", status=403)


def test_no_permission_to_reimage_on_the_first_write_changes_nothing():
    run = rollout({"instances": 3}, port_class=NotAllowed)
    r = run.report
    assert r["result"] == "refused"
    assert "AuthorizationFailed" in r["message"] and "nothing was changed" in r["message"]


def test_report_has_the_documented_shape():
    r = rollout({"instances": 3}).report
    assert set(r) == {"tool", "version", "schemaVersion", "subscriptionId", "resourceGroup",
                      "scaleSet", "orchestrationMode", "settings", "startTime", "endTime",
                      "durationSeconds", "result", "message", "failure", "plan", "capacity",
                      "requests", "warnings", "instances", "continueWith", "automaticRepairs"}
    assert set(r["plan"]) >= {"n0", "maxUnavailable", "maxSurge", "rMin", "maxInFlight", "order", "surgeTo"}
    assert set(r["instances"][0]) == {"id", "name", "zone", "faultDomain", "action", "reason",
                                      "reimageStart", "reimageEnd", "readyTime", "reimageSeconds",
                                      "outOfServiceSeconds", "lastStates", "error", "modelUpgraded"}
    row = r["instances"][0]
    assert row["name"] == "vmss-demo_0" and row["reimageStart"].endswith("Z")
    assert row["lastStates"] == {"provisioning": "succeeded", "power": "running", "health": "healthy"}
    assert r["settings"]["maxUnavailable"] == "1" and r["subscriptionId"]
    json.dumps(r)  # plain JSON all the way down


def test_heartbeat_also_while_the_surge_is_created():
    run = rollout({"instances": 1, "timings": {"create_seconds": 400}}, poll_interval_seconds="300")
    assert run.report["result"] == "succeeded"
    rolling = next(e.time for e in run.events.of("phase") if e.message == "rolling")
    beats = [run.start] + [e.time for e in run.events.of("heartbeat") if e.time <= rolling] + [rolling]
    assert rolling - run.start >= 400 and max(b - a for a, b in zip(beats, beats[1:])) <= 60


def test_cancel_during_the_surge_leaves_a_warning_about_capacity():
    cancelled = threading.Event()
    run = rollout({"instances": 1}, cancelled=cancelled,
                  listener=lambda e: e.kind == "capacity" and cancelled.set())
    r = run.report
    assert r["result"] == "cancelled"
    assert r["capacity"]["after"] == 2 and any("capacity stays at 2" in w for w in r["warnings"])
    assert run.events.ids("started") == []
