"""ARM's JSON bodies for the backend's snapshots, in the shapes of Azure's recordings.

Pure functions of the scenario (names, location, model) and one snapshot: the HTTP layer sends
what they return, and the in-process port deserializes the same bodies with the SDK's models.
Error bodies are the errors' own (`errors.ArmError.body`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from . import routes
from .backend import OperationSnapshot, ScaleSetSnapshot, VmSnapshot
from .scenario import Scenario

VM_SIZE = "Standard_D2s_v3"
HEALTH_EXTENSION_NAME = "HealthExtension"

_POWER_DISPLAY = {
    "running": "VM running", "starting": "VM starting", "stopping": "VM stopping",
    "stopped": "VM stopped", "deallocating": "VM deallocating", "deallocated": "VM deallocated",
}
# vmHealth's `level` and `displayStatus` as Azure sets them: unhealthy is `Error` (the vmHealth
# body quoted in Azure/azure-cli#15018), unknown `Warning` (Learn: health-extension, "View
# VMHealth"); the others `Info`.
_HEALTH_DISPLAY = {
    "healthy": "The VM is reporting healthy.",
    "unhealthy": "The VM is reporting itself as unhealthy or is unreachable",
    "initializing": "The VM health is initializing.", "unknown": "The VM health is unknown",
}
_HEALTH_LEVEL = {"unhealthy": "Error", "unknown": "Warning"}


def iso(t: float) -> str:
    """Azure's timestamp format: seven fractional digits and an explicit offset."""
    stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp + "0+00:00"


def iso_duration(seconds: float) -> str:
    """An ISO 8601 duration as ARM writes grace periods: `PT30M`, else `PT90S`."""
    if seconds % 60 == 0:
        return f"PT{int(seconds // 60)}M"
    return f"PT{seconds:g}S"


def scale_set_id(scenario: Scenario) -> str:
    return routes.VMSS.format(subscription=scenario.subscription_id, rg=scenario.resource_group,
                              name=scenario.scale_set_name)


def _flexible(scenario: Scenario) -> bool:
    return scenario.orchestration_mode == "Flexible"


def _extensions(scenario: Scenario) -> list[dict]:
    extensions = [{
        "name": "customScript",
        "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                       "typeHandlerVersion": "2.1", "autoUpgradeMinorVersion": True,
                       "settings": {"commandToExecute": "./install-service.sh"}},
    }]
    if scenario.health_extension:
        extensions.append({
            "name": HEALTH_EXTENSION_NAME,
            "properties": {"publisher": "Microsoft.ManagedServices",
                           "type": "ApplicationHealthLinux", "typeHandlerVersion": "2.0",
                           "autoUpgradeMinorVersion": True,
                           "settings": {"protocol": "http", "port": 80, "requestPath": "/health"}},
        })
    return extensions


def scale_set(scenario: Scenario, snapshot: ScaleSetSnapshot) -> dict:
    s = scenario
    body = {
        "name": s.scale_set_name,
        "id": scale_set_id(s),
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": s.location,
        "tags": {},
        "sku": {"name": VM_SIZE, "tier": "Standard", "capacity": snapshot.capacity},
        "properties": {
            "singlePlacementGroup": True,
            "orchestrationMode": s.orchestration_mode,
            "upgradePolicy": {"mode": s.upgrade_mode},
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": s.scale_set_name[:9],
                    "adminUsername": "azureuser",
                    "linuxConfiguration": {"disablePasswordAuthentication": True,
                                           "provisionVMAgent": True},
                    "secrets": [],
                    "allowExtensionOperations": True,
                },
                "storageProfile": {
                    "osDisk": {"osType": "Linux", "createOption": "FromImage",
                               "caching": "ReadWrite",
                               "managedDisk": {"storageAccountType": "Premium_LRS"},
                               "diskSizeGB": 30},
                    "imageReference": {"publisher": "Canonical",
                                       "offer": "ubuntu-24_04-lts", "sku": "server",
                                       "version": "latest"},
                },
                "extensionProfile": {"extensions": _extensions(s)},
            },
            "provisioningState": "Updating" if snapshot.updating else "Succeeded",
            "overprovision": s.overprovision,
            "doNotRunExtensionsOnOverprovisionedVMs": False,
            "uniqueId": snapshot.unique_id,
            "timeCreated": iso(snapshot.time_created),
        },
    }
    if s.automatic_repairs is not None:
        policy = s.automatic_repairs
        body["properties"]["automaticRepairsPolicy"] = {
            "enabled": policy.enabled, "gracePeriod": iso_duration(policy.grace_minutes * 60),
            "repairAction": policy.action}
    if s.automatic_os_upgrade:
        body["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"] = {
            "enableAutomaticOSUpgrade": True}
    if s.zones:
        body["zones"] = list(s.zones)
    if _flexible(s):  # as `az vmss create --orchestration-mode Flexible` makes them
        body["properties"].update(singlePlacementGroup=False, platformFaultDomainCount=1)
    return body


def scale_set_instance_view(scenario: Scenario, snapshot: ScaleSetSnapshot,
                            vms: tuple[VmSnapshot, ...]) -> dict:
    counts: dict[str, int] = {}
    for vm in vms:
        code = f"ProvisioningState/{vm.provisioning}"
        counts[code] = counts.get(code, 0) + 1
    summary = [{"code": c, "count": n} for c, n in sorted(counts.items())]
    state = "updating" if snapshot.updating else "succeeded"
    view = {
        "virtualMachine": {"statusesSummary": summary},
        "extensions": [{"name": e["name"], "statusesSummary": summary}
                       for e in _extensions(scenario)],
        "statuses": [{"code": f"ProvisioningState/{state}", "level": "Info",
                      "displayStatus": f"Provisioning {state}",
                      "time": iso(snapshot.time_created)}],
    }
    if snapshot.repairs is not None:  # as REST spec example VirtualMachineScaleSet_GetInstanceView
        view["orchestrationServices"] = [{"serviceName": "AutomaticRepairs",
                                          "serviceState": snapshot.repairs}]
    return view


def rolling_upgrade(scenario: Scenario, snapshot: ScaleSetSnapshot) -> dict:
    """`rollingUpgrades/latest` of an upgrade running since the set was made."""
    return {
        "type": "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades",
        "location": scenario.location,
        "properties": {
            "policy": {"maxBatchInstancePercent": 20, "maxUnhealthyInstancePercent": 20,
                       "maxUnhealthyUpgradedInstancePercent": 20,
                       "pauseTimeBetweenBatches": "PT0S"},
            "runningStatus": {"lastAction": "Start", "lastActionTime": iso(snapshot.time_created),
                              "code": "RollingForward", "startTime": iso(snapshot.time_created)},
            "progress": {"successfulInstanceCount": 0, "failedInstanceCount": 0,
                         "inProgressInstanceCount": 1,
                         "pendingInstanceCount": max(snapshot.instance_count - 1, 0)},
        },
    }


def os_upgrade_history(scenario: Scenario, snapshot: ScaleSetSnapshot, rolling: bool) -> dict:
    """`osUpgradeHistory`: one automatic OS image upgrade rolling forward, or none. The shape of
    the output Microsoft Learn shows (*Automatic OS image upgrades*, "Check the status")."""
    if not rolling:
        return {"value": []}
    return {"value": [{
        "properties": {
            "runningStatus": {"code": "RollingForward", "startTime": iso(snapshot.time_created)},
            "progress": {"successfulInstanceCount": 0, "failedInstanceCount": 0,
                         "inProgressInstanceCount": 1,
                         "pendingInstanceCount": max(snapshot.instance_count - 1, 0)},
            "startedBy": "Platform",
            "targetImageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                                     "sku": "server", "version": "latest"},
            "rollbackInfo": {"successfullyRolledbackInstanceCount": 0,
                             "failedRolledbackInstanceCount": 0},
        },
        "type": "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades",
        "location": scenario.location,
    }]}


def vm(scenario: Scenario, snapshot: VmSnapshot, *, expand: bool, listed: bool = False) -> dict:
    """An instance as its own API shows it: a scale-set VM (Uniform), or for a Flexible set a
    `Microsoft.Compute/virtualMachines` resource that names its set: no instanceId, and no
    protection policy (the VM model has none; the scale-set VM view carries it).
    `expand`: with its instance view, as `$expand=instanceView` asks; `listed`: as a list shows
    it (`flexible_list_omits_health` leaves vmHealth out of the resource group's VM list)."""
    s = scenario
    if not _flexible(s):
        return scale_set_vm(s, snapshot, expand=expand)
    body = {
        "name": snapshot.id,
        "id": routes.SINGLE_VM.format(subscription=s.subscription_id, rg=s.resource_group,
                                      vm_name=snapshot.id),
        "type": "Microsoft.Compute/virtualMachines",
        "location": s.location,
        "tags": {},
        "properties": {
            "vmId": snapshot.vm_id,
            "hardwareProfile": {"vmSize": VM_SIZE},
            "virtualMachineScaleSet": {"id": scale_set_id(s)},
            "osProfile": {"computerName": snapshot.computer_name, "adminUsername": "azureuser"},
            "platformFaultDomain": snapshot.fault_domain,
            "provisioningState": snapshot.provisioning.capitalize(),
            "timeCreated": iso(snapshot.time_created),
        },
    }
    if snapshot.zone is not None:
        body["zones"] = [snapshot.zone]
    if expand:
        body["properties"]["instanceView"] = instance_view(
            scenario, snapshot, health=not (listed and s.flexible_list_omits_health))
    return body


def scale_set_vm(scenario: Scenario, snapshot: VmSnapshot, *, expand: bool) -> dict:
    """A scale-set VM (`virtualMachineScaleSets/{name}/virtualMachines/{instanceId}`), with its
    protection policy. On a Flexible set its instanceId and name are the VM's name (Learn:
    virtual-machine-scale-sets-instance-ids), and it has no instance view even when asked:
    for a Flexible set this API gives the scale set's view of each VM, and Azure points to the
    VM APIs for the rest (Learn: virtual-machine-scale-sets-orchestration-modes)."""
    s = scenario
    flexible = _flexible(s)
    body = {
        "name": snapshot.id if flexible else f"{s.scale_set_name}_{snapshot.id}",
        "id": routes.VM.format(subscription=s.subscription_id, rg=s.resource_group,
                               name=s.scale_set_name, instance_id=snapshot.id),
        "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "location": s.location,
        "tags": {},
        "instanceId": snapshot.id,
        "sku": {"name": VM_SIZE, "tier": "Standard"},
        "properties": {
            "latestModelApplied": snapshot.latest_model_applied,
            "modelDefinitionApplied": "VirtualMachineScaleSet",
            "vmId": snapshot.vm_id,
            "hardwareProfile": {"vmSize": VM_SIZE},
            "osProfile": {"computerName": snapshot.computer_name, "adminUsername": "azureuser"},
            # Learn: protecting from scale-set actions implies protecting from scale-in.
            "protectionPolicy": {"protectFromScaleIn": snapshot.protected,
                                 "protectFromScaleSetActions": snapshot.protected},
            "provisioningState": snapshot.provisioning.capitalize(),
            "timeCreated": iso(snapshot.time_created),
        },
    }
    if snapshot.zone is not None:
        body["zones"] = [snapshot.zone]
    if expand and not flexible:
        body["properties"]["instanceView"] = instance_view(scenario, snapshot)
    return body


def instance_view(scenario: Scenario, snapshot: VmSnapshot, *, health: bool = True) -> dict:
    """An instance's view; `health` False leaves vmHealth out, as a list may."""
    if snapshot.provisioning == "failed":
        provisioning = {"code": f"ProvisioningState/failed/{snapshot.error_code}", "level": "Error",
                        "displayStatus": "Provisioning failed",
                        "message": f"Error code: {snapshot.error_code}",
                        "time": iso(snapshot.provisioning_time)}
    else:
        provisioning = {"code": f"ProvisioningState/{snapshot.provisioning}", "level": "Info",
                        "displayStatus": f"Provisioning {snapshot.provisioning}",
                        "time": iso(snapshot.provisioning_time)}
    view = {
        "platformUpdateDomain": snapshot.fault_domain,
        "platformFaultDomain": snapshot.fault_domain,
        "computerName": snapshot.computer_name,
        "osName": "ubuntu",
        "osVersion": "24.04",
        "statuses": [provisioning, {"code": f"PowerState/{snapshot.power}", "level": "Info",
                                    "displayStatus": _POWER_DISPLAY[snapshot.power]}],
    }
    # The OS disk, as recorded (azure-recordings/vmss_vm_instance_view.json `disks`): its
    # ProvisioningState time is when it was provisioned, which a reimage moves.
    view["disks"] = [{"name": f"{snapshot.computer_name}_OsDisk_1",
                      "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                    "displayStatus": "Provisioning succeeded",
                                    "time": iso(snapshot.os_disk_time)}]}]
    if _flexible(scenario):
        view["isVMInStandbyPool"] = snapshot.standby
    shown, reported = snapshot.shown_health  # stale for a while after a reimage
    if health and scenario.health_extension and shown is not None:
        view["vmHealth"] = {"status": {"code": f"HealthState/{shown}",
                                       "level": _HEALTH_LEVEL.get(shown, "Info"),
                                       "displayStatus": _HEALTH_DISPLAY[shown],
                                       "time": iso(reported)}}
    return view


def operation(snapshot: OperationSnapshot) -> dict:
    """The Azure-AsyncOperation status body."""
    body = {"startTime": iso(snapshot.start), "status": snapshot.status, "name": snapshot.id}
    if snapshot.end is not None:
        body["endTime"] = iso(snapshot.end)
    if snapshot.error_code is not None:
        body["error"] = {"code": snapshot.error_code, "message": snapshot.error_message}
    return body
