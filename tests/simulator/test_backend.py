"""The simulator backend's state machine, in virtual time."""

import random
import re

import pytest

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend, iso
from cycle_vmss.simulator.errors import ArmError

RG, NAME = "rg-demo", "vmss-demo"


def make(scenario=None):
    clock = VirtualClock()
    return Backend(scenario, clock), clock


def at(backend, clock, offset):
    clock.advance_to(backend.start + offset)


def states(backend, instance_id):
    view = backend.get_instance_view(RG, NAME, instance_id)
    codes = [s["code"] for s in view["statuses"]]
    health = view.get("vmHealth", {}).get("status", {}).get("code")
    return codes[0].split("/")[1], codes[1].split("/")[1], health and health.split("/")[1]


def ids(backend):
    page, _ = backend.list_instances(RG, NAME, expand_instance_view=False)
    return [vm["instanceId"] for vm in page]


def arm_error(fn, *args, **kwargs) -> ArmError:
    with pytest.raises(ArmError) as info:
        fn(*args, **kwargs)
    return info.value


# --- bodies ---------------------------------------------------------------------------------

def test_scale_set_body_has_the_recorded_shape():
    backend, _ = make()
    body = backend.get_scale_set(RG, NAME)
    assert body["name"] == NAME and body["type"] == "Microsoft.Compute/virtualMachineScaleSets"
    assert body["id"] == (f"/subscriptions/{backend.scenario.subscription_id}/resourceGroups/{RG}"
                          f"/providers/Microsoft.Compute/virtualMachineScaleSets/{NAME}")
    assert body["sku"]["capacity"] == 6
    props = body["properties"]
    assert props["orchestrationMode"] == "Uniform" and props["upgradePolicy"] == {"mode": "Manual"}
    assert props["provisioningState"] == "Succeeded"
    types = [e["properties"]["type"] for e in props["virtualMachineProfile"]["extensionProfile"]["extensions"]]
    assert "ApplicationHealthLinux" in types


def test_vm_body_has_the_recorded_shape_and_vmhealth_with_the_extension():
    backend, _ = make({"instances": [{"id": "4", "zone": "2", "fault_domain": 3,
                                      "protect_from_scale_set_actions": True}]})
    vm = backend.get_instance(RG, NAME, "4", expand_instance_view=True)
    assert vm["instanceId"] == "4" and vm["name"] == f"{NAME}_4" and vm["zones"] == ["2"]
    assert vm["id"].endswith(f"/virtualMachineScaleSets/{NAME}/virtualMachines/4")
    assert vm["properties"]["protectionPolicy"]["protectFromScaleSetActions"] is True
    view = vm["properties"]["instanceView"]
    assert view["platformFaultDomain"] == 3
    assert [s["code"] for s in view["statuses"]] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view["vmHealth"]["status"]["code"] == "HealthState/healthy"
    assert "instanceView" not in backend.get_instance(RG, NAME, "4")["properties"]


def test_without_the_health_extension_there_is_no_vmhealth_anywhere():
    backend, clock = make({"health_extension": False, "instances": 2})
    props = backend.get_scale_set(RG, NAME)["properties"]
    types = [e["properties"]["type"] for e in props["virtualMachineProfile"]["extensionProfile"]["extensions"]]
    assert "ApplicationHealthLinux" not in types
    backend.reimage(RG, NAME, "0")
    for offset in (0, 2, 4, 5, 9):
        at(backend, clock, offset)
        page, _ = backend.list_instances(RG, NAME, expand_instance_view=True)
        assert all("vmHealth" not in vm["properties"]["instanceView"] for vm in page)
    # ready without health: the interval ends when the operation succeeds
    assert backend.history()["instances"]["0"]["not_ready"] == [[backend.start, backend.start + 4]]


def test_bodies_deserialise_with_azure_mgmt_compute():
    models = pytest.importorskip("azure.mgmt.compute.models")
    backend, clock = make({"instances": [{}, {"on_reimage": "fail", "error_code": "Boom"}]})
    scale_set = models.VirtualMachineScaleSet(backend.get_scale_set(RG, NAME))
    assert scale_set.sku.capacity == 2
    assert scale_set.properties.orchestration_mode == "Uniform"
    assert scale_set.properties.upgrade_policy.mode == "Manual"
    page, _ = backend.list_instances(RG, NAME, expand_instance_view=True)
    vm = models.VirtualMachineScaleSetVM(page[0])
    assert vm.instance_id == "0" and vm.zones == ["1"]
    assert vm.properties.instance_view.vm_health.status.code == "HealthState/healthy"
    assert vm.properties.instance_view.statuses[0].time.timestamp() == backend.start
    backend.reimage(RG, NAME, "1")
    at(backend, clock, 10)
    view = models.VirtualMachineScaleSetVMInstanceView(backend.get_instance_view(RG, NAME, "1"))
    assert view.statuses[0].code == "ProvisioningState/failed/Boom"


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
        assert backend.operation_status(op)["status"] == op_status, offset
    status = backend.operation_status(op)
    assert status == {"name": op, "startTime": iso(backend.start), "status": "Succeeded",
                      "endTime": iso(backend.start + 6)}
    assert states(backend, "0") == ("succeeded", "running", "healthy")  # others untouched


def test_per_instance_timings_apply():
    backend, clock = make({"instances": [{"timings": {"reimage_seconds": 10, "boot_seconds": 0}}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 9.9)
    assert backend.operation_status(op)["status"] == "InProgress"
    at(backend, clock, 10)
    assert backend.operation_status(op)["endTime"] == iso(backend.start + 10)


def test_failing_reimage_ends_failed_with_the_scenario_error_code():
    backend, clock = make({"instances": [{"on_reimage": "fail", "error_code": "OSProvisioningTimedOut"}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 3.9)
    assert backend.operation_status(op)["status"] == "InProgress"
    at(backend, clock, 60)
    status = backend.operation_status(op)
    assert status["status"] == "Failed" and status["endTime"] == iso(backend.start + 4)
    assert status["error"]["code"] == "OSProvisioningTimedOut" and status["error"]["message"]
    view = backend.get_instance_view(RG, NAME, "0")
    assert view["statuses"][0]["code"] == "ProvisioningState/failed/OSProvisioningTimedOut"
    assert view["statuses"][0]["level"] == "Error"
    assert states(backend, "0")[0] == "failed"
    assert backend.history()["instances"]["0"]["reimages"][0]["status"] == "Failed"
    assert backend.history()["instances"]["0"]["not_ready"] == [[backend.start, None]]


def test_never_healthy_succeeds_but_ends_unhealthy():
    backend, clock = make({"instances": [{"on_reimage": "never-healthy"}]})
    op = backend.reimage(RG, NAME, "0")
    at(backend, clock, 4)
    assert backend.operation_status(op)["status"] == "Succeeded"
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


def test_protected_instance_is_refused_and_untouched():
    backend, clock = make({"instances": [{"protect_from_scale_set_actions": True}, {}]})
    error = arm_error(backend.reimage, RG, NAME, "0")
    assert (error.status, error.code) == (409, "OperationNotAllowed")
    assert "protected from scale set actions" in error.message and f"{NAME}_0" in error.message
    assert states(backend, "0") == ("succeeded", "running", "healthy")
    assert backend.history()["instances"]["0"]["reimages"] == []
    assert backend.history()["takeouts"] == []


def test_stopped_and_deallocated_instances_stay_so():
    backend, clock = make({"instances": [{"power": "stopped"}, {"power": "deallocated"}]})
    assert states(backend, "0") == ("succeeded", "stopped", None)
    ops = [backend.reimage(RG, NAME, "0"), backend.reimage(RG, NAME, "1")]
    at(backend, clock, 1.5)
    assert states(backend, "1") == ("updating", "deallocated", None)
    at(backend, clock, 3)
    assert [backend.operation_status(op)["status"] for op in ops] == ["Succeeded", "Succeeded"]
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
    assert arm_error(backend.list_instances, rg, name, expand_instance_view=True).code == "ResourceNotFound"
    assert arm_error(backend.reimage, rg, name, "0").code == "ResourceNotFound"


def test_names_compare_case_insensitively_like_arm():
    backend, _ = make()
    assert backend.get_scale_set(RG.upper(), NAME.upper())["name"] == NAME


def test_missing_instance_and_operation_are_not_found():
    backend, _ = make()
    for verb in (backend.get_instance, backend.get_instance_view, backend.reimage):
        error = arm_error(verb, RG, NAME, "99")
        assert (error.status, error.code) == (404, "NotFound")
        assert error.message == "The entity was not found in this Azure location."
    assert arm_error(backend.operation_status, "no-such-op").status == 404


def test_rolling_upgrade_is_not_found_unless_the_scenario_says_one_runs():
    backend, _ = make()
    assert arm_error(backend.latest_rolling_upgrade, RG, NAME).code == "NotFound"
    backend, _ = make({"rolling_upgrade_in_progress": True})
    assert backend.latest_rolling_upgrade(RG, NAME)["properties"]["runningStatus"]["code"] == "RollingForward"


# --- listing --------------------------------------------------------------------------------------

def test_list_pages_by_page_size_in_numeric_id_order():
    backend, _ = make({"page_size": 2, "instances": [{"id": str(i)} for i in (10, 2, 9, 0, 1)]})
    pages, after = [], None
    while True:
        page, after = backend.list_instances(RG, NAME, expand_instance_view=True, after=after)
        pages.append([vm["instanceId"] for vm in page])
        if after is None:
            break
    assert pages == [["0", "1"], ["2", "9"], ["10"]]
    assert backend.list_instances(RG, NAME, expand_instance_view=True, after="9")[1] is None


def test_an_instance_deleted_between_two_pages_does_not_hide_another():
    # The page token names the last instance listed, so deleting an instance of the first page
    # while a client reads the second does not shift the second page past an instance.
    backend, _ = make({"page_size": 2, "instances": 5, "timings": {"delete_seconds": 0}})
    first, after = backend.list_instances(RG, NAME, expand_instance_view=False)
    assert [vm["instanceId"] for vm in first] == ["0", "1"] and after == "1"
    backend.delete_instances(RG, NAME, ["0"])
    listed = [vm["instanceId"] for vm in first]
    while after is not None:
        page, after = backend.list_instances(RG, NAME, expand_instance_view=False, after=after)
        listed += [vm["instanceId"] for vm in page]
    assert listed == ["0", "1", "2", "3", "4"]


def test_scale_set_instance_view_summarises_provisioning_states():
    backend, _ = make({"instances": 3})
    backend.reimage(RG, NAME, "0")
    view = backend.get_scale_set_instance_view(RG, NAME)
    assert sorted((s["code"], s["count"]) for s in view["virtualMachine"]["statusesSummary"]) == [
        ("ProvisioningState/succeeded", 2), ("ProvisioningState/updating", 1)]
    flexible, _ = make({"orchestration_mode": "Flexible"})
    assert arm_error(flexible.get_scale_set_instance_view, RG, NAME).status == 400


# --- capacity and deletes -----------------------------------------------------------------------

def test_capacity_increase_creates_fresh_ids_continuing_the_max():
    backend, clock = make({"instances": [{"id": "0"}, {"id": "5"}], "zones": ["1", "2"]})
    body, op = backend.update_scale_set(RG, NAME, {"sku": {"capacity": 4}})
    assert body["sku"]["capacity"] == 4 and body["properties"]["provisioningState"] == "Updating"
    assert ids(backend) == ["0", "5", "6", "7"]
    assert states(backend, "6") == ("creating", "starting", None)
    assert arm_error(backend.reimage, RG, NAME, "6").code == "Conflict"  # busy being created
    assert {backend.get_instance(RG, NAME, i)["zones"][0] for i in ("6", "7")} == {"1", "2"}
    at(backend, clock, 2.9)
    assert backend.operation_status(op)["status"] == "InProgress"
    at(backend, clock, 3)
    assert backend.operation_status(op)["status"] == "Succeeded"
    assert states(backend, "7") == ("succeeded", "running", "initializing")
    assert backend.get_scale_set(RG, NAME)["properties"]["provisioningState"] == "Succeeded"
    at(backend, clock, 4)
    assert states(backend, "7") == ("succeeded", "running", "healthy")
    history = backend.history()
    assert history["instances"]["6"]["created"] == backend.start
    assert history["instances"]["6"]["not_ready"] == [[backend.start, backend.start + 4]]
    assert [c["capacity"] for c in history["capacity"]] == [2, 4]


def test_put_with_the_same_capacity_succeeds_at_once():
    backend, _ = make()
    body, op = backend.put_scale_set(RG, NAME, backend.get_scale_set(RG, NAME))
    assert backend.operation_status(op)["status"] == "Succeeded" and ids(backend) == [str(i) for i in range(6)]
    assert arm_error(backend.update_scale_set, RG, NAME, {"sku": {"capacity": -1}}).status == 400


def test_capacity_decrease_deletes_the_highest_ids():
    backend, clock = make({"instances": 5})
    _, op = backend.update_scale_set(RG, NAME, {"sku": {"capacity": 3}})
    assert states(backend, "4")[0] == "deleting" and states(backend, "3")[0] == "deleting"
    at(backend, clock, 1)
    assert ids(backend) == ["0", "1", "2"] and backend.operation_status(op)["status"] == "Succeeded"
    assert backend.history()["instances"]["4"]["deleted"] == backend.start + 1


def test_delete_instances_removes_the_named_ones_after_delete_seconds():
    backend, clock = make({"timings": {"delete_seconds": 2}})
    op = backend.delete_instances(RG, NAME, ["1", "3"])
    assert backend.get_scale_set(RG, NAME)["sku"]["capacity"] == 4
    at(backend, clock, 1)
    assert states(backend, "1")[0] == "deleting" and backend.operation_status(op)["status"] == "InProgress"
    at(backend, clock, 2)
    assert ids(backend) == ["0", "2", "4", "5"]
    assert backend.operation_status(op)["status"] == "Succeeded"
    assert arm_error(backend.get_instance, RG, NAME, "1").code == "NotFound"
    error = arm_error(backend.delete_instances, RG, NAME, ["42"])
    assert (error.status, error.code) == (400, "InvalidParameter")


def test_delete_preempts_a_reimage_in_flight():
    backend, clock = make()
    op = backend.reimage(RG, NAME, "2")
    at(backend, clock, 1)
    backend.delete_instances(RG, NAME, ["2"])
    status = backend.operation_status(op)
    assert status["status"] == "Canceled" and status["error"]["code"] == "OperationPreempted"
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
    assert backend.get_scale_set(RG, NAME)["sku"]["capacity"] == 6
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
    assert backend.operation_status(op)["status"] == "Succeeded"
    history = backend.history()
    assert history["whole_set_reimages"] == 1 and history["max_reimages_in_flight"] == 3
    assert history["max_not_ready"] == 3
    assert [(t["instance"], t["was_ready"], t["others_ready"]) for t in history["takeouts"]] == [
        ("0", True, 3), ("1", True, 3), ("2", True, 3)]
    error = arm_error(backend.reimage_set, RG, NAME, ["0", "3"])
    assert error.code == "OperationNotAllowed"


# --- faults and request bookkeeping ---------------------------------------------------------------

def test_every_nth_read_and_write_is_throttled_with_retry_after():
    backend, _ = make({"faults": {"throttle_reads_every": 3, "throttle_writes_every": 2,
                                  "retry_after_seconds": 7}})
    outcomes = []
    for _ in range(7):
        try:
            backend.admit("read")
            outcomes.append("ok")
        except ArmError as error:
            outcomes.append(error.status)
            assert error.code == "OperationNotAllowed" and error.headers["Retry-After"] == "7"
            assert error.body()["error"]["details"][0]["code"] == "TooManyRequests"
    assert outcomes == ["ok", "ok", 429, "ok", "ok", 429, "ok"]
    backend.admit("write")
    assert arm_error(backend.admit, "write").status == 429
    assert backend.counts() == {"reads": 7, "writes": 2, "throttled": 3, "server_errors": 0}


def test_server_errors_follow_the_seeded_rate():
    def pattern(seed):
        backend, _ = make({"faults": {"server_error_rate": 0.5, "seed": seed}})
        out = []
        for _ in range(40):
            try:
                backend.admit("read")
                out.append(0)
            except ArmError as error:
                assert (error.status, error.code) == (500, "InternalServerError")
                out.append(1)
        return out
    assert pattern(3) == pattern(3)
    assert 5 < sum(pattern(3)) < 35
    assert pattern(3) != pattern(4)


def test_generated_ids_come_from_the_seed():
    def op_ids(seed):
        backend, _ = make({"faults": {"seed": seed}})
        return [backend.reimage(RG, NAME, str(i)) for i in range(3)]
    assert op_ids(5) == op_ids(5) != op_ids(6)


def test_ratelimit_headers_have_azures_format():
    backend, _ = make()
    backend.admit("read")
    headers = backend.ratelimit_headers("read")
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "11999"
    assert re.fullmatch(r"Microsoft\.Compute/GetVMScaleSetVM3Min;\d+,Microsoft\.Compute/GetVMScaleSetVM30Min;\d+",
                        headers["x-ms-ratelimit-remaining-resource"])
    assert "x-ms-ratelimit-remaining-subscription-writes" in backend.ratelimit_headers("write")


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
