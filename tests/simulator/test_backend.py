"""The simulator backend's state machine, in virtual time, through the snapshots it answers
(their ARM bodies: test_bodies.py; the request faults: test_faults.py)."""

import random

import pytest

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend, OperationSnapshot
from cycle_vmss.simulator.errors import ArmError

RG, NAME = "rg-demo", "vmss-demo"


def make(scenario=None):
    clock = VirtualClock()
    return Backend(scenario, clock), clock


def at(backend, clock, offset):
    clock.advance_to(backend.start + offset)


def states(backend, instance_id):
    vm = backend.get_instance(RG, NAME, instance_id)
    return vm.provisioning, vm.power, vm.health


def ids(backend):
    page, _ = backend.list_instances(RG, NAME)
    return [vm.id for vm in page]


def status(backend, op_id):
    return backend.operation_status(op_id).status


def arm_error(fn, *args, **kwargs) -> ArmError:
    with pytest.raises(ArmError) as info:
        fn(*args, **kwargs)
    return info.value


# --- snapshots ----------------------------------------------------------------------------------

def test_an_instance_keeps_its_snapshot_until_something_shown_changes():
    backend, clock = make({"instances": 3, "timings": {"reimage_seconds": 4, "boot_seconds": 2,
                                                        "health_seconds": 3}})
    first, _ = backend.list_instances(RG, NAME)
    clock.sleep(30)
    again, _ = backend.list_instances(RG, NAME)
    assert all(a is b for a, b in zip(first, again))  # nothing changed: the same snapshots
    assert first[1].health_time == backend.start  # when health last changed, not when listed

    backend.reimage(RG, NAME, "1")
    changed, _ = backend.list_instances(RG, NAME)
    assert changed[0] is first[0] and changed[2] is first[2]
    assert (changed[1].provisioning, changed[1].power, changed[1].health) == ("updating", "stopping", None)
    assert changed[1].rev > max(vm.rev for vm in first)  # a new rev, never used before
    assert first[1].provisioning == "succeeded"  # a snapshot handed out never changes
    clock.sleep(9)
    healthy = backend.get_instance(RG, NAME, "1")
    assert healthy.health == "healthy" and healthy.health_time == clock.now()
    assert healthy.provisioning_time == backend.start + 30 + 6


# --- the reimage sequence ---------------------------------------------------------------------

def test_reimage_moves_through_azures_states_at_exact_times():
    backend, clock = make({"timings": {"reimage_seconds": 4, "boot_seconds": 2, "health_seconds": 3}})
    op = backend.reimage(RG, NAME, "1")
    expected = [
        (0, ("updating", "stopping", None), "InProgress"),
        (1.999, ("updating", "stopping", None), "InProgress"),
        (2, ("updating", "stopped", None), "InProgress"),
        (4, ("updating", "starting", None), "InProgress"),
        (5.999, ("updating", "starting", None), "InProgress"),
        (6, ("succeeded", "running", "initializing"), "Succeeded"),
        (8.999, ("succeeded", "running", "initializing"), "Succeeded"),
        (9, ("succeeded", "running", "healthy"), "Succeeded"),
    ]
    for offset, state, op_status in expected:
        at(backend, clock, offset)
        assert states(backend, "1") == state, offset
        assert status(backend, op) == op_status, offset
    assert backend.operation_status(op) == OperationSnapshot(op, "Succeeded", backend.start,
                                                             backend.start + 6)
    assert states(backend, "0") == ("succeeded", "running", "healthy")  # others untouched


def test_per_instance_timings_apply():
    backend, clock = make({"instances": [{"timings": {"reimage_seconds": 10, "boot_seconds": 0}}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 9.9)
    assert status(backend, op) == "InProgress"
    at(backend, clock, 10)
    assert backend.operation_status(op).end == backend.start + 10


def test_failing_reimage_ends_failed_with_the_scenario_error_code():
    backend, clock = make({"instances": [{"on_reimage": "fail", "error_code": "OSProvisioningTimedOut"}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 3.9)
    assert status(backend, op) == "InProgress"
    at(backend, clock, 60)
    failed = backend.operation_status(op)
    assert failed.status == "Failed" and failed.end == backend.start + 4
    assert failed.error_code == "OSProvisioningTimedOut" and failed.error_message
    vm = backend.get_instance(RG, NAME, "0")
    assert (vm.provisioning, vm.error_code) == ("failed", "OSProvisioningTimedOut")
    assert backend.history()["instances"]["0"]["reimages"][0]["status"] == "Failed"
    assert backend.history()["instances"]["0"]["not_ready"] == [[backend.start, None]]


def test_never_healthy_succeeds_but_ends_unhealthy():
    backend, clock = make({"instances": [{"on_reimage": "never-healthy"}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 4)
    assert status(backend, op) == "Succeeded"
    assert states(backend, "0") == ("succeeded", "running", "initializing")
    at(backend, clock, 500)
    assert states(backend, "0") == ("succeeded", "running", "unhealthy")


def test_reimage_all_disks_is_recorded():
    backend, clock = make()
    backend.reimage(RG, NAME, "2", all_disks=True)
    at(backend, clock, 10)
    assert backend.history()["instances"]["2"]["reimages"][0]["all_disks"] is True


def test_second_reimage_of_a_busy_instance_is_409_conflict():
    backend, clock = make()
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 2)
    error = arm_error(backend.reimage, RG, NAME, "0")
    assert (error.status, error.code) == (409, "Conflict")
    assert op in error.message
    assert error.body() == {"error": {"code": "Conflict", "message": error.message}}
    backend.reimage(RG, NAME, "1")  # another instance is fine
    at(backend, clock, 4)  # operation finished (health still initializing): accepted again
    backend.reimage(RG, NAME, "0")
    assert len(backend.history()["instances"]["0"]["reimages"]) == 2


def test_protection_blocks_the_scale_sets_actions_not_a_single_instance_reimage():
    backend, clock = make({"instances": [{"protect_from_scale_set_actions": True}, {}]})
    error = arm_error(backend.reimage_set, RG, NAME, ["0", "1"])
    assert (error.status, error.code) == (409, "OperationNotAllowed")
    assert "protected from scale set actions" in error.message and f"{NAME}_0" in error.message
    backend.reimage_set(RG, NAME, None)  # every instance: the protected one is left out
    assert backend.history()["whole_set_reimage_calls"][0]["instances"] == ["1"]
    assert backend.history()["instances"]["0"]["reimages"] == []
    # Azure does not block a user's reimage of one protected instance: a tool must skip it.
    backend.reimage(RG, NAME, "0")
    assert len(backend.history()["instances"]["0"]["reimages"]) == 1


def test_stopped_and_deallocated_instances_stay_so():
    backend, clock = make({"instances": [{"power": "stopped"}, {"power": "deallocated"}]})
    assert states(backend, "0") == ("succeeded", "stopped", None)
    ops = [backend.reimage(RG, NAME, "0"), backend.reimage(RG, NAME, "1")]
    at(backend, clock, 1.5)
    assert states(backend, "1") == ("updating", "deallocated", None)
    at(backend, clock, 3)
    assert [status(backend, op) for op in ops] == ["Succeeded", "Succeeded"]
    at(backend, clock, 100)
    assert states(backend, "0") == ("succeeded", "stopped", None)
    assert states(backend, "1") == ("succeeded", "deallocated", None)


# --- not found ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rg, name", [(RG, "nope"), ("rg-other", NAME)])
def test_missing_scale_set_or_group_is_resource_not_found_naming_both(rg, name):
    backend, _ = make()
    for verb in (backend.get_scale_set, backend.get_scale_set_instance_view, backend.latest_rolling_upgrade):
        error = arm_error(verb, rg, name)
        assert (error.status, error.code) == (404, "ResourceNotFound")
        assert error.message.startswith(
            f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource group "
            f"'{rg}' was not found.")
    assert arm_error(backend.list_instances, rg, name).code == "ResourceNotFound"
    assert arm_error(backend.reimage, rg, name, "0").code == "ResourceNotFound"


def test_names_compare_case_insensitively_like_arm():
    backend, _ = make()
    assert backend.get_scale_set(RG.upper(), NAME.upper()).capacity == 6


def test_missing_instance_and_operation_are_not_found():
    backend, _ = make()
    for verb in (backend.get_instance, backend.reimage):
        error = arm_error(verb, RG, NAME, "99")
        assert (error.status, error.code) == (404, "NotFound")
        assert error.message == "The entity was not found in this Azure location."
    assert arm_error(backend.operation_status, "no-such-op").status == 404


def test_rolling_upgrade_is_not_found_unless_the_scenario_says_one_runs():
    backend, _ = make()
    assert arm_error(backend.latest_rolling_upgrade, RG, NAME).code == "NotFound"
    backend, _ = make({"rolling_upgrade_in_progress": True})
    assert backend.latest_rolling_upgrade(RG, NAME).instance_count == 6


# --- listing --------------------------------------------------------------------------------------

def test_list_pages_by_page_size_in_numeric_id_order():
    backend, _ = make({"page_size": 2, "instances": [{"id": str(i)} for i in (10, 2, 9, 0, 1)]})
    pages, after = [], None
    while True:
        page, after = backend.list_instances(RG, NAME, after=after)
        pages.append([vm.id for vm in page])
        if after is None:
            break
    assert pages == [["0", "1"], ["2", "9"], ["10"]]
    assert backend.list_instances(RG, NAME, after="9")[1] is None


def test_an_instance_deleted_between_two_pages_does_not_hide_another():
    # The page token names the last instance listed, so deleting an instance of the first page
    # while a client reads the second does not shift the second page past an instance.
    backend, _ = make({"page_size": 2, "instances": 5, "timings": {"delete_seconds": 0}})
    first, after = backend.list_instances(RG, NAME)
    assert [vm.id for vm in first] == ["0", "1"] and after == "1"
    backend.delete_instances(RG, NAME, ["0"])
    listed = [vm.id for vm in first]
    while after is not None:
        page, after = backend.list_instances(RG, NAME, after=after)
        listed += [vm.id for vm in page]
    assert listed == ["0", "1", "2", "3", "4"]


def test_scale_set_instance_view_shows_every_instance():
    backend, _ = make({"instances": 3})
    backend.reimage(RG, NAME, "0")
    scale_set, vms = backend.get_scale_set_instance_view(RG, NAME)
    assert scale_set.capacity == 3
    assert sorted(vm.provisioning for vm in vms) == ["succeeded", "succeeded", "updating"]
    flexible, _ = make({"orchestration_mode": "Flexible"})
    assert arm_error(flexible.get_scale_set_instance_view, RG, NAME).status == 400


# --- capacity and deletes -----------------------------------------------------------------------

def test_capacity_increase_creates_fresh_ids_continuing_the_max():
    backend, clock = make({"instances": [{"id": "0"}, {"id": "5"}], "zones": ["1", "2"]})
    scale_set, op = backend.update_scale_set(RG, NAME, {"sku": {"capacity": 4}})
    assert scale_set.capacity == 4 and scale_set.updating
    assert ids(backend) == ["0", "5", "6", "7"]
    assert states(backend, "6") == ("creating", "starting", None)
    assert arm_error(backend.reimage, RG, NAME, "6").code == "Conflict"  # busy being created
    assert {backend.get_instance(RG, NAME, i).zone for i in ("6", "7")} == {"1", "2"}
    at(backend, clock, 2.9)
    assert status(backend, op) == "InProgress"
    at(backend, clock, 3)
    assert status(backend, op) == "Succeeded"
    assert states(backend, "7") == ("succeeded", "running", "initializing")
    assert not backend.get_scale_set(RG, NAME).updating
    at(backend, clock, 4)
    assert states(backend, "7") == ("succeeded", "running", "healthy")
    history = backend.history()
    assert history["instances"]["6"]["created"] == backend.start
    assert history["instances"]["6"]["not_ready"] == [[backend.start, backend.start + 4]]
    assert [c["capacity"] for c in history["capacity"]] == [2, 4]


def test_put_with_the_same_capacity_succeeds_at_once():
    backend, _ = make()
    _, op = backend.put_scale_set(RG, NAME, {"sku": {"capacity": 6}})
    assert status(backend, op) == "Succeeded" and ids(backend) == [str(i) for i in range(6)]
    assert arm_error(backend.update_scale_set, RG, NAME, {"sku": {"capacity": -1}}).status == 400


def test_capacity_decrease_deletes_the_highest_ids():
    backend, clock = make({"instances": 5})
    _, op = backend.update_scale_set(RG, NAME, {"sku": {"capacity": 3}})
    assert states(backend, "4")[0] == "deleting" and states(backend, "3")[0] == "deleting"
    at(backend, clock, 1)
    assert ids(backend) == ["0", "1", "2"] and status(backend, op) == "Succeeded"
    assert backend.history()["instances"]["4"]["deleted"] == backend.start + 1


def test_delete_instances_removes_the_named_ones_after_delete_seconds():
    backend, clock = make({"timings": {"delete_seconds": 2}})
    op = backend.delete_instances(RG, NAME, ["1", "3"])
    assert backend.get_scale_set(RG, NAME).capacity == 4
    at(backend, clock, 1)
    assert states(backend, "1")[0] == "deleting" and status(backend, op) == "InProgress"
    at(backend, clock, 2)
    assert ids(backend) == ["0", "2", "4", "5"]
    assert status(backend, op) == "Succeeded"
    assert arm_error(backend.get_instance, RG, NAME, "1").code == "NotFound"
    error = arm_error(backend.delete_instances, RG, NAME, ["42"])
    assert (error.status, error.code) == (400, "InvalidParameter")


def test_delete_preempts_a_reimage_in_flight():
    backend, clock = make()
    op = backend.reimage(RG, NAME, "2")
    at(backend, clock, 1)
    backend.delete_instances(RG, NAME, ["2"])
    preempted = backend.operation_status(op)
    assert (preempted.status, preempted.error_code) == ("Canceled", "OperationPreempted")
    assert arm_error(backend.reimage, RG, NAME, "2").code == "Conflict"


# --- timed events ---------------------------------------------------------------------------------

def test_timed_events_change_health_delete_and_add():
    backend, clock = make({"events": [
        {"at_seconds": 5, "instance": "2", "health": "unhealthy", "for_seconds": 10},
        {"at_seconds": 8, "delete_instance": "3"},
        {"at_seconds": 9, "add_instances": 1},
    ]})
    at(backend, clock, 4.9)
    assert states(backend, "2")[2] == "healthy"
    at(backend, clock, 5)
    assert states(backend, "2")[2] == "unhealthy"
    at(backend, clock, 9)
    assert "3" not in ids(backend) and ids(backend)[-1] == "6"
    assert backend.get_scale_set(RG, NAME).capacity == 6
    at(backend, clock, 15)
    assert states(backend, "2")[2] == "healthy"
    history = backend.history()
    assert history["instances"]["2"]["not_ready"] == [[backend.start + 5, backend.start + 15]]
    assert history["instances"]["3"]["deleted"] == backend.start + 9
    assert history["instances"]["6"]["created"] == backend.start + 9
    assert [e["time"] - backend.start for e in history["events"]] == [5, 8, 9]
    assert [c["capacity"] for c in history["capacity"]] == [6, 5, 6]


# --- the whole-set call ----------------------------------------------------------------------------

def test_reimage_set_none_takes_every_unprotected_instance_at_once():
    backend, clock = make({"instances": [{}, {}, {}, {"protect_from_scale_set_actions": True}]})
    op = backend.reimage_set(RG, NAME, None)
    assert [states(backend, i)[0] for i in "0123"] == ["updating"] * 3 + ["succeeded"]
    at(backend, clock, 4)
    assert status(backend, op) == "Succeeded"
    history = backend.history()
    assert history["whole_set_reimages"] == 1 and history["max_reimages_in_flight"] == 3
    assert history["max_not_ready"] == 3
    assert [(t["instance"], t["was_ready"], t["others_ready"]) for t in history["takeouts"]] == [
        ("0", True, 3), ("1", True, 3), ("2", True, 3)]
    error = arm_error(backend.reimage_set, RG, NAME, ["0", "3"])
    assert error.code == "OperationNotAllowed"


# --- ids and request bookkeeping ---------------------------------------------------------------

def test_generated_ids_come_from_the_seed():
    def op_ids(seed):
        backend, _ = make({"faults": {"seed": seed}})
        return [backend.reimage(RG, NAME, str(i)) for i in range(3)]
    assert op_ids(5) == op_ids(5) != op_ids(6)


def test_requests_are_recorded_with_the_clock_time():
    backend, clock = make()
    backend.record_request("GET", "/a", 200)
    clock.sleep(2)
    backend.record_request("POST", "/b", 202)
    assert backend.requests() == [
        {"method": "GET", "path": "/a", "status": 200, "time": backend.start},
        {"method": "POST", "path": "/b", "status": 202, "time": backend.start + 2},
    ]


def test_random_sequences_keep_the_books_consistent():
    """Whatever happens, not-ready intervals are ordered and closed except the last, and the
    number of open intervals equals the instances that are not ready now."""
    rng = random.Random(11)
    backend, clock = make({"instances": 8, "events": [{"at_seconds": 7, "add_instances": 2}]})
    for _ in range(60):
        clock.sleep(rng.choice([0, 0.5, 1, 2.5]))
        instance_id = rng.choice(ids(backend))
        try:
            if rng.random() < 0.85:
                backend.reimage(RG, NAME, instance_id)
            else:
                backend.delete_instances(RG, NAME, [instance_id])
        except ArmError as error:
            assert error.status == 409
    clock.sleep(100)
    history = backend.history()
    for instance_id, record in history["instances"].items():
        flat = [t for interval in record["not_ready"] for t in interval if t is not None]
        assert flat == sorted(flat), instance_id
        assert all(end is not None for _, end in record["not_ready"])  # all done or deleted
    assert history["max_not_ready"] >= history["max_reimages_in_flight"] >= 1
