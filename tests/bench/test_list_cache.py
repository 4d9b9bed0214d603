"""What makes a thousand-instance virtual run cheap: the simulator hands out the same list pages
and bodies until something on them changes, and the in-process port then returns the same
Instances (and the same tuple) without mapping them again. Whatever is cached, a list must show
every change at once."""

from __future__ import annotations

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend, iso
from cycle_vmss.simulator.inprocess import SimulatorComputePort

RG, NAME = "rg-demo", "vmss-demo"
SCENARIO = {"instances": 25, "page_size": 10,
            "timings": {"reimage_seconds": 10, "boot_seconds": 2, "health_seconds": 3}}


def pages(backend):
    out, after = [], None
    while True:
        page, after = backend.list_instances(RG, NAME, expand_instance_view=True, after=after)
        out.append(page)
        if after is None:
            return out


def health(body):
    return body["properties"]["instanceView"].get("vmHealth", {}).get("status", {})


def test_unchanged_pages_are_the_same_objects_and_changes_show_at_once():
    clock = VirtualClock()
    backend = Backend(SCENARIO, clock)
    first = pages(backend)
    clock.sleep(30)
    again = pages(backend)
    assert all(a is b for a, b in zip(first, again))  # nothing changed: nothing rebuilt
    healthy_since = health(first[1][2])["time"]
    assert healthy_since == iso(backend.start)  # when health last changed, not when listed

    backend.reimage(RG, NAME, "12")
    after = pages(backend)
    assert after[0] is first[0] and after[2] is first[2]  # only page 1 (ids 10..19) changed
    changed = after[1][2]
    assert changed is not first[1][2] and changed["instanceId"] == "12"
    assert changed["properties"]["provisioningState"] == "Updating"
    assert "vmHealth" not in changed["properties"]["instanceView"]
    assert all(a is b for i, (a, b) in enumerate(zip(first[1], after[1])) if i != 2)

    clock.sleep(12)  # reimage 10 + boot 2: succeeded, running, health initializing
    view = pages(backend)[1][2]["properties"]["instanceView"]
    assert [s["code"] for s in view["statuses"]] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view["vmHealth"]["status"]["code"] == "HealthState/initializing"
    assert view["vmHealth"]["status"]["time"] == iso(clock.now())
    clock.sleep(5)
    status = health(pages(backend)[1][2])
    assert status["code"] == "HealthState/healthy" and status["time"] == iso(clock.now() - 2)


def test_removed_and_added_instances_change_the_pages():
    clock = VirtualClock()
    backend = Backend({**SCENARIO, "timings": {**SCENARIO["timings"], "delete_seconds": 1,
                                               "create_seconds": 1}}, clock)
    before = [b["instanceId"] for page in pages(backend) for b in page]
    backend.delete_instances(RG, NAME, ["3"])
    backend.update_scale_set(RG, NAME, {"sku": {"capacity": 26}})
    clock.sleep(5)
    after = [b["instanceId"] for page in pages(backend) for b in page]
    assert "3" in before and "3" not in after
    assert after == [i for i in before if i != "3"] + ["25", "26"]


def test_the_port_returns_the_same_instances_until_they_change():
    clock = VirtualClock()
    backend = Backend(SCENARIO, clock)
    port = SimulatorComputePort(backend, RG, NAME)
    first = port.list_instances()
    assert port.list_instances() is first  # an unchanged list: the very same tuple
    reads = port.counts.reads
    assert reads == 2 * 3  # still one request per page, every time

    backend.reimage(RG, NAME, "7")
    second = port.list_instances()
    assert second is not first
    moved = [i for i, (a, b) in enumerate(zip(first, second)) if a is not b]
    assert moved == [7]
    assert (second[7].provisioning, second[7].power, second[7].health) == ("updating", "stopping", None)
    assert first[7].provisioning == "succeeded"  # what was handed out is never changed
