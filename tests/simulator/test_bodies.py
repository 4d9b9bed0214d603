"""ARM bodies of the backend's snapshots: the shapes of Azure's recordings, and what the SDK's
models read from them."""

from azure.mgmt.compute import models

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator import bodies
from cycle_vmss.simulator.backend import Backend

RG, NAME = "rg-demo", "vmss-demo"


def make(scenario=None):
    clock = VirtualClock()
    return Backend(scenario, clock), clock


def extension_types(scale_set_body):
    profile = scale_set_body["properties"]["virtualMachineProfile"]
    return [e["properties"]["type"] for e in profile["extensionProfile"]["extensions"]]


def test_scale_set_body_has_the_recorded_shape():
    backend, _ = make()
    body = bodies.scale_set(backend.scenario, backend.get_scale_set(RG, NAME))
    assert body["name"] == NAME and body["type"] == "Microsoft.Compute/virtualMachineScaleSets"
    assert body["id"] == (f"/subscriptions/{backend.scenario.subscription_id}/resourceGroups/{RG}"
                          f"/providers/Microsoft.Compute/virtualMachineScaleSets/{NAME}")
    assert body["sku"]["capacity"] == 6
    props = body["properties"]
    assert props["orchestrationMode"] == "Uniform" and props["upgradePolicy"] == {"mode": "Manual"}
    assert props["provisioningState"] == "Succeeded"
    assert props["timeCreated"] == bodies.iso(backend.start)
    assert "ApplicationHealthLinux" in extension_types(body)
    scale_set, _ = backend.update_scale_set(RG, NAME, {"sku": {"capacity": 7}})
    assert bodies.scale_set(backend.scenario, scale_set)["properties"]["provisioningState"] == "Updating"


def test_vm_body_has_the_recorded_shape_and_vmhealth_with_the_extension():
    backend, _ = make({"instances": [{"id": "4", "zone": "2", "fault_domain": 3,
                                      "protect_from_scale_set_actions": True}]})
    snapshot = backend.get_instance(RG, NAME, "4")
    vm = bodies.vm(backend.scenario, snapshot, expand=True)
    assert vm["instanceId"] == "4" and vm["name"] == f"{NAME}_4" and vm["zones"] == ["2"]
    assert vm["id"].endswith(f"/virtualMachineScaleSets/{NAME}/virtualMachines/4")
    assert vm["properties"]["protectionPolicy"]["protectFromScaleSetActions"] is True
    view = vm["properties"]["instanceView"]
    assert view == bodies.instance_view(backend.scenario, snapshot)
    assert view["platformFaultDomain"] == 3 and view["computerName"] == "vmss-demo000004"
    assert [s["code"] for s in view["statuses"]] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view["vmHealth"]["status"] == {"code": "HealthState/healthy", "level": "Info",
                                          "displayStatus": "The VM is reporting healthy.",
                                          "time": bodies.iso(backend.start)}
    assert "instanceView" not in bodies.vm(backend.scenario, snapshot, expand=False)["properties"]


def test_a_flexible_vm_is_a_virtual_machine_naming_its_set():
    backend, _ = make({"orchestration_mode": "Flexible", "instances": [{"id": "0", "standby": True}]})
    vm = bodies.vm(backend.scenario, backend.get_vm(RG, "vmss-demo_0"), expand=True)
    assert vm["type"] == "Microsoft.Compute/virtualMachines" and "instanceId" not in vm
    assert vm["id"].endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vmss-demo_0")
    assert vm["properties"]["virtualMachineScaleSet"]["id"] == bodies.scale_set_id(backend.scenario)
    assert vm["properties"]["instanceView"]["isVMInStandbyPool"] is True


def test_without_the_health_extension_there_is_no_vmhealth_anywhere():
    backend, clock = make({"health_extension": False, "instances": 2})
    assert "ApplicationHealthLinux" not in extension_types(
        bodies.scale_set(backend.scenario, backend.get_scale_set(RG, NAME)))
    backend.reimage(RG, NAME, "0")
    for offset in (0, 2, 4, 5, 9):
        clock.advance_to(backend.start + offset)
        page, _ = backend.list_instances(RG, NAME)
        assert all("vmHealth" not in bodies.instance_view(backend.scenario, vm) for vm in page)
    # ready without health: the interval ends when the operation succeeds
    assert backend.history()["instances"]["0"]["not_ready"] == [[backend.start, backend.start + 4]]


def test_a_failed_reimage_shows_its_error_code_in_the_view_and_the_operation():
    backend, clock = make({"instances": [{"on_reimage": "fail", "error_code": "OSProvisioningTimedOut"}]})
    op = backend.reimage(RG, NAME, "0")
    clock.sleep(60)
    view = bodies.instance_view(backend.scenario, backend.get_instance(RG, NAME, "0"))
    assert view["statuses"][0]["code"] == "ProvisioningState/failed/OSProvisioningTimedOut"
    assert view["statuses"][0]["level"] == "Error"
    status = bodies.operation(backend.operation_status(op))
    assert status == {"name": op, "startTime": bodies.iso(backend.start), "status": "Failed",
                      "endTime": bodies.iso(backend.start + 4),
                      "error": {"code": "OSProvisioningTimedOut", "message": status["error"]["message"]}}
    assert "OSProvisioningTimedOut" in status["error"]["message"]


def test_an_operation_in_progress_has_no_end_and_no_error():
    backend, _ = make()
    op = backend.reimage(RG, NAME, "0")
    assert bodies.operation(backend.operation_status(op)) == {
        "name": op, "startTime": bodies.iso(backend.start), "status": "InProgress"}


def test_scale_set_instance_view_summarises_provisioning_states():
    backend, _ = make({"instances": 3})
    backend.reimage(RG, NAME, "0")
    view = bodies.scale_set_instance_view(backend.scenario, *backend.get_scale_set_instance_view(RG, NAME))
    assert sorted((s["code"], s["count"]) for s in view["virtualMachine"]["statusesSummary"]) == [
        ("ProvisioningState/succeeded", 2), ("ProvisioningState/updating", 1)]
    assert [e["name"] for e in view["extensions"]] == ["customScript", bodies.HEALTH_EXTENSION_NAME]


def test_a_running_rolling_upgrade_is_rolling_forward():
    backend, _ = make({"rolling_upgrade_in_progress": True})
    body = bodies.rolling_upgrade(backend.scenario, backend.latest_rolling_upgrade(RG, NAME))
    assert body["properties"]["runningStatus"]["code"] == "RollingForward"
    assert body["properties"]["progress"]["pendingInstanceCount"] == 5


def test_bodies_deserialise_with_azure_mgmt_compute():
    backend, clock = make({"instances": [{}, {"on_reimage": "fail", "error_code": "Boom"}]})
    scale_set = models.VirtualMachineScaleSet(bodies.scale_set(backend.scenario, backend.get_scale_set(RG, NAME)))
    assert scale_set.sku.capacity == 2
    assert scale_set.properties.orchestration_mode == "Uniform"
    assert scale_set.properties.upgrade_policy.mode == "Manual"
    page, _ = backend.list_instances(RG, NAME)
    vm = models.VirtualMachineScaleSetVM(bodies.vm(backend.scenario, page[0], expand=True))
    assert vm.instance_id == "0" and vm.zones == ["1"]
    assert vm.properties.instance_view.vm_health.status.code == "HealthState/healthy"
    assert vm.properties.instance_view.statuses[0].time.timestamp() == backend.start
    backend.reimage(RG, NAME, "1")
    clock.sleep(10)
    view = models.VirtualMachineScaleSetVMInstanceView(
        bodies.instance_view(backend.scenario, backend.get_instance(RG, NAME, "1")))
    assert view.statuses[0].code == "ProvisioningState/failed/Boom"
