"""The simulator's Flexible scale set, through the real SDK over HTTPS: Azure's shapes for the
single-VM APIs, the scale-set VM APIs it serves (list, GET, protection) and those it refuses,
VM names, a list without vmHealth, resource locks and standby pools."""

from __future__ import annotations

import re

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.errors import ArmError
from cycle_vmss.simulator.scenario import ScenarioError, load_scenario

RG, NAME = "rg-demo", "vmss-demo"
FAST = {"reimage_seconds": 0.2, "boot_seconds": 0.1, "health_seconds": 0.1,
        "create_seconds": 0.2, "delete_seconds": 0.1}


def set_filter(sim_or_backend) -> str:
    s = sim_or_backend.backend.scenario if hasattr(sim_or_backend, "backend") else sim_or_backend.scenario
    return (f"'virtualMachineScaleSet/id' eq '/subscriptions/{s.subscription_id}/resourceGroups/"
            f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{NAME}'")


def test_flexible_vms_in_azures_shapes_over_https(simulator, compute_client):
    sim = simulator({"orchestration_mode": "Flexible", "timings": FAST, "page_size": 2, "instances": [
        {"id": "0"}, {"id": "1", "standby": True}, {"id": "2", "health": "initializing"}]})
    client = compute_client(sim)

    vmss = client.virtual_machine_scale_sets.get(RG, NAME)
    vms = list(client.virtual_machines.list(RG, filter=set_filter(sim), expand="instanceView"))

    assert vmss.properties.orchestration_mode == "Flexible" and vmss.sku.capacity == 2
    assert vmss.properties.platform_fault_domain_count == 1
    assert [vm.name for vm in vms] == ["vmss-demo_0", "vmss-demo_1", "vmss-demo_2"]
    for vm in vms:
        assert vm.type == "Microsoft.Compute/virtualMachines"
        assert vm.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{vm.name}")
        assert vm.properties.virtual_machine_scale_set.id == vmss.id
        assert [s.code for s in vm.properties.instance_view.statuses] == [
            "ProvisioningState/succeeded", "PowerState/running"]
    views = {vm.name: vm.properties.instance_view for vm in vms}
    assert [views[n].is_vm_in_standby_pool for n in sorted(views)] == [False, True, False]
    assert views["vmss-demo_2"].vm_health.status.code == "HealthState/initializing"
    # GET and instanceView of one VM, by name
    assert client.virtual_machines.get(RG, "vmss-demo_0").properties.virtual_machine_scale_set.id == vmss.id
    assert client.virtual_machines.instance_view(RG, "vmss-demo_0").vm_health.status.code == "HealthState/healthy"
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machines.get(RG, "vmss-demo_9")


def test_the_scale_set_vm_list_is_served_with_vm_names_and_protection(simulator, compute_client):
    sim = simulator({"orchestration_mode": "Flexible", "timings": FAST, "page_size": 2, "instances": [
        {"id": "0"}, {"id": "1", "protect_from_scale_set_actions": True}, {"id": "2"}]})
    client = compute_client(sim)

    vms = list(client.virtual_machine_scale_set_vms.list(RG, NAME, expand="instanceView"))

    assert [(vm.instance_id, vm.name) for vm in vms] == [(f"vmss-demo_{n}",) * 2 for n in range(3)]
    assert [vm.properties.protection_policy.protect_from_scale_set_actions for vm in vms] == [
        False, True, False]
    assert all(vm.type == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines" for vm in vms)
    # The scale set's view of each VM: its states are on the VM APIs.
    assert all(vm.properties.instance_view is None for vm in vms)
    # Protection is set on the scale-set VM (a PUT, as `az vmss update --instance-id` sends).
    vm = client.virtual_machine_scale_set_vms.get(RG, NAME, "vmss-demo_0")
    vm.properties.protection_policy.protect_from_scale_set_actions = True
    updated = client.virtual_machine_scale_set_vms.begin_update(RG, NAME, "vmss-demo_0", vm).result()
    assert updated.properties.protection_policy.protect_from_scale_set_actions is True
    assert client.virtual_machine_scale_set_vms.get(
        RG, NAME, "vmss-demo_0").properties.protection_policy.protect_from_scale_set_actions is True
    # The VM resource has no protection policy: the single-VM reimage is not blocked by it.
    client.virtual_machines.begin_reimage(RG, "vmss-demo_1").result()
    assert [r["status"] for r in sim.history()["instances"]["vmss-demo_1"]["reimages"]] == ["Succeeded"]


def test_guid_names_and_a_vm_list_without_vm_health(simulator, compute_client):
    sim = simulator({"orchestration_mode": "Flexible", "flexible_vm_names": "guid",
                     "flexible_list_omits_health": True, "instances": [{"id": "0"}, {"id": "1"}],
                     "events": [{"at_seconds": 0, "instance": "1", "health": "unhealthy"}]})
    client = compute_client(sim)

    vms = list(client.virtual_machines.list(RG, filter=set_filter(sim), expand="instanceView"))

    names = [vm.name for vm in vms]
    assert all(re.fullmatch(r"vmss-demo_[0-9a-f]{8}", n) for n in names) and len(set(names)) == 2
    assert [vm.properties.instance_view.vm_health for vm in vms] == [None, None]
    # The single-VM instance view keeps it (the event made one of them unhealthy).
    codes = sorted(client.virtual_machines.instance_view(RG, n).vm_health.status.code for n in names)
    assert codes == ["HealthState/healthy", "HealthState/unhealthy"]
    # The same seed draws the same names.
    assert sorted(names) == sorted(Backend(sim.backend.scenario).history()["instances"])


def test_the_scale_set_vm_apis_azure_refuses_for_flexible_sets(simulator, compute_client):
    sim = simulator({"orchestration_mode": "Flexible", "instances": 2})
    client = compute_client(sim)

    for call in (lambda: client.virtual_machine_scale_set_vms.get_instance_view(RG, NAME, "vmss-demo_0"),
                 lambda: client.virtual_machine_scale_set_vms.begin_reimage(RG, NAME, "vmss-demo_0"),
                 lambda: client.virtual_machine_scale_sets.get_instance_view(RG, NAME)):
        with pytest.raises(HttpResponseError) as refused:
            call()
        assert refused.value.status_code == 400 and refused.value.error.code == "OperationNotAllowed"
        assert "is not allowed on Virtual Machine Scale Set 'vmss-demo'" in refused.value.error.message
    assert sim.history()["instances"]["vmss-demo_0"]["reimages"] == []


def test_reimage_of_a_vm_is_202_and_an_operation_and_a_lock_is_409_scope_locked(simulator, compute_client):
    sim = simulator({"orchestration_mode": "Flexible", "timings": FAST,
                     "instances": [{"id": "0"}, {"id": "1", "locked": True}]})
    client = compute_client(sim)

    client.virtual_machines.begin_reimage(RG, "vmss-demo_0").result()
    with pytest.raises(ResourceExistsError) as locked:
        client.virtual_machines.begin_reimage(RG, "vmss-demo_1")

    assert locked.value.status_code == 409 and locked.value.error.code == "ScopeLocked"
    assert "virtualMachines/vmss-demo_1' cannot perform write operation" in locked.value.error.message
    history = sim.history()["instances"]
    assert [r["status"] for r in history["vmss-demo_0"]["reimages"]] == ["Succeeded"]
    assert history["vmss-demo_1"]["reimages"] == []
    posts = [(r["path"].rsplit("/", 2)[-2], r["status"]) for r in sim.requests() if r["method"] == "POST"
             and r["path"].endswith("/reimage")]
    assert posts == [("vmss-demo_0", 202), ("vmss-demo_1", 409)]


def test_the_vm_list_takes_only_the_scale_set_filter():
    backend = Backend({"orchestration_mode": "Flexible", "instances": 2})
    assert [vm.id for vm in backend.list_vms(RG, vmss_filter=None, expand_instance_view=False)[0]] == [
        "vmss-demo_0", "vmss-demo_1"]  # the group's VMs, without their instance views
    with pytest.raises(ArmError) as no_filter:
        backend.list_vms(RG, vmss_filter=None, expand_instance_view=True)
    assert no_filter.value.status == 400
    with pytest.raises(ArmError):
        backend.list_vms(RG, vmss_filter="name eq 'x'", expand_instance_view=True)
    other = set_filter(backend).replace(NAME, "vmss-other")
    assert backend.list_vms(RG, vmss_filter=other, expand_instance_view=True) == ([], None)
    with pytest.raises(ArmError) as no_group:
        backend.list_vms("rg-nope", vmss_filter=set_filter(backend), expand_instance_view=True)
    assert no_group.value.status == 404
    # A Uniform set's instances are not VM resources of the group.
    uniform = Backend({"instances": 2})
    assert uniform.list_vms(RG, vmss_filter=set_filter(uniform), expand_instance_view=True) == ([], None)


def test_scenario_references_take_the_suffix_or_the_vm_name_and_new_vms_continue_the_names():
    backend = Backend({"orchestration_mode": "Flexible", "instances": [{"id": "0"}, {"id": "vmss-demo_5"}],
                       "events": [{"at_seconds": 0, "instance": "5", "health": "unhealthy"}],
                       "faults": {"conflict_first_reimage": ["0"]}})
    backend.history()  # applies the event at t=0
    health = {vm.id: vm.health
              for vm in backend.list_vms(RG, vmss_filter=set_filter(backend), expand_instance_view=True)[0]}
    assert health["vmss-demo_5"] == "unhealthy"
    with pytest.raises(ArmError) as busy:
        backend.reimage_vm(RG, "vmss-demo_0")
    assert busy.value.status == 409 and busy.value.code == "Conflict"
    backend.update_scale_set(RG, NAME, {"sku": {"capacity": 3}})
    assert sorted(backend.history()["instances"]) == ["vmss-demo_0", "vmss-demo_5", "vmss-demo_6"]


@pytest.mark.parametrize("scenario, words", [
    ({"instances": [{"id": "0", "locked": True}]}, ["instances[0].locked", "Flexible"]),
    ({"instances": [{"id": "0", "standby": True}]}, ["instances[0].standby", "Flexible"]),
    ({"flexible_vm_names": "guid"}, ["flexible_vm_names", "Flexible"]),
    ({"flexible_list_omits_health": True}, ["flexible_list_omits_health", "Flexible"]),
])
def test_keys_of_the_other_mode_are_refused_in_one_line(scenario, words):
    with pytest.raises(ScenarioError) as refused:
        load_scenario(scenario)
    assert "\n" not in str(refused.value) and all(w in str(refused.value) for w in words)
