"""SimulatorComputePort end to end over the backend, in virtual time."""

from datetime import datetime, timezone

import pytest

from cycle_vmss import compute
from cycle_vmss.azure_adapter import instance_from_sdk
from cycle_vmss.clock import VirtualClock
from cycle_vmss.compute import Instance, OperationState
from cycle_vmss.simulator import inprocess
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort

RG, NAME = "rg-demo", "vmss-demo"


def make(scenario=None, rg=RG, name=NAME):
    clock = VirtualClock()
    backend = Backend(scenario, clock)
    return SimulatorComputePort(backend, rg, name), backend, clock


def paths(backend):
    prefix = f"/subscriptions/{backend.scenario.subscription_id}"
    return [(r["method"], r["path"].removeprefix(prefix), r["status"]) for r in backend.requests()]


SET = f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{NAME}"


def test_scale_set_maps_to_the_observation_type():
    port, backend, _ = make()
    scale_set = port.get_scale_set()
    assert scale_set == compute.ScaleSet(
        id=f"/subscriptions/{backend.scenario.subscription_id}{SET}", name=NAME,
        resource_group=RG, subscription_id=backend.scenario.subscription_id, location="eastus",
        orchestration_mode="Uniform", capacity=6, upgrade_mode="Manual",
        health_extension="ApplicationHealthLinux", provisioning="succeeded")
    port, _, _ = make({"health_extension": False})
    assert port.get_scale_set().health_extension is None
    assert port.counts.reads == 1


def test_list_instances_reads_every_page_one_request_each():
    port, backend, _ = make({"page_size": 2, "instances": [
        {}, {}, {"protect_from_scale_set_actions": True}, {"power": "deallocated"}, {"zone": None}]})
    instances = port.list_instances()
    assert [i.id for i in instances] == ["0", "1", "2", "3", "4"]
    assert instances[0] == Instance(id="0", name=f"{NAME}_0", zone="1", fault_domain=0,
                                    provisioning="succeeded", power="running", health="healthy",
                                    protected=False, provisioning_time=backend.start,
                                    health_time=backend.start, latest_model_applied=True,
                                    os_disk_time=backend.start - 86400,
                                    time_created=datetime.fromtimestamp(backend.start, timezone.utc))
    assert instances[2].protected and instances[3].power == "deallocated"
    assert instances[3].health is None and instances[4].zone is None
    assert port.counts.reads == 3
    assert paths(backend) == [("GET", f"{SET}/virtualMachines", 200)] * 3


def test_reimage_operation_reports_status_one_read_per_poll():
    port, backend, clock = make()
    operation = port.begin_reimage("3")
    assert port.counts.writes == 1
    assert operation.status().state is OperationState.IN_PROGRESS
    assert port.list_instances()[3].provisioning == "updating"
    clock.sleep(4)
    status = operation.status()
    assert status.state is OperationState.SUCCEEDED and status.finished
    assert port.list_instances()[3].health == "initializing"
    reads = port.counts.reads
    assert operation.status().finished and port.counts.reads == reads  # kept once finished
    op_path = f"/providers/Microsoft.Compute/locations/eastus/operations/{operation.id}"
    assert paths(backend)[:2] == [("POST", f"{SET}/virtualMachines/3/reimage", 202),
                                  ("GET", op_path, 200)]
    port.begin_reimage("4", all_disks=True)
    assert paths(backend)[-1] == ("POST", f"{SET}/virtualMachines/4/reimageall", 202)


def test_failed_operation_carries_the_error_code_and_instance_shows_failed():
    port, _, clock = make({"instances": [{"on_reimage": "fail", "error_code": "OSProvisioningTimedOut"}]})
    operation = port.begin_reimage("0")
    clock.sleep(30)
    status = operation.status()
    assert status.state is OperationState.FAILED
    assert status.error_code == "OSProvisioningTimedOut" and status.error_message
    (instance,) = port.list_instances()
    assert (instance.provisioning, instance.power, instance.health) == ("failed", "running", "unknown")


def test_arm_errors_map_to_the_ports_errors():
    port, backend, _ = make({"instances": 2})
    port.begin_reimage("0")
    with pytest.raises(compute.Conflict) as busy:
        port.begin_reimage("0")
    assert (busy.value.code, busy.value.status) == ("Conflict", 409)
    with pytest.raises(compute.NotFound) as missing:
        port.begin_reimage("9")
    assert missing.value.code == "NotFound"
    assert paths(backend)[-2:] == [("POST", f"{SET}/virtualMachines/0/reimage", 409),
                                   ("POST", f"{SET}/virtualMachines/9/reimage", 404)]

    port, _, _ = make(rg="rg-elsewhere")
    with pytest.raises(compute.NotFound) as no_set:
        port.get_scale_set()
    assert no_set.value.code == "ResourceNotFound"
    assert "'Microsoft.Compute/virtualMachineScaleSets/vmss-demo' under resource group 'rg-elsewhere'" in str(no_set.value)
    with pytest.raises(compute.NotFound):
        port.rolling_upgrade_in_progress()  # a missing set is not "no upgrade"


def test_rolling_upgrade_in_progress():
    assert make()[0].rolling_upgrade_in_progress() is False
    assert make({"rolling_upgrade_in_progress": True})[0].rolling_upgrade_in_progress() is True


def test_a_short_retry_after_is_waited_on_the_clock_and_retried():
    port, backend, clock = make({"faults": {"throttle_reads_every": 2, "throttle_writes_every": 1,
                                            "retry_after_seconds": 1}})
    port.get_scale_set()
    start = clock.now()
    assert len(port.list_instances()) == 6  # the second read is throttled, then retried
    assert clock.now() - start == 1
    assert (port.counts.reads, port.counts.throttled) == (3, 1)
    assert [s for _, _, s in paths(backend)] == [200, 429, 200]
    # every write throttled: the port gives up after its 2 retries
    with pytest.raises(compute.Throttled) as info:
        port.begin_reimage("0")
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, "OperationNotAllowed", 1)
    assert port.counts.writes == 3 and port.counts.throttled == 4
    assert clock.now() - start == 1 + 2 * 1


def test_a_long_retry_after_is_not_slept_but_raised_as_throttled():
    port, backend, clock = make({"faults": {"throttle_reads_every": 1, "retry_after_seconds": 1200}})
    start = clock.now()
    with pytest.raises(compute.Throttled) as info:
        port.list_instances()
    assert info.value.retry_after == 1200 and clock.now() == start
    assert (port.counts.reads, port.counts.throttled) == (1, 1)


def test_a_throttled_status_poll_is_not_asked_again_before_its_retry_after():
    port, backend, clock = make({"faults": {"throttle_reads_every": 1, "retry_after_seconds": 90}})
    op = port.begin_reimage("0")
    with pytest.raises(compute.Throttled) as first:  # the poll is throttled: still running
        op.status()
    clock.sleep(60)
    with pytest.raises(compute.Throttled) as later:  # no request before 90 s
        op.status()
    assert (first.value.retry_after, later.value.retry_after) == (90, 30)
    assert str(later.value) == "Azure throttled the status poll (Retry-After 90 s)"
    assert port.counts.reads == 1


def test_server_errors_are_retried_with_a_bounded_backoff():
    port, backend, clock = make({"faults": {"server_error_rate": 1.0}})
    start = clock.now()
    with pytest.raises(compute.AzureError) as info:
        port.get_scale_set()
    assert info.value.status == 500 and port.counts.reads == 3
    assert clock.now() - start == pytest.approx(0 + 1.0)


def test_capacity_and_delete_end_to_end():
    port, backend, clock = make({"instances": 3})
    grow = port.begin_set_capacity(5)
    assert [i.id for i in port.list_instances()] == ["0", "1", "2", "3", "4"]
    assert port.list_instances()[4].provisioning == "creating"
    clock.sleep(3)
    assert grow.status().state is OperationState.SUCCEEDED
    assert port.get_scale_set().capacity == 5
    shrink = port.begin_delete_instances(["3", "4"])
    clock.sleep(1)
    assert shrink.status().state is OperationState.SUCCEEDED
    assert [i.id for i in port.list_instances()] == ["0", "1", "2"]
    assert port.get_scale_set().capacity == 3
    assert [(m, p) for m, p, _ in paths(backend) if m != "GET"] == [
        ("PATCH", SET), ("POST", f"{SET}/delete")]


def test_a_careful_rolling_loop_over_the_port_keeps_one_out_at_a_time():
    """A hand-written minimal rollout: the history the simulator keeps proves the invariant."""
    port, backend, clock = make({"instances": 5, "page_size": 2})
    for instance_id in [i.id for i in port.list_instances()]:
        operation = port.begin_reimage(instance_id)
        while True:
            clock.sleep(1)
            done = operation.status().finished
            ready = {i.id: i for i in port.list_instances()}[instance_id]
            if done and (ready.provisioning, ready.power, ready.health) == ("succeeded", "running", "healthy"):
                break
    history = backend.history()
    assert history["max_not_ready"] == 1 and history["whole_set_reimages"] == 0
    assert all(t["others_ready"] == 4 for t in history["takeouts"])
    assert len(history["takeouts"]) == 5
    assert port.counts.writes == 5 and port.counts.throttled == 0


# --- what makes a thousand-instance virtual run cheap ----------------------------------------------

CACHED = {"instances": 25, "page_size": 10,
          "timings": {"reimage_seconds": 10, "boot_seconds": 2, "health_seconds": 3}}


def test_the_port_maps_only_what_changed_and_shows_every_change_at_once(monkeypatch):
    port, backend, clock = make(CACHED)
    first = port.list_instances()
    assert port.list_instances() == first  # an unchanged list
    assert port.counts.reads == 2 * 3  # still one request per page, every time

    mapped = []
    monkeypatch.setattr(inprocess, "instance_from_sdk",
                        lambda vm: mapped.append(vm.instance_id) or instance_from_sdk(vm))
    backend.reimage(RG, NAME, "7")
    second = port.list_instances()
    assert mapped == ["7"]  # deserialized and mapped again: the instance that changed, only
    assert [i for i, (a, b) in enumerate(zip(first, second)) if a is not b] == [7]
    assert (second[7].provisioning, second[7].power, second[7].health) == ("updating", "stopping", None)
    assert first[7].provisioning == "succeeded"  # what was handed out is never changed
    clock.sleep(12)  # reimage 10 + boot 2: succeeded, running, health initializing
    assert port.list_instances()[7].health == "initializing"
    clock.sleep(3)
    assert port.list_instances()[7].health == "healthy"
    assert mapped == ["7"] * 3


def test_removed_and_added_instances_change_the_list():
    port, backend, clock = make({**CACHED, "timings": {**CACHED["timings"], "delete_seconds": 1,
                                                        "create_seconds": 1}})
    before = [i.id for i in port.list_instances()]
    backend.delete_instances(RG, NAME, ["3"])
    backend.update_scale_set(RG, NAME, {"sku": {"capacity": 26}})
    clock.sleep(5)
    after = [i.id for i in port.list_instances()]
    assert "3" in before and "3" not in after
    assert after == [i for i in before if i != "3"] + ["25", "26"]


def test_an_operation_has_nothing_to_call_back_in_virtual_time():
    port, _, clock = make()
    operation = port.begin_reimage("0")
    called = []
    operation.add_done_callback(lambda: called.append(True))
    clock.sleep(10)
    assert operation.status().finished and called == []
