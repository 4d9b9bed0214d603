"""Azure's own operations in the simulator's backend, in virtual time: reimages preempted
(`on_reimage: preempted`, the `preempt_operation` event) and automatic repairs with their grace
period, batches, actions and suspension (`setOrchestrationServiceState`)."""

import pytest
from test_backend import arm_error, at, ids, states

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend

RG, NAME = "rg-demo", "vmss-demo"
TIMINGS = {"reimage_seconds": 4, "boot_seconds": 2, "health_seconds": 1, "create_seconds": 3,
           "delete_seconds": 1}


def make(scenario):
    clock = VirtualClock()
    backend = Backend({"timings": TIMINGS, **scenario}, clock)
    return backend, clock


def suspend(backend, action="Suspend"):
    return backend.set_orchestration_service_state(RG, NAME, "AutomaticRepairs", action)


# --- preemption -------------------------------------------------------------------------------

def test_a_preempted_reimage_ends_canceled_once_and_the_instance_lives_on():
    backend, clock = make({"instances": [{"id": "0", "on_reimage": "preempted"}, {"id": "1"}]})
    op = backend.reimage(RG, NAME, "0")

    at(backend, clock, 1)  # a quarter of reimage_seconds: stopping, then preempted
    status = backend.operation_status(op)
    assert (status.status, status.error_code, status.end) == ("Canceled", "OperationPreempted",
                                                              backend.start + 1)
    assert status.error_message == "Operation execution has been preempted by a more recent operation."
    assert states(backend, "0") == ("updating", "stopping", None)
    # Azure's preempting operation holds the instance: asking again now is a 409.
    assert arm_error(backend.reimage, RG, NAME, "0").status == 409
    at(backend, clock, 1 + 6)
    assert states(backend, "0") == ("succeeded", "running", "initializing")
    at(backend, clock, 1 + 7)
    assert states(backend, "0") == ("succeeded", "running", "healthy")

    again = backend.reimage(RG, NAME, "0")  # once: the second reimage runs its course
    at(backend, clock, 8 + 6)
    assert backend.operation_status(again).status == "Succeeded"
    reimages = backend.history()["instances"]["0"]["reimages"]
    assert [r["status"] for r in reimages] == ["Canceled", "Succeeded"]


def test_the_preempt_event_cancels_the_reimage_in_flight_and_skips_an_idle_instance():
    backend, clock = make({"instances": 3, "events": [
        {"at_seconds": 2, "preempt_operation": "1"}, {"at_seconds": 2, "preempt_operation": "2"}]})
    op = backend.reimage(RG, NAME, "1")

    at(backend, clock, 2)
    status = backend.operation_status(op)
    assert (status.status, status.error_code) == ("Canceled", "OperationPreempted")
    assert "1" in ids(backend)
    events = backend.history()["events"]
    assert [e.get("skipped") for e in events] == [None, "no reimage in flight"]
    assert backend.history()["max_reimages_in_flight"] == 1  # Azure's own operation is not one


# --- automatic repairs --------------------------------------------------------------------------

def test_replace_deletes_an_instance_unhealthy_past_the_grace_period_and_creates_a_new_one():
    backend, clock = make({"instances": 3, "automatic_repairs": {"grace_minutes": 10},
                           "events": [{"at_seconds": 60, "instance": "1", "health": "unhealthy"}]})

    at(backend, clock, 60 + 599)
    assert ids(backend) == ["0", "1", "2"]  # within the grace period
    at(backend, clock, 60 + 600)
    assert states(backend, "1")[0] == "deleting"
    assert ids(backend) == ["0", "1", "2", "3"]
    assert states(backend, "3") == ("creating", "starting", None)
    at(backend, clock, 60 + 600 + 4)
    assert ids(backend) == ["0", "2", "3"]
    assert backend.get_scale_set(RG, NAME).capacity == 3
    h = backend.history()
    assert h["repairs"]["done"] == [{"start": backend.start + 660, "end": backend.start + 663,
                                     "instance": "1", "action": "Replace", "replacement": "3"}]
    assert h["instances"]["3"]["created_by"] == "repair"
    assert h["takeouts"] == [] and h["capacity"] == [{"time": backend.start, "capacity": 3}]


@pytest.mark.parametrize("action", ["Reimage", "Restart"])
def test_reimage_and_restart_repairs_take_the_instance_down_and_bring_it_back_healthy(action):
    backend, clock = make({"instances": [{"id": "0", "health": "unhealthy"}, {"id": "1"}],
                           "automatic_repairs": {"grace_minutes": 1, "action": action}})
    at(backend, clock, 60)
    assert states(backend, "0") == ("updating", "stopping", None)
    assert arm_error(backend.reimage, RG, NAME, "0").status == 409  # busy with the repair
    at(backend, clock, 60 + 6 + 1)
    assert states(backend, "0") == ("succeeded", "running", "healthy")
    h = backend.history()
    assert h["repairs"]["done"] == [{"start": backend.start + 60, "end": backend.start + 66,
                                     "instance": "0", "action": action}]
    assert h["instances"]["0"]["reimages"] == []  # Azure's repair, not a reimage of the run's


def test_the_grace_period_starts_when_a_reimage_completes():
    backend, clock = make({"instances": [{"id": "0", "on_reimage": "never-healthy"}, {"id": "1"}],
                           "automatic_repairs": {"grace_minutes": 1, "action": "Restart"}})
    at(backend, clock, 100)
    backend.reimage(RG, NAME, "0")  # ends at +106, unhealthy from +107
    at(backend, clock, 106 + 59)
    assert states(backend, "0") == ("succeeded", "running", "unhealthy")
    at(backend, clock, 107 + 60)
    assert states(backend, "0")[0] == "updating"


def test_protected_and_busy_instances_are_not_repaired_and_batches_go_one_at_a_time():
    backend, clock = make({"instances": [{"id": "0", "health": "unhealthy",
                                          "protect_from_scale_set_actions": True},
                                         {"id": "1", "health": "unhealthy"},
                                         {"id": "2", "health": "unhealthy"}, {"id": "3"}],
                           "automatic_repairs": {"grace_minutes": 1, "action": "Reimage"}})
    at(backend, clock, 60)
    assert [states(backend, i)[0] for i in "012"] == ["succeeded", "updating", "succeeded"]
    at(backend, clock, 66)  # the first repair ended: the next batch
    assert [states(backend, i)[0] for i in "012"] == ["succeeded", "succeeded", "updating"]
    at(backend, clock, 600)
    done = backend.history()["repairs"]["done"]
    assert [(r["instance"], r["start"] - backend.start) for r in done] == [("1", 60), ("2", 66)]


def test_suspended_repairs_wait_until_resumed_and_the_instance_view_says_so():
    backend, clock = make({"instances": [{"id": "0", "health": "unhealthy"}, {"id": "1"}],
                           "automatic_repairs": {"grace_minutes": 1, "action": "Restart"}})
    assert backend.get_scale_set(RG, NAME).repairs == "Running"
    at(backend, clock, 10)
    op = suspend(backend)
    assert backend.operation_status(op).status == "Succeeded"
    assert backend.get_scale_set(RG, NAME).repairs == "Suspended"
    suspend(backend)  # suspending twice is one suspension
    at(backend, clock, 300)
    assert states(backend, "0")[0] == "succeeded"
    suspend(backend, "Resume")
    assert states(backend, "0")[0] == "updating"  # overdue: repaired as soon as resumed
    repairs = backend.history()["repairs"]
    assert repairs["suspended"] == [[backend.start + 10, backend.start + 300]]
    assert repairs["done"][0]["start"] == backend.start + 300


def test_orchestration_service_state_is_refused_without_a_running_policy_or_with_bad_input():
    no_policy, _ = make({"instances": 1})
    assert no_policy.get_scale_set(RG, NAME).repairs is None
    assert arm_error(suspend, no_policy).code == "OperationNotAllowed"
    disabled, _ = make({"instances": 1, "automatic_repairs": {"enabled": False}})
    assert disabled.get_scale_set(RG, NAME).repairs == "NotRunning"
    assert arm_error(suspend, disabled).status == 400
    backend, _ = make({"instances": 1, "automatic_repairs": {}})
    assert arm_error(suspend, backend, "Pause").code == "InvalidParameter"
    assert arm_error(backend.set_orchestration_service_state, RG, NAME, "AutomaticZoneRebalancing",
                     "Suspend").code == "InvalidParameter"
    assert arm_error(backend.set_orchestration_service_state, RG, "other", "AutomaticRepairs",
                     "Suspend").status == 404
