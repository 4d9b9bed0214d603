"""The latest-model flag, the manual upgrade and the OS disk's time, through the adapter over
real HTTPS (azure-identity, azure-mgmt-compute) against the simulator."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import VirtualMachineScaleSetVMInstanceRequiredIDs

from cycle_vmss.compute import Conflict, OperationState

from .conftest import arm_requests, make_port, wait


def test_a_model_update_leaves_every_instance_off_the_latest_model(simulate):
    sim = simulate({"events": [{"at_seconds": 0.5, "model_update": True}]})
    port = make_port(sim)
    assert [i.latest_model_applied for i in port.list_instances()] == [True, True, True]
    time.sleep(0.6)
    assert [i.latest_model_applied for i in port.list_instances()] == [False, False, False]


def test_a_manual_upgrade_moves_only_the_named_instance_and_takes_it_out_of_service(simulate):
    sim = simulate({"events": [{"at_seconds": 0, "model_update": True}],
                    "timings": {"manual_upgrade_seconds": 0.6, "boot_seconds": 0.2,
                                "health_seconds": 0.2}})
    port = make_port(sim)
    port.get_scale_set()

    op = port.begin_manual_upgrade("1")
    with pytest.raises(Conflict):  # busy meanwhile, as with a reimage
        port.begin_reimage("1")
    assert wait(op).state is OperationState.SUCCEEDED

    assert [i.latest_model_applied for i in port.list_instances()] == [False, True, False]
    (post,) = [r for r in arm_requests(sim) if r["method"] == "POST" and r["status"] == 202]
    assert post["path"].endswith("/virtualMachineScaleSets/vmss-demo/manualupgrade")
    record = sim.history()["instances"]["1"]
    (upgrade,) = record["manual_upgrades"]
    assert upgrade["status"] == "Succeeded" and record["reimages"] == []
    assert record["not_ready"] and record["not_ready"][0][0] == upgrade["start"]


def test_the_os_disk_time_moves_to_the_end_of_a_reimage(simulate):
    sim = simulate({"instances": [{"id": "0", "os_disk_time": -3600}, {"id": "1"}]})
    port = make_port(sim)
    port.get_scale_set()
    start = sim.history()["start"]
    before = {i.id: i.os_disk_time for i in port.list_instances()}
    assert before == pytest.approx({"0": start - 3600, "1": start - 86400}, abs=0.001)

    assert wait(port.begin_reimage("0")).state is OperationState.SUCCEEDED
    after = {i.id: i.os_disk_time for i in port.list_instances()}
    (reimage,) = sim.history()["instances"]["0"]["reimages"]
    assert after["0"] == pytest.approx(reimage["end"], abs=1) and after["1"] == before["1"]


def test_a_flexible_set_has_no_latest_model_flag_and_refuses_the_manual_upgrade(simulate):
    sim = simulate({"orchestration_mode": "Flexible"})
    port = make_port(sim)
    port.get_scale_set()
    assert all(i.latest_model_applied is None for i in port.list_instances())  # VMs: no such flag
    with pytest.raises(HttpResponseError) as refused:
        port.client.virtual_machine_scale_sets.begin_update_instances(
            "rg-demo", "vmss-demo", VirtualMachineScaleSetVMInstanceRequiredIDs(
                instance_ids=["vmss-demo_0"])).result()
    assert refused.value.status_code == 400 and "OperationNotAllowed" in str(refused.value)
