"""How the simulator scales out where Azure is less kind than the defaults: overprovisioning
(extra instances Azure deletes itself), instance ids reused after a deletion, and a capacity
increase that fails (AllocationFailed, a cores quota). The backend in virtual time, then the
same through the real SDK over HTTPS."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import Sku, VirtualMachineScaleSetUpdate

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.errors import ArmError
from cycle_vmss.simulator.scenario import ScenarioError

RG, NAME = "rg-demo", "vmss-demo"
TIMINGS = {"create_seconds": 3, "delete_seconds": 1, "health_seconds": 1,
           "overprovision_delete_seconds": 2}


def make(scenario: dict) -> tuple[Backend, VirtualClock]:
    clock = VirtualClock()
    return Backend({"zones": [], "timings": TIMINGS, **scenario}, clock), clock


def listed(backend: Backend) -> dict[str, tuple]:
    page, _ = backend.list_instances(RG, NAME)
    return {vm.id: (vm.provisioning, vm.health) for vm in page}


def scale_to(backend: Backend, capacity: int) -> str:
    _, op_id = backend.update_scale_set(RG, NAME, {"sku": {"capacity": capacity}})
    return op_id


# --- overprovisioning -----------------------------------------------------------------------

def test_an_overprovisioned_scale_out_shows_extra_ready_instances_then_deletes_them():
    backend, clock = make({"instances": 3, "overprovision": True})
    op = scale_to(backend, 5)

    assert backend.capacity == 5 and len(listed(backend)) == 6  # 2 asked for, 1 extra (20%, at least 1)
    clock.sleep(3)  # created: the operation succeeded, every new instance is there
    assert backend.operation_status(op).status == "Succeeded"
    assert len(listed(backend)) == 6
    clock.sleep(1)  # and ready, the extras too
    assert all(state == ("succeeded", "healthy") for state in listed(backend).values())
    clock.sleep(1)  # 2 s after the requested ones succeeded, Azure deletes its extras
    deleting = [i for i, state in listed(backend).items() if state[0] == "deleting"]
    assert len(deleting) == 1 and backend.capacity == 5
    clock.sleep(1)
    kept = set(listed(backend))
    assert len(kept) == 5 and {"0", "1", "2"} <= kept
    history = backend.history()["instances"]
    assert {i: history[i]["deleted_by"] for i in deleting} == dict.fromkeys(deleting, "overprovision")
    assert all(history[i]["created_by"] == "capacity" for i in ("3", "4", "5"))


def test_which_extras_azure_deletes_follows_no_id_order():
    """Azure keeps whichever instances succeeded first: across seeds the deleted extras are
    sometimes the lower ids, never always the highest."""
    kept_sets = set()
    for seed in range(8):
        backend, clock = make({"instances": 2, "overprovision": True, "faults": {"seed": seed}})
        scale_to(backend, 4)
        clock.sleep(10)
        kept_sets.add(tuple(sorted(listed(backend))))
    assert len(kept_sets) > 1
    assert any(kept != ("0", "1", "2", "3") for kept in kept_sets)  # not always the highest go


def test_overprovisioning_is_uniform_only_and_off_by_default():
    backend, _ = make({"instances": 2})
    scale_to(backend, 3)
    assert len(listed(backend)) == 3
    with pytest.raises(ScenarioError, match="overprovision = true needs orchestration_mode Uniform"):
        make({"overprovision": True, "orchestration_mode": "Flexible"})


# --- reused ids -----------------------------------------------------------------------------

def test_a_freed_id_goes_to_the_next_instance_with_a_new_time_created():
    backend, clock = make({"instances": 4, "reuse_instance_ids": True})
    first = backend.get_instance(RG, NAME, "1").time_created
    backend.delete_instances(RG, NAME, ["1"])
    clock.sleep(2)
    scale_to(backend, 4)

    assert sorted(listed(backend)) == ["0", "1", "2", "3"]
    assert backend.get_instance(RG, NAME, "1").time_created == first + 2
    history = backend.history()["instances"]
    assert history["1#1"]["deleted_by"] == "request" and history["1#1"]["created"] is None
    assert history["1"]["created_by"] == "capacity" and history["1"]["deleted"] is None


def test_without_reuse_new_ids_count_upwards():
    backend, clock = make({"instances": 4})
    backend.delete_instances(RG, NAME, ["1"])
    clock.sleep(2)
    scale_to(backend, 4)
    assert sorted(listed(backend)) == ["0", "2", "3", "4"]


# --- a capacity increase that fails ----------------------------------------------------------

def test_allocation_failed_ends_the_operation_failed_and_leaves_failed_instances():
    backend, clock = make({"instances": 2, "scale_out_error": "AllocationFailed"})
    op = scale_to(backend, 3)
    clock.sleep(3)

    status = backend.operation_status(op)
    assert (status.status, status.error_code) == ("Failed", "AllocationFailed")
    assert "We do not have sufficient capacity" in status.error_message
    failed = backend.get_instance(RG, NAME, "2")
    assert (failed.provisioning, failed.power, failed.error_code) == ("failed", "deallocated",
                                                                      "AllocationFailed")
    assert backend.capacity == 3  # the capacity written stays until someone puts it back
    scale_to(backend, 2)  # a scale-in still works
    assert backend.capacity == 2


def test_a_quota_refuses_the_scale_out_at_once_and_changes_nothing():
    backend, _ = make({"instances": 2, "scale_out_error": "quota"})
    with pytest.raises(ArmError) as info:
        scale_to(backend, 4)
    assert (info.value.status, info.value.code) == (409, "OperationNotAllowed")
    assert "exceeding approved Total Regional Cores quota" in info.value.message
    assert "Current Usage: 4, Additional Required: 4" in info.value.message  # D2s_v3: 2 cores
    assert backend.capacity == 2 and len(listed(backend)) == 2


def test_scale_out_error_names_what_it_accepts():
    with pytest.raises(ScenarioError, match="scale_out_error = \"Quota\" is not accepted; expected "
                                            "one of AllocationFailed, quota"):
        make({"scale_out_error": "Quota"})


# --- through the SDK over HTTPS ---------------------------------------------------------------

def test_the_sdk_sees_time_created_the_overprovision_flag_and_the_extras(simulator, compute_client):
    sim = simulator({"instances": 2, "zones": [], "overprovision": True,
                     "reuse_instance_ids": True,
                     "timings": {"create_seconds": 0.4, "delete_seconds": 0.2, "health_seconds": 0.1,
                                 "overprovision_delete_seconds": 0.3}})
    client = compute_client(sim)
    vms = client.virtual_machine_scale_set_vms

    assert client.virtual_machine_scale_sets.get(RG, NAME).overprovision is True
    before = {vm.instance_id: vm.time_created for vm in vms.list(RG, NAME)}
    client.virtual_machine_scale_sets.begin_update(
        RG, NAME, VirtualMachineScaleSetUpdate(sku=Sku(capacity=3))).result()
    after_op = {vm.instance_id: vm.time_created for vm in vms.list(RG, NAME)}
    assert len(after_op) == 4  # the operation succeeded with Azure's extra still there
    assert all(after_op[i] > before["0"] for i in set(after_op) - set(before))

    time.sleep(1)
    settled = {vm.instance_id for vm in vms.list(RG, NAME)}
    assert len(settled) == 3 and set(before) <= settled


def test_the_sdk_raises_the_scale_out_errors(simulator, compute_client):
    sim = simulator({"instances": 1, "scale_out_error": "AllocationFailed",
                     "timings": {"create_seconds": 0.2}})
    client = compute_client(sim)
    with pytest.raises(HttpResponseError) as info:
        client.virtual_machine_scale_sets.begin_update(
            RG, NAME, VirtualMachineScaleSetUpdate(sku=Sku(capacity=2))).result()
    assert info.value.error.code == "AllocationFailed"

    sim = simulator({"instances": 1, "scale_out_error": "quota"})
    client = compute_client(sim)
    with pytest.raises(HttpResponseError) as info:
        client.virtual_machine_scale_sets.begin_update(
            RG, NAME, VirtualMachineScaleSetUpdate(sku=Sku(capacity=2)))
    assert (info.value.status_code, info.value.error.code) == (409, "OperationNotAllowed")
