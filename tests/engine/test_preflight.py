"""Preflight on its own: the frozen value it returns (plan, first run state, plan report, ready
count), the events it emits, its waits through the engine's callable, and that a refusal carries
the scale set read so far. The refusals' messages are checked end to end in test_rollout."""

from __future__ import annotations

import pytest

from cycle_vmss.clock import VirtualClock
from cycle_vmss.decide import Status
from cycle_vmss.preflight import PreflightStop, preflight
from cycle_vmss.settings import HealthSource, build_settings
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort

from .conftest import NAME, RG


def run(scenario: dict, wait=None, **raw: str):
    clock = VirtualClock()
    backend = Backend(scenario, clock)
    settings = build_settings({"resource_group": RG, "scale_set_name": NAME, **raw})
    port = SimulatorComputePort(backend, settings.resource_group, settings.scale_set_name)
    events, waits = [], []

    def emit(kind, instance_id=None, message="", data=None):
        events.append((kind, instance_id, message, data))

    def default_wait(message, ready):
        waits.append((clock.now(), message, ready))
        clock.sleep(settings.poll_interval_seconds)
        return True

    result = preflight(settings, port, clock, emit, wait or default_wait)
    return result, events, waits, port


def test_returns_the_plan_and_the_first_state_reading_only():
    pre, events, waits, port = run(
        {"instances": [{"id": "0"}, {"id": "1"}, {"id": "2", "power": "stopped"},
                       {"id": "3", "protect_from_scale_set_actions": True}]},
        instance_ids="0, 2, 3", max_surge="1")
    assert [i.id for i in pre.instances] == ["0", "1", "2", "3"]
    assert pre.plan.health_source is HealthSource.EXTENSION and pre.plan.timeout_seconds == 1800
    tracks = pre.run.tracks
    assert [tracks[i].status for i in "0123"] == [Status.PENDING] + [Status.SKIPPED] * 3
    assert [tracks[i].reason for i in "123"] == ["out of scope", "stopped",
                                                  "protected from scale-set actions"]
    assert pre.run.budget.n0 == 3  # the stopped one is not in service
    assert pre.report == {"n0": 3, "maxUnavailable": 1, "maxSurge": 1, "automaticSurge": 0,
                          "rMin": 2, "maxInFlight": 2, "order": ["0"], "surgeTo": 5}
    assert pre.ready == 3 and waits == []
    assert events == [("plan", None, "", dict(pre.report)),
                      ("skipped", "2", "stopped", None),
                      ("skipped", "3", "protected from scale-set actions", None),
                      ("skipped", None, "1 instance outside instance-ids left alone: 1", {"ids": ["1"]})]
    assert port.counts.writes == 0


def test_waits_through_the_callable_while_health_is_initializing():
    pre, _, waits, _ = run({"instances": [{"id": "0"}, {"id": "1", "health": "initializing"}],
                            "events": [{"at_seconds": 25, "instance": "1", "health": "healthy"}]})
    assert [(ready, "health of 1 is initializing" in message) for _, message, ready in waits] \
        == [(1, True)] * 3
    assert pre.ready == 2 and pre.run.tracks["1"].status is Status.PENDING


def test_a_cancel_during_the_wait_stops_it_with_the_scale_set_read():
    with pytest.raises(PreflightStop) as stop:
        run({"instances": [{"id": "0", "health": "initializing"}]}, wait=lambda message, ready: False)
    assert stop.value.result == "cancelled" and "nothing was changed" in stop.value.message
    assert stop.value.scale_set is not None and stop.value.scale_set.name == NAME


def test_a_set_that_cannot_be_read_stops_without_a_scale_set():
    with pytest.raises(PreflightStop) as stop:
        run({"instances": 2}, scale_set_name="vmss-missing")
    assert stop.value.result == "refused" and stop.value.scale_set is None
    assert "vmss-missing" in stop.value.message and "not found" in stop.value.message


def test_ignore_initial_health_neither_waits_nor_counts():
    pre, _, waits, _ = run({"instances": [{"id": "0", "health": "unhealthy"}, {"id": "1"}]},
                           ignore_initial_health="true")
    assert waits == [] and pre.ready == 0
    assert pre.report["order"] == ["0", "1"]  # the unready one first


def test_a_vm_name_from_the_results_table_is_taken_for_its_instance():
    # On a Uniform set the table shows `1  vmss-demo_1`: either names instance 1.
    pre, _, _, _ = run({"instances": 3}, instance_ids=f"{NAME}_1, 2")
    assert [t.id for t in pre.run.tracks.values() if t.status is Status.PENDING] == ["1", "2"]
    assert pre.run.tracks["0"].reason == "out of scope"


def test_an_instance_id_that_is_neither_an_id_nor_a_name_is_refused():
    with pytest.raises(PreflightStop) as stop:
        run({"instances": 2}, instance_ids=f"{NAME}_7")
    assert stop.value.message == (f"instance-ids: {NAME}_7 is not in scale set {NAME} in resource "
                                  f"group {RG} (its instances: 0, 1)")
