"""Flexible sets as Azure serves them, over real HTTPS through the SDK (issue 17): protection
read from the scale set's VM list on both kinds of set, VMs named `<set>_<8 hex>`, and a VM
list without vmHealth, where only the in-flight VMs' own instance views are read."""

from __future__ import annotations

import re

import pytest

from cycle_vmss.clock import SystemClock
from cycle_vmss.engine import run_rollout
from cycle_vmss.settings import build_settings

from .conftest import arm_requests, make_port

FLEX = {"orchestration_mode": "Flexible"}


def test_the_scale_set_vm_list_gives_protection_and_views_give_health(simulate):
    sim = simulate({**FLEX, "flexible_list_omits_health": True, "instances": [
        {"id": "0"}, {"id": "1", "protect_from_scale_set_actions": True}]})
    port = make_port(sim)
    port.get_scale_set()

    listed = port.list_instances()
    protected = port.protected_instances()
    views = port.instance_views(["vmss-demo_1", "vmss-demo_9"])

    assert [(i.id, i.health, i.health_listed, i.protected) for i in listed] == [
        ("vmss-demo_0", None, False, False), ("vmss-demo_1", None, False, False)]
    assert protected == {"vmss-demo_1"}
    assert [(v.id, v.provisioning, v.power, v.health) for v in views] == [
        ("vmss-demo_1", "succeeded", "running", "healthy")]  # vmss-demo_9 is gone: left out
    paths = [r["path"].split("/providers/Microsoft.Compute/", 1)[1] for r in arm_requests(sim)]
    assert paths == ["virtualMachineScaleSets/vmss-demo", "virtualMachines",
                     "virtualMachineScaleSets/vmss-demo/virtualMachines",
                     "virtualMachines/vmss-demo_1/instanceView",
                     "virtualMachines/vmss-demo_9/instanceView"]


class Events:
    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = {"started": {}, "done": {}}

    def event(self, e) -> None:
        if e.kind in self.times:
            self.times[e.kind][e.instance_id] = e.time


def rollout(sim, events=None) -> dict:
    info = sim.info
    settings = build_settings({"resource_group": info["resource_group"],
                               "scale_set_name": info["scale_set_name"],
                               "poll_interval_seconds": "1"})
    port = make_port(sim)
    try:
        return run_rollout(settings, port, clock=SystemClock(), listener=events or Events()).as_dict()
    finally:
        port.close()


@pytest.mark.parametrize("orchestration_mode", ["Uniform", "Flexible"])
def test_a_protected_instance_is_skipped_and_its_reimage_never_sent(simulate, orchestration_mode):
    sim = simulate({"orchestration_mode": orchestration_mode, "instances": [
        {"id": "0"}, {"id": "1", "protect_from_scale_set_actions": True}]})
    protected = "1" if orchestration_mode == "Uniform" else "vmss-demo_1"

    report = rollout(sim)

    rows = {row["id"]: row for row in report["instances"]}
    assert report["result"] == "succeeded"
    assert (rows[protected]["action"], rows[protected]["reason"]) == (
        "skipped", "protected from scale-set actions")
    posts = [r["path"].rsplit("/", 2)[-2] for r in arm_requests(sim) if r["method"] == "POST"]
    assert protected not in posts and len(posts) == 1
    assert sim.history()["instances"][protected]["reimages"] == []


@pytest.mark.slow
def test_guid_named_vms_without_listed_health_are_reimaged_within_the_budget(simulate):
    sim = simulate({**FLEX, "flexible_vm_names": "guid", "flexible_list_omits_health": True,
                    "instances": 3})
    events = Events()

    report = rollout(sim, events)

    names = [row["id"] for row in report["instances"]]
    assert report["result"] == "succeeded"
    assert all(re.fullmatch(r"vmss-demo_[0-9a-f]{8}", n) for n in names) and len(names) == 3
    assert [row["action"] for row in report["instances"]] == ["reimaged"] * 3
    history = sim.history()
    assert history["max_not_ready"] == 1 and history["whole_set_reimages"] == 0
    started, done = events.times["started"], events.times["done"]
    assert all(done[n] >= history["instances"][n]["not_ready"][-1][1] for n in names)
    views = [(r["path"].split("/")[-2], r["time"]) for r in arm_requests(sim)
             if r["path"].endswith("/instanceView")]
    assert views and all(started[vm] <= t <= done[vm] for vm, t in views)
