"""`timings.stale_health_seconds`: after a reimage ends, vmHealth shows the value and time it had
before for that long, while the history (the availability judge) follows the instance's truth."""

from azure.mgmt.compute import models

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator import bodies
from cycle_vmss.simulator.backend import Backend

RG, NAME = "rg-demo", "vmss-demo"
# A reimage ends at 4 s (reimage 3 + boot 1); the fresh health comes 10 s later, at 14 s; the
# old one is shown until 4 + 20 = 24 s.
STALE = {"instances": 2, "timings": {"health_seconds": 10, "stale_health_seconds": 20}}


def make(scenario):
    clock = VirtualClock()
    return Backend(scenario, clock), clock


def vm_health(backend, instance_id="0"):
    """vmHealth as the SDK reads it from the served view: (code, time in epoch seconds)."""
    view = models.VirtualMachineScaleSetVMInstanceView(
        bodies.instance_view(backend.scenario, backend.get_instance(RG, NAME, instance_id)))
    status = view.vm_health.status if view.vm_health is not None else None
    return (status.code, status.time.timestamp()) if status is not None else None


def test_the_old_health_and_its_time_are_shown_after_the_reimage_ends():
    backend, clock = make(STALE)
    start = backend.start
    backend.reimage(RG, NAME, "0")
    clock.advance_to(start + 1)
    assert vm_health(backend) is None  # while the reimage runs: no vmHealth, as before
    for offset in (4, 5, 13.9, 14, 23.9):
        clock.advance_to(start + offset)
        assert vm_health(backend) == ("HealthState/healthy", start), offset
    clock.advance_to(start + 24)
    assert vm_health(backend) == ("HealthState/healthy", start + 14)  # the fresh report
    assert vm_health(backend, "1") == ("HealthState/healthy", start)  # untouched
    # The judge is the truth: not ready from the reimage's start until the fresh healthy.
    history = backend.history()
    assert history["instances"]["0"]["not_ready"] == [[start, start + 14]]
    assert history["max_not_ready"] == 1


def test_the_stale_value_is_what_it_was_even_when_it_was_not_healthy():
    backend, clock = make({**STALE, "instances": [{"id": "0", "health": "unhealthy"}]})
    backend.reimage(RG, NAME, "0")
    clock.advance_to(backend.start + 5)
    assert vm_health(backend) == ("HealthState/unhealthy", backend.start)


def test_without_the_key_the_fresh_health_is_shown_at_once():
    backend, clock = make({"instances": 1, "timings": {"health_seconds": 10}})
    backend.reimage(RG, NAME, "0")
    clock.advance_to(backend.start + 5)
    assert vm_health(backend) == ("HealthState/initializing", backend.start + 4)


def test_a_delete_or_a_new_reimage_ends_the_stale_view():
    backend, clock = make(STALE)
    backend.reimage(RG, NAME, "0")
    backend.reimage(RG, NAME, "1")
    clock.advance_to(backend.start + 15)
    backend.reimage(RG, NAME, "0")
    backend.delete_instances(RG, NAME, ["1"])
    assert vm_health(backend) is None  # reimaging again: no vmHealth
    assert vm_health(backend, "1") is None  # deleting
    clock.advance_to(backend.start + 19)  # the second reimage of 0 ended at 19 s
    assert vm_health(backend) == ("HealthState/healthy", backend.start + 14)
    clock.advance_to(backend.start + 39)
    assert vm_health(backend) == ("HealthState/healthy", backend.start + 29)


def test_health_levels_are_azures():
    backend, _ = make({"instances": [{"id": "0", "health": "unhealthy"},
                                     {"id": "1", "health": "unknown"},
                                     {"id": "2", "health": "initializing"},
                                     {"id": "3"}]})
    levels = {}
    for instance_id in "0123":
        view = bodies.instance_view(backend.scenario, backend.get_instance(RG, NAME, instance_id))
        levels[view["vmHealth"]["status"]["code"]] = view["vmHealth"]["status"]["level"]
    assert levels == {"HealthState/unhealthy": "Error", "HealthState/unknown": "Warning",
                      "HealthState/initializing": "Info", "HealthState/healthy": "Info"}
