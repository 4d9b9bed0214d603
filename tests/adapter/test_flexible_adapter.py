"""AzureComputePort on a Flexible scale set over real HTTPS: the mode read at preflight picks
the single-VM APIs (list by resource group with the scale-set filter, the VM reimage), capacity
and batch delete stay on the scale set, and a resource lock is its own error."""

from __future__ import annotations


import pytest

from cycle_vmss.compute import Locked, OperationState

from .conftest import arm_requests, make_port, wait

FLEX = {"orchestration_mode": "Flexible"}


def test_preflight_reads_the_mode_and_the_list_is_one_filtered_paged_vm_list(simulate):
    sim = simulate({**FLEX, "page_size": 2, "instances": [
        {"id": "0", "zone": "1", "fault_domain": 0}, {"id": "1", "zone": "2", "health": "unhealthy"},
        {"id": "2", "zone": "3"}, {"id": "3", "standby": True, "power": "deallocated"},
        {"id": "4", "zone": "1", "fault_domain": 2}]})
    port = make_port(sim)

    scale_set = port.get_scale_set()
    instances = port.list_instances()

    assert scale_set.orchestration_mode == "Flexible" and scale_set.capacity == 4  # standby: not counted
    assert [i.id for i in instances] == [f"vmss-demo_{n}" for n in range(5)]
    assert all(i.name == i.id for i in instances)  # the VM name is the id
    by_id = {i.id: i for i in instances}
    assert (by_id["vmss-demo_4"].zone, by_id["vmss-demo_4"].fault_domain) == ("1", 2)
    assert by_id["vmss-demo_1"].health == "unhealthy" and by_id["vmss-demo_0"].health == "healthy"
    assert by_id["vmss-demo_3"].standby and not by_id["vmss-demo_3"].in_service_candidate
    assert not any(i.protected for i in instances)
    lists = [r for r in arm_requests(sim) if r["path"].endswith("/providers/Microsoft.Compute/virtualMachines")]
    assert len(lists) == 3 and all(r["status"] == 200 for r in lists)  # 5 VMs, pages of 2
    assert not [r for r in arm_requests(sim) if "/virtualMachineScaleSets/vmss-demo/virtualMachines" in r["path"]]
    assert port.counts.reads == 1 + 3


def test_reimage_is_the_single_vm_reimage_and_its_operation_is_followed(simulate):
    sim = simulate(FLEX)
    port = make_port(sim)
    port.get_scale_set()

    assert wait(port.begin_reimage("vmss-demo_1")).state is OperationState.SUCCEEDED

    posts = [r for r in arm_requests(sim) if r["method"] == "POST"]
    assert [(p["path"].split("/providers/", 1)[1], p["status"]) for p in posts] == [
        ("Microsoft.Compute/virtualMachines/vmss-demo_1/reimage", 202)]
    assert len(sim.history()["instances"]["vmss-demo_1"]["reimages"]) == 1
    with pytest.raises(ValueError, match="reimageall"):  # preflight refuses reimage-all first
        port.begin_reimage("vmss-demo_0", all_disks=True)


def test_a_locked_vm_is_a_typed_error_not_a_busy_one(simulate):
    sim = simulate({**FLEX, "instances": [{"id": "0"}, {"id": "1", "locked": True}]})
    port = make_port(sim)
    port.get_scale_set()

    with pytest.raises(Locked) as refused:
        port.begin_reimage("vmss-demo_1")

    assert refused.value.status == 409 and refused.value.code == "ScopeLocked"
    assert "cannot perform write operation because following scope(s) are locked" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert sim.history()["instances"]["vmss-demo_1"]["reimages"] == []


def test_capacity_and_batch_delete_stay_on_the_scale_set_naming_vms(simulate):
    sim = simulate({**FLEX, "instances": 2})
    port = make_port(sim)
    port.get_scale_set()

    assert wait(port.begin_set_capacity(3)).state is OperationState.SUCCEEDED
    assert "vmss-demo_2" in {i.id for i in port.list_instances()}
    assert wait(port.begin_delete_instances(["vmss-demo_2"])).state is OperationState.SUCCEEDED

    assert [i.id for i in port.list_instances()] == ["vmss-demo_0", "vmss-demo_1"]
    writes = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in arm_requests(sim) if r["method"] != "GET"]
    assert writes == [("PATCH", "vmss-demo"), ("POST", "delete")]
    assert port.get_scale_set().capacity == 2
