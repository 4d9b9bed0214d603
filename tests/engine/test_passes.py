"""How a pass spends reads and time: the list follows a reimage (its operation is read only when
the list cannot tell), `needs_list` (a pass that could only answer "wait" stops at the
operations' statuses), `decide` as a function of values only (checked on every pass of
real rollouts), a start always decided on a list of the same pass, and the early wake when an
operation's poller calls back."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import replace

import pytest

from cycle_vmss import decide as decide_module
from cycle_vmss import engine as engine_module
from cycle_vmss.clock import SystemClock, VirtualClock
from cycle_vmss.compute import OperationState, OperationStatus
from cycle_vmss.decide import (
    LIST_AT_LEAST_EVERY, Status, decide, listed_status, needs_list, record_refused, record_started,
    to_ask,
)
from cycle_vmss.engine import run_rollout
from cycle_vmss.settings import build_settings
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort, SimulatorOperation

from .conftest import NAME, RG, assert_budget_kept, rollout
from .test_decide import PLAN, down, obs, state, vm

RUNNING = OperationStatus(OperationState.IN_PROGRESS)
OK = OperationStatus(OperationState.SUCCEEDED)


# --- needs_list: pure ------------------------------------------------------------------------


def two_of_three_in_flight(started=0.0):
    """Three instances, max-unavailable 2: 0 and 1 in flight (cap full), 2 pending."""
    run = state([vm(0), vm(1), vm(2)], mu="2")
    return record_started(record_started(run, "0", started), "1", started)


def test_a_full_cap_with_running_operations_needs_no_list():
    run = two_of_three_in_flight()
    assert not needs_list(run, {"0": RUNNING, "1": RUNNING}, PLAN, 30, listed_at=20)
    # statuses not known this pass (a failed poll) are no news either
    assert not needs_list(run, {}, PLAN, 30, listed_at=20)


@pytest.mark.parametrize("why, args", [
    ("never listed", dict(listed_at=None)),
    ("an operation finished", dict(operations={"0": OK, "1": RUNNING})),
    ("a start not seen by a list yet", dict(listed_at=0)),
    ("the last list is old", dict(now=20 + LIST_AT_LEAST_EVERY)),
    ("an instance's timeout is due", dict(now=1800, listed_at=1790)),
])
def test_a_list_is_needed_when_it_can_change_what_the_rules_do(why, args):
    run = two_of_three_in_flight()
    call = {"operations": {"0": RUNNING, "1": RUNNING}, "now": 30, "listed_at": 20, **args}
    assert needs_list(run, call["operations"], PLAN, call["now"], call["listed_at"]), why


def test_a_free_slot_or_a_succeeded_operation_needs_a_list():
    run = state([vm(0), vm(1), vm(2)], mu="2")
    one = record_started(run, "0", 0)
    assert needs_list(one, {"0": RUNNING}, PLAN, 30, 20)  # a slot is free and 1, 2 wait
    succeeded = replace(one, tracks={**one.tracks, "0": replace(one.tracks["0"], op_state=OperationState.SUCCEEDED)})
    assert needs_list(succeeded, {}, PLAN, 30, 20)  # it must be seen ready
    nothing = state([vm(0)], ignore_availability=True)
    assert needs_list(nothing, {}, PLAN, 30, 20)  # nothing in flight: only a list tells


def test_after_a_failure_running_operations_are_watched_without_lists():
    run = two_of_three_in_flight()
    failed = replace(run, budget=replace(run.budget, max_in_flight=3),
                     failure=decide_module.Failure("2", "Conflict", "x"))
    assert not needs_list(failed, {"0": RUNNING, "1": RUNNING}, PLAN, 30, 20)
    assert needs_list(replace(failed, failure=None), {"0": RUNNING, "1": RUNNING}, PLAN, 30, 20)


def test_a_refusal_running_out_of_time_needs_a_list():
    run = record_refused(two_of_three_in_flight(), "2", 0, "Conflict", "busy")
    assert not needs_list(run, {"0": RUNNING, "1": RUNNING}, PLAN, 1700, 1690)
    assert needs_list(replace(run, tracks={**run.tracks, "0": replace(run.tracks["0"], started=1000),
                                           "1": replace(run.tracks["1"], started=1000)}),
                      {"0": RUNNING, "1": RUNNING}, PLAN, 1800, 1790)


# --- decide depends on values only --------------------------------------------------------


def on_copies(monkeypatch):
    """Every decision of the rollout is made again on deep copies of its inputs (equal values,
    new objects, as the SDK's lists are) and must come out the same, its inputs untouched."""
    calls = []
    original = decide_module.decide

    def checked(observation, operations, run, plan, now):
        inputs = copy.deepcopy((observation, operations, run, plan))
        decision = original(observation, operations, run, plan, now)
        assert original(*copy.deepcopy(inputs), now) == decision
        assert (observation, operations, run, plan) == inputs
        calls.append(now)
        return decision

    monkeypatch.setattr(engine_module, "decide", checked)
    return calls


def test_decisions_on_copies_are_the_same_through_a_busy_rollout(monkeypatch, mode):
    calls = on_copies(monkeypatch)
    scenario = {
        "instances": [{"id": str(i), "zone": str(1 + i % 3), "fault_domain": i % 2,
                       **({"health": "unhealthy"} if i == 4 else {}),
                       **({"on_reimage": "flap"} if i == 7 else {})} for i in range(12)],
        "zones": ["1", "2", "3"],
        "timings": {"reimage_seconds": 30, "boot_seconds": 5, "health_seconds": 12},
        "events": [{"at_seconds": 50, "instance": "9", "health": "unhealthy", "for_seconds": 40},
                   {"at_seconds": 70, "delete_instance": "11"},
                   {"at_seconds": 90, "add_instances": 2}],
    }
    run = rollout(scenario, mode=mode, max_unavailable="3", ignore_initial_health="true",
                  min_ready_seconds="15", poll_interval_seconds="5")
    assert run.report["result"] == "succeeded", run.report["message"]
    assert len(calls) > 20
    assert_budget_kept(run, r_min=12 - 3)


def test_decisions_on_copies_are_the_same_when_a_reimage_fails(monkeypatch):
    calls = on_copies(monkeypatch)
    scenario = {"instances": [{"id": str(i), **({"on_reimage": "fail"} if i == 3 else {})}
                              for i in range(6)],
                "timings": {"reimage_seconds": 20, "boot_seconds": 0, "health_seconds": 10}}
    run = rollout(scenario, max_unavailable="2", poll_interval_seconds="5")
    assert run.report["result"] == "failed" and run.report["failure"]["instanceId"] == "3"
    assert len(calls) > 5


# --- passes in a real rollout ----------------------------------------------------------------


def test_the_list_alone_follows_a_reimage_to_its_end(mode):
    # k = 1, a 300 s reimage and 10 s polls: the list shows each instance updating, then settled
    # on a new OS disk, so no operation status is read at all; one list per poll interval.
    run = rollout({"instances": 4, "timings": {"reimage_seconds": 300, "boot_seconds": 0,
                                                "health_seconds": 25}}, mode=mode)
    assert run.report["result"] == "succeeded"
    gets = [r for r in run.backend.requests() if r["method"] == "GET"]
    lists = [r for r in gets if r["path"].endswith("/virtualMachines")]
    polls = [r for r in gets if "/operations/" in r["path"]]
    assert polls == []
    assert len(lists) <= 4 * (30 + 3 + 1) + 2  # every pass of ~33 per instance lists once
    # never more than one list per poll interval
    times = sorted({r["time"] for r in lists})
    assert all(b - a >= 10 - 1e-6 for a, b in zip(times, times[1:]))
    assert run.report["requests"]["reads"] == len(gets)
    assert [h["reimages"][0]["status"] for h in run.backend.history()["instances"].values()] == \
        ["Succeeded"] * 4


def test_a_failed_reimage_is_read_once_for_its_error(mode):
    # The list shows it failed; only its operation says why: read once, in the next pass.
    run = rollout({"instances": [{"id": "0"}, {"id": "1", "on_reimage": "fail",
                                               "error_code": "VMExtensionProvisioningError"}],
                   "timings": {"reimage_seconds": 100, "boot_seconds": 0, "health_seconds": 10}},
                  mode=mode)
    assert run.report["result"] == "failed"
    assert run.report["failure"]["code"] == "VMExtensionProvisioningError"
    polls = [r for r in run.backend.requests() if "/operations/" in r["path"]]
    assert len(polls) == 1


def test_every_start_is_decided_on_a_list_of_the_same_pass():
    run = rollout({"instances": 9, "timings": {"reimage_seconds": 40, "boot_seconds": 3,
                                                "health_seconds": 7}},
                  max_unavailable="3", poll_interval_seconds="5")
    assert run.report["result"] == "succeeded"
    last_list = None
    for r in run.backend.requests():
        if r["method"] == "GET" and r["path"].endswith("/virtualMachines"):
            last_list = r["time"]
        elif r["method"] == "POST" and r["path"].endswith("/reimage"):
            assert last_list == r["time"], r  # listed at that very instant, just before


def test_state_events_still_show_each_instance_go_out_and_come_back():
    run = rollout({"instances": 3, "timings": {"reimage_seconds": 200, "boot_seconds": 0,
                                                "health_seconds": 20}})
    for i in "012":
        seen = [e.data for e in run.events.of("state") if e.instance_id == i]
        assert seen[0]["provisioning"] == "updating"  # the list right after its start
        assert seen[-1] == {"provisioning": "succeeded", "power": "running", "health": "healthy"}
    beats = [run.start] + [e.time for e in run.events.of("heartbeat")] + [run.clock.now()]
    assert max(b - a for a, b in zip(beats, beats[1:])) <= 60


# --- the early wake ------------------------------------------------------------------------


class CallbackOperation(SimulatorOperation):
    """Like the SDK adapter's operation: its poller calls back when the operation has ended."""

    def add_done_callback(self, callback) -> None:
        self.port.callbacks.append((self.id, callback))


class CallbackPort(SimulatorComputePort):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.callbacks: list = []

    def begin_reimage(self, instance_id, *, all_disks=False):
        return CallbackOperation(self, super().begin_reimage(instance_id, all_disks=all_disks).id)


class PollerClock(VirtualClock):
    """Virtual time in which the 'pollers' see each operation end within 1 s (as an SDK poller
    with a 1 s interval would), without a request of the engine's."""

    port: CallbackPort | None = None

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        for entry in list(self.port.callbacks if self.port else []):
            op_id, callback = entry
            if self.port.backend.operation_status(op_id).status != "InProgress":
                self.port.callbacks.remove(entry)
                callback()


def starts(port_class, clock):
    backend = Backend({"instances": 3, "timings": {"reimage_seconds": 20, "boot_seconds": 0,
                                                    "health_seconds": 0}}, clock)
    port = port_class(backend, RG, NAME)
    clock.port = port if isinstance(port, CallbackPort) else None
    events = []

    class Listen:
        def event(self, e):
            events.append(e)

    settings = build_settings({"resource_group": RG, "scale_set_name": NAME,
                               "poll_interval_seconds": "30"})
    report = run_rollout(settings, port, clock=clock, listener=Listen())
    assert report.result == "succeeded", report.message
    times = [e.time for e in events if e.kind == "started"]
    return [b - a for a, b in zip(times, times[1:])], backend


def test_an_operation_calling_back_ends_the_wait_for_the_next_poll():
    plain, _ = starts(SimulatorComputePort, PollerClock())
    woken, backend = starts(CallbackPort, PollerClock())
    assert plain == [30, 30]  # the 20 s reimage is noticed at the next 30 s poll
    assert all(20 <= gap <= 21 for gap in woken), woken  # noticed within the poller's second
    assert backend.history()["max_not_ready"] == 1  # still one at a time


def test_a_finish_right_after_a_list_waits_half_a_poll():
    """Lists stay at most two per poll interval however often operations end: here one ends
    every 2 s, each right after the list that the one before brought forward."""
    clock = VirtualClock()
    backend = Backend({"instances": [
        {"id": str(i), "timings": {"reimage_seconds": 20 + 2 * i, "boot_seconds": 0,
                                   "health_seconds": 0}} for i in range(6)]}, clock)
    port = CallbackPort(backend, RG, NAME)
    clock_sleep = clock.sleep

    def sleep(seconds):
        clock_sleep(seconds)
        for entry in list(port.callbacks):
            if backend.operation_status(entry[0]).status != "InProgress":
                port.callbacks.remove(entry)
                entry[1]()

    clock.sleep = sleep
    settings = build_settings({"resource_group": RG, "scale_set_name": NAME,
                               "poll_interval_seconds": "30", "max_unavailable": "3"})
    assert run_rollout(settings, port, clock=clock).result == "succeeded"
    lists = sorted({r["time"] for r in backend.requests()
                    if r["method"] == "GET" and r["path"].endswith("/virtualMachines")})
    assert all(b - a >= 15 - 1e-6 for a, b in zip(lists, lists[1:])), lists


def test_the_system_clock_sleep_ends_on_wake_and_on_cancel():
    clock = SystemClock()
    threading.Timer(0.2, clock.wake).start()
    began = time.monotonic()
    clock.sleep(10)
    assert 0.15 < time.monotonic() - began < 2
    clock.wake()  # before the sleep: the next one returns at once, and only that one
    began = time.monotonic()
    clock.sleep(10)
    clock.sleep(0.3)
    assert 0.25 < time.monotonic() - began < 2
    cancelled = threading.Event()
    clock = SystemClock(cancelled)
    threading.Timer(0.2, cancelled.set).start()
    began = time.monotonic()
    clock.sleep(10)
    assert time.monotonic() - began < 2


def test_the_sdk_poller_calls_back_when_a_polled_operation_ends():
    """The real adapter over HTTPS: an operation the SDK's poller follows (a capacity change,
    an upgrade: not a reimage, which the list follows) calls `add_done_callback` once the poller
    has seen the end, and the status is final by then."""
    from azure.identity import ClientSecretCredential

    from cycle_vmss.azure_adapter import AzureComputePort
    from cycle_vmss.simulator.server import running_simulator

    with running_simulator({"instances": [{"id": "0", "latest_model_applied": False}, {"id": "1"}],
                            "timings": {"manual_upgrade_seconds": 0.6, "boot_seconds": 0,
                                        "health_seconds": 0}}) as sim:
        info = sim.info
        credential = ClientSecretCredential(
            info["tenant_id"], info["client_id"], info["client_secret"],
            authority=info["authority_host"], disable_instance_discovery=True,
            connection_verify=info["ca_bundle"])
        port = AzureComputePort(credential, info["subscription_id"], info["resource_group"],
                                info["scale_set_name"], arm_endpoint=info["arm_endpoint"],
                                polling_interval=0.2, connection_verify=info["ca_bundle"])
        try:
            op = port.begin_manual_upgrade("0")
            called = threading.Event()
            began = time.monotonic()
            op.add_done_callback(called.set)
            assert called.wait(10)
            assert 0.4 < time.monotonic() - began < 5
            assert op.status() == OK  # at once, though the poller's thread may not have exited
            late = threading.Event()
            op.add_done_callback(late.set)  # already finished: called at once
            assert late.is_set()
        finally:
            port.close()


# --- the list follows a reimage: pure ---------------------------------------------------------

OLD_DISK, NEW_DISK = 100.0, 900.0


def on_disk(i, disk, **kw):
    return replace(vm(i, **kw), os_disk_time=disk)


def watched(*ids, started=0.0, disk=OLD_DISK, mu="3"):
    """Instances 0..3 on their old disk, `ids` started (their reimage alone: watched)."""
    run = state([on_disk(i, disk) for i in range(4)], mu=mu)
    for tid in ids:
        run = record_started(run, tid, started, watched=True)
    return run


def seen(run, **last):
    return replace(run, tracks={**run.tracks, **{tid: replace(run.tracks[tid], last=inst)
                                                 for tid, inst in last.items()}})


@pytest.mark.parametrize("inst, says", [
    (on_disk(0, OLD_DISK, provisioning="updating", power="stopped", health=None), RUNNING),
    (on_disk(0, NEW_DISK), OK),  # settled on a new OS disk: the reimage has ended
    (on_disk(0, NEW_DISK, health="initializing"), OK),  # ended; readiness is another rule
    (on_disk(0, OLD_DISK), None),  # settled on its old disk: preempted, or not yet begun
    (on_disk(0, NEW_DISK, provisioning="failed"), None),  # only the operation says why
    (on_disk(0, None), None),  # Azure gave no disk time: nothing to compare
    (None, None),  # not listed
])
def test_what_a_list_says_of_a_reimage(inst, says):
    assert listed_status(watched("0").tracks["0"], inst) == says


def test_a_reimage_behind_an_upgrade_or_a_command_is_not_read_from_the_list():
    run = state([on_disk(0, OLD_DISK)])
    t = record_started(run, "0", 0).tracks["0"]  # not watched
    assert listed_status(t, on_disk(0, NEW_DISK)) is None
    assert to_ask(record_started(run, "0", 0), PLAN, 30, 20, 10, list_reads=100) == ("0",)


def test_the_list_answers_and_no_status_is_read():
    run = seen(watched("0", "1"), **{"0": down(0), "1": down(1)})
    assert to_ask(run, PLAN, 30, listed_at=20, poll=10, list_reads=1) == ()
    assert needs_list(run, {}, PLAN, 30, 20, asked=())  # only the list tells
    # started in the last pass, after its list: the next list tells
    assert to_ask(watched("0", started=20), PLAN, 30, listed_at=20, poll=10, list_reads=1) == ()


def test_a_status_is_read_where_the_list_cannot_tell():
    run = seen(watched("0", "1", "2"), **{"0": on_disk(0, OLD_DISK),  # settled on its old disk
                                          "1": on_disk(1, NEW_DISK, provisioning="failed"),
                                          "2": down(2)})
    assert to_ask(run, PLAN, 30, listed_at=20, poll=10, list_reads=1) == ("0", "1")
    # its timeout falls before the next pass: its error comes from Azure
    assert to_ask(run, PLAN, 1795, listed_at=1790, poll=10, list_reads=1) == ("0", "1", "2")


def test_while_statuses_cost_fewer_reads_than_a_list_they_are_all_read():
    run = seen(watched("0", "1", mu="2"), **{"0": down(0), "1": down(1)})  # the cap is full
    assert to_ask(run, PLAN, 30, listed_at=20, poll=10, list_reads=3) == ("0", "1")
    assert not needs_list(run, {"0": RUNNING, "1": RUNNING}, PLAN, 30, 20, asked=("0", "1"))
    # an ended reimage is not read again: the list saw it end
    ended = seen(replace(run, tracks={**run.tracks, "0": replace(run.tracks["0"],
                                                                 op_state=OperationState.SUCCEEDED)}))
    assert to_ask(ended, PLAN, 30, listed_at=20, poll=10, list_reads=3) == ("1",)


def test_decide_takes_a_reimage_as_ended_from_the_list_and_the_error_from_its_status():
    run = seen(watched("0", "1"), **{"0": down(0), "1": down(1)})
    listed = obs(40, on_disk(0, NEW_DISK), on_disk(1, NEW_DISK, provisioning="failed"),
                 on_disk(2, OLD_DISK), on_disk(3, OLD_DISK))
    d = decide(listed, {}, run, PLAN, 40)
    assert d.run.tracks["0"].status is Status.DONE  # ended (list) and ready in the same list
    assert d.run.tracks["1"].status is Status.IN_FLIGHT  # failed: its operation says why
    failed = OperationStatus(OperationState.FAILED, "VMExtensionProvisioningError", "boom")
    d = decide(replace(listed, time=50.0), {"1": failed}, d.run, PLAN, 50)
    assert d.run.tracks["1"].status is Status.FAILED
    assert d.run.tracks["1"].error_code == "VMExtensionProvisioningError"


def test_a_status_read_as_running_yields_to_a_list_that_saw_the_end():
    run = seen(watched("0"), **{"0": down(0)})
    d = decide(obs(40, on_disk(0, NEW_DISK), *[on_disk(i, OLD_DISK) for i in (1, 2, 3)]),
               {"0": RUNNING}, run, PLAN, 40)
    assert d.run.tracks["0"].status is Status.DONE


# --- list pacing -------------------------------------------------------------------------------


@pytest.mark.parametrize("left, pages, pause", [
    (None, 10, 0), (30, 10, 0), (10, 10, 0),  # enough for the next list
    (9, 10, 60), (0, 10, 60), (0, 1, 60), (0, 20, 120), (3, 25, 180),  # whole refill minutes
])
def test_the_next_list_waits_for_the_tokens_it_lacks(left, pages, pause):
    assert engine_module.list_pause(left, pages) == pause


def test_lists_are_paced_by_the_read_budget_azure_says_is_left():
    # 60 instances in pages of 10 under Compute's limits: the set's High Cost Get bucket holds 30
    # and gets 10 a minute back, so a list every 5 s would be throttled within three passes.
    scenario = {"instances": 60, "page_size": 10, "compute_limits": "azure",
                "timings": {"reimage_seconds": 300, "boot_seconds": 0, "health_seconds": 20}}
    run = rollout(scenario, max_unavailable="3", poll_interval_seconds="5")
    assert run.report["result"] == "succeeded", run.report["message"]
    assert run.backend.throttled == 0
    assert any("pacing lists: Azure says" in e.message for e in run.events.of("waiting"))
    lists = [r["time"] for r in run.backend.requests()
             if r["method"] == "GET" and r["path"].endswith("/virtualMachines")]
    per_minute = max(sum(1 for t in lists if a <= t < a + 60) for a in lists)
    assert per_minute <= 30 + 10  # a full bucket, then its refill
