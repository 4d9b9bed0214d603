"""The pure decision over hand-built observations: each rule of SPEC section 4 that one pass
decides, with no port, no clock and no simulator."""

from __future__ import annotations

from dataclasses import replace

from cycle_vmss.budget import resolve_budget
from cycle_vmss.compute import Instance, Observation, OperationState, OperationStatus
from cycle_vmss.decide import (
    Outcome, Plan, RunState, Status, Track, decide, plan_order, record_refused,
    record_start_failed, record_started,
)
from cycle_vmss.settings import Budget, HealthSource

EXT = HealthSource.EXTENSION
OK = OperationStatus(OperationState.SUCCEEDED)
RUNNING = OperationStatus(OperationState.IN_PROGRESS)
PLAN = Plan(EXT, timeout_seconds=1800, min_ready_seconds=0)


def vm(i, zone=None, fd=0, health="healthy", provisioning="succeeded", power="running", protected=False):
    return Instance(str(i), f"vmss_{i}", zone, fd, provisioning, power, health, protected)


def down(i, **kw):  # mid-reimage
    return vm(i, provisioning="updating", power="stopped", health=None, **kw)


def state(instances, mu="1", ms="0", scope=None, ignore_availability=False) -> RunState:
    def b(text):
        return Budget(int(text[:-1]), True) if text.endswith("%") else Budget(int(text))
    n0 = sum(1 for i in instances if i.in_service_candidate)
    tracks = {i.id: Track(i.id, Status.PENDING if scope is None or i.id in scope else Status.SKIPPED,
                          None if scope is None or i.id in scope else "out of scope",
                          in_n0=i.in_service_candidate, last=i)
              for i in instances}
    return RunState(tracks, resolve_budget(n0, b(mu), b(ms), ignore_availability=ignore_availability))


def obs(t, *instances):
    return Observation(float(t), tuple(instances))


def test_takes_one_at_a_time_by_default():
    vms = [vm(i) for i in range(6)]
    d = decide(obs(0, *vms), {}, state(vms), PLAN, 0)
    assert d.start == ("0",)
    assert "in-flight cap: 1 of 1" in d.waiting


def test_in_flight_cap_is_max_unavailable_plus_surge():
    vms = [vm(i) for i in range(10)]
    run = state(vms, mu="2", ms="1")
    assert decide(obs(0, *vms), {}, run, PLAN, 0).start == ("0", "1")  # R_min 8 of 10 ready
    d = decide(obs(0, *vms, vm(10)), {}, run, PLAN, 0)  # the surge instance is up
    assert d.start == ("0", "1", "2") and "in-flight cap: 3 of 3" in d.waiting


def test_r_min_counts_every_unready_instance_of_the_set():
    # 5 is out of scope and unhealthy: ready 5 of N0 6, R_min 5 -> nothing may go out.
    vms = [vm(i) for i in range(5)] + [vm(5, health="unhealthy")]
    run = state(vms, scope={"0", "1", "2", "3", "4"})
    d = decide(obs(0, *vms), {}, run, PLAN, 0)
    assert d.start == ()
    assert "budget: 5 ready, R_min 5" in d.waiting and "5" in d.waiting
    assert d.run.blocked_since == 0 and d.outcome is None


def test_blocked_for_timeout_minutes_fails_naming_the_blockers():
    vms = [vm(i) for i in range(5)] + [vm(5, health="unhealthy")]
    run = state(vms, scope={"0", "1", "2", "3", "4"})
    d = decide(obs(0, *vms), {}, run, PLAN, 0)
    d = decide(obs(1000, *vms), {}, d.run, PLAN, 1000)
    assert d.outcome is None and d.run.blocked_since == 0
    d = decide(obs(1800, *vms), {}, d.run, PLAN, 1800)
    assert d.outcome is Outcome.FAILED
    f = d.run.failure
    assert f.code == "Blocked" and f.instance_id == "0" and "unready instances 5" in f.message


def test_a_ready_instance_goes_out_only_while_r_min_others_are_ready():
    vms = [vm(i) for i in range(4)]
    run = state(vms, mu="2")  # R_min 2: two may go out, a third may not
    d = decide(obs(0, *vms), {}, run, PLAN, 0)
    assert d.start == ("0", "1")
    run = record_started(record_started(d.run, "0", 0), "1", 0)
    d = decide(obs(5, down(0), down(1), vm(2), vm(3)), {"0": RUNNING, "1": RUNNING}, run, PLAN, 5)
    assert d.start == ()


def test_unready_in_scope_instances_go_first_and_cost_no_budget():
    vms = [vm(0), vm(1), vm(2, health="unhealthy"), vm(3), vm(4, health="unknown")]
    d = decide(obs(0, *vms), {}, state(vms, mu="1"), PLAN, 0)
    assert d.start == ("2",)  # unready first (cap 1)
    run = replace(state(vms, mu="2"))
    d = decide(obs(0, *vms), {}, run, PLAN, 0)
    # R_min 3 with 3 ready: no ready one may go, but both unready ones start.
    assert d.start == ("2", "4")


def test_order_spreads_over_zones_then_fault_domain_then_numeric_id():
    vms = [vm(10, "1", 0), vm(9, "1", 1), vm(2, "1", 0), vm(3, "2", 0), vm(4, "3", 0), vm(5, "2", 1),
           vm(6, "3", 1)]
    d = decide(obs(0, *vms), {}, state(vms, mu="3"), PLAN, 0)
    assert d.start == ("2", "3", "4")  # one per zone; in zone 1: fd 0, then "2" < "10"


def test_next_one_comes_from_the_zone_with_fewest_out_of_service():
    vms = [vm(0, "1"), vm(1, "1"), vm(2, "2"), vm(3, "2"), vm(4, "3", health="unhealthy"), vm(5, "3")]
    run = state(vms, mu="3", scope={"0", "1", "2", "3", "5"})
    d = decide(obs(0, *vms), {}, run, PLAN, 0)
    # zone 3 already has an unready instance: zones 1 and 2 go first, then zone 1 again
    # (zone 1 and 3 tie at one out; ties by zone name). R_min 3 of 5 ready allows two.
    assert d.start == ("0", "2")


def test_plan_order_projects_the_window():
    # Six over three zones: the zone with the most left goes next (ties by zone name), so the
    # plan takes one per zone in turn, whatever the window.
    vms = [vm(i, str(i % 3 + 1)) for i in range(6)]
    for window in (1, 2, 3):
        assert plan_order(tuple(vms), {v.id for v in vms}, EXT, window) == ["0", "1", "2", "3", "4", "5"]
    vms[4] = vm(4, "2", health="unhealthy")
    assert plan_order(tuple(vms), {v.id for v in vms}, EXT, 1)[0] == "4"


def test_plan_order_over_uneven_zones_leaves_a_lone_instance_last():
    # Zones of 5, 2 and 1: zone 3's only instance empties its zone, so it waits until nothing
    # else is left; zone 2's second goes only once its first is back.
    vms = [vm(i, z) for i, z in enumerate("11111223")]
    assert plan_order(tuple(vms), {v.id for v in vms}, EXT, 1) == ["0", "1", "2", "3", "5", "4", "6", "7"]
    assert plan_order(tuple(vms), {v.id for v in vms}, EXT, 2) == ["0", "5", "1", "6", "2", "3", "4", "7"]
    assert plan_order(tuple(vms), {v.id for v in vms}, EXT, 3) == ["0", "5", "1", "2", "6", "3", "4", "7"]


def test_six_over_three_zones_two_at_a_time_never_empties_a_zone():
    # Every pass of a six-instance, three-zone set with max-unavailable 2, each pair coming back
    # before the next pass: zone 3 is not left to be done all at once at the end.
    vms = [vm(i, str(i % 3 + 1)) for i in range(6)]
    run, order, t = state(vms, mu="2"), [], 0
    while True:
        d = decide(obs(t, *vms), {i: OK for i in run.in_flight()}, run, PLAN, t)
        if d.outcome is not None:
            break
        run = d.run
        for iid in d.start:
            run = record_started(run, iid, t)
        order.append(d.start)
        t += 10
    assert d.outcome is Outcome.SUCCEEDED
    assert order == [("0", "1"), ("2", "3"), ("4", "5")]


def test_the_last_ready_instance_of_a_zone_waits_while_another_zone_can_give_one():
    # Zone 1's other instance is unready (out of scope): taking 0 would leave zone 1 with none.
    vms = [vm(0, "1"), vm(1, "1", health="unhealthy"), vm(2, "2"), vm(3, "2"), vm(4, "2")]
    run = state(vms, mu="3", scope={"0", "2", "3", "4"})
    assert decide(obs(0, *vms), {}, run, PLAN, 0).start == ("2", "3")  # R_min 2 of 4 ready
    # The same with only zone 1 left to do: no other choice, so it goes (the budget still holds).
    run = state(vms, mu="3", scope={"0"})
    assert decide(obs(0, *vms), {}, run, PLAN, 0).start == ("0",)


def test_a_zone_with_nothing_else_to_do_may_go_wholly_out():
    # Only zone 3's two are left and the budget allows two: no other choice exists.
    vms = [vm(i, str(i % 3 + 1)) for i in range(6)]
    assert decide(obs(0, *vms), {}, state(vms, mu="2", scope={"2", "5"}), PLAN, 0).start == ("2", "5")
    # A set without zones is one zone: it is never held back.
    flat = [vm(i) for i in range(4)]
    assert decide(obs(0, *flat), {}, state(flat, mu="3"), PLAN, 0).start == ("0", "1", "2")


def test_ties_on_out_of_service_go_to_the_zone_with_most_left_to_do():
    # Zones 1 and 2 both have none out; zone 2 has two left to do, zone 1 one (4 and 5 are done,
    # here: out of scope), so zone 2 goes first despite its name. Fewest out still comes first.
    vms = [vm(0, "1"), vm(4, "1"), vm(5, "1"), vm(1, "2"), vm(2, "2"), vm(3, "2")]
    assert decide(obs(0, *vms), {}, state(vms, scope={"0", "1", "2"}), PLAN, 0).start == ("1",)
    vms[3] = vm(3, "2", health="unhealthy")  # zone 2 has one out: zone 1 goes first again
    assert decide(obs(0, *vms), {}, state(vms, mu="2", scope={"0", "1", "2"}), PLAN, 0).start == ("0",)


def test_done_needs_the_operation_to_succeed_and_a_later_ready_observation():
    vms = [vm(i) for i in range(3)]
    run = record_started(state(vms, mu="1"), "0", 0)
    # Still listed ready, operation in progress: not done (a start that is never seen is not relied on).
    d = decide(obs(10, *vms), {"0": RUNNING}, run, PLAN, 10)
    assert d.run.tracks["0"].status is Status.IN_FLIGHT and d.start == ()
    # Succeeded, but health still initializing: not done.
    d = decide(obs(20, vm(0, health="initializing"), vm(1), vm(2)), {"0": OK}, d.run, PLAN, 20)
    assert d.run.tracks["0"].status is Status.IN_FLIGHT and d.run.tracks["0"].op_end == 20
    # Ready: done, and the next one starts in the same pass.
    d = decide(obs(30, *vms), {}, d.run, PLAN, 30)
    assert d.run.tracks["0"].status is Status.DONE and d.run.tracks["0"].done == 30
    assert d.changed == ("0",) and d.start == ("1",)


def test_after_a_reimage_only_health_reported_since_it_ended_counts():
    vms = [vm(i) for i in range(3)]
    run = record_started(state(vms, mu="1"), "0", 0)
    # Provisioning succeeded at 15 (Azure's time): the reimage ended then.
    stale = replace(vm(0), provisioning_time=15.0, health_time=-100.0)
    d = decide(obs(20, stale, vm(1), vm(2)), {"0": OK}, run, PLAN, 20)
    assert d.run.tracks["0"].status is Status.IN_FLIGHT and d.start == ()  # old healthy: not done
    fresh = replace(stale, health_time=18.0)
    d = decide(obs(30, fresh, vm(1), vm(2)), {}, d.run, PLAN, 30)
    assert d.run.tracks["0"].status is Status.DONE and d.start == ("1",)
    # Still stale at the timeout: the failure says why a `healthy` did not count.
    d = decide(obs(1800, stale, vm(1), vm(2)), {"0": OK}, run, PLAN, 1800)
    assert d.run.failure.code == "NotReady"
    assert d.run.failure.message.endswith(
        "health healthy (that health was reported before the reimage ended)")
    # Health source none, and a list that carries no health, do not judge health at all.
    for plan, listed in ((replace(PLAN, health_source=HealthSource.NONE), stale),
                         (PLAN, replace(stale, health=None, health_time=None, health_listed=False))):
        d = decide(obs(20, listed, vm(1), vm(2)), {"0": OK}, run, plan, 20)
        assert d.run.tracks["0"].status is Status.DONE


def test_min_ready_seconds_must_pass_without_a_break():
    plan = replace(PLAN, min_ready_seconds=60)
    vms = [vm(i) for i in range(3)]
    run = record_started(state(vms), "0", 0)
    d = decide(obs(10, *vms), {"0": OK}, run, plan, 10)
    assert d.run.tracks["0"].ready_since == 10 and d.next_check == 70
    d = decide(obs(40, vm(0, health="unhealthy"), vm(1), vm(2)), {}, d.run, plan, 40)
    assert d.run.tracks["0"].ready_since is None  # a flap restarts the window
    d = decide(obs(50, *vms), {}, d.run, plan, 50)
    d = decide(obs(100, *vms), {}, d.run, plan, 100)
    assert d.run.tracks["0"].status is Status.IN_FLIGHT
    d = decide(obs(110, *vms), {}, d.run, plan, 110)
    assert d.run.tracks["0"].status is Status.DONE


def test_per_instance_timeout_fails_the_run_and_stops_new_starts():
    vms = [vm(i) for i in range(6)]
    run = state(vms, mu="2")
    run = record_started(record_started(run, "0", 0), "1", 100)
    sick = vm(0, health="unhealthy")
    d = decide(obs(1800, sick, down(1), *vms[2:]), {"0": OK, "1": RUNNING}, run, PLAN, 1800)
    assert d.run.tracks["0"].status is Status.FAILED
    f = d.run.failure
    assert f.instance_id == "0" and f.code == "NotReady" and "health unhealthy" in f.message
    assert f.states == {"provisioning": "succeeded", "power": "running", "health": "unhealthy"}
    assert d.start == () and d.outcome is None and "watching 1 in flight: 1" in d.waiting
    d = decide(obs(1810, sick, *vms[1:]), {"1": OK}, d.run, PLAN, 1810)
    assert d.run.tracks["1"].status is Status.DONE and d.outcome is Outcome.FAILED


def test_failed_operation_names_the_code_and_last_states():
    vms = [vm(i) for i in range(3)]
    run = record_started(state(vms), "1", 0)
    broken = vm(1, provisioning="failed", health="unknown")
    failed = OperationStatus(OperationState.FAILED, "VMExtensionProvisioningError", "script failed")
    d = decide(obs(10, vm(0), broken, vm(2)), {"1": failed}, run, PLAN, 10)
    assert d.outcome is Outcome.FAILED and d.start == ()
    f = d.run.failure
    assert (f.instance_id, f.code) == ("1", "VMExtensionProvisioningError")
    assert f.states["provisioning"] == "failed" and "script failed" in f.message


def test_removed_by_someone_else_lowers_n0():
    vms = [vm(i) for i in range(6)]
    run = record_started(state(vms), "0", 0)
    d = decide(obs(10, *vms[1:]), {"0": RUNNING}, run, PLAN, 10)  # 0 deleted mid-reimage
    assert d.run.tracks["0"].status is Status.REMOVED
    assert (d.run.budget.n0, d.run.budget.r_min) == (5, 4)
    assert d.start == ("1",)  # 5 ready, R_min 4: the next may go
    d = decide(obs(20, *vms[2:]), {}, record_started(d.run, "1", 10), PLAN, 20)  # a pending one too
    assert d.run.tracks["1"].status is Status.REMOVED and d.run.budget.n0 == 4


def test_a_done_instance_deleted_by_someone_else_lowers_n0_once():
    """With max-unavailable 0, R_min is N0: a reimaged instance that someone deletes must leave
    N0 too, or the rest of the set could never be taken out (the randomized suite found it)."""
    vms = [vm(i) for i in range(4)]
    run = record_started(state(vms, mu="0", ms="1"), "0", 0)
    d = decide(obs(10, *vms), {"0": OK}, run, PLAN, 10)
    assert d.run.tracks["0"].status is Status.DONE and d.run.budget.n0 == 4
    d = decide(obs(20, *vms[1:], vm(9)), {}, d.run, PLAN, 20)  # 0 deleted; 9 is the surge's
    assert d.run.tracks["0"].status is Status.DONE  # still reported as reimaged
    assert (d.run.budget.n0, d.run.budget.r_min) == (3, 3)
    assert d.start == ("1",)  # 1, 2, 3 and 9 ready: one may go
    d = decide(obs(30, *vms[1:], vm(9)), {}, d.run, PLAN, 30)
    assert d.run.budget.n0 == 3  # counted once


def test_instances_added_by_others_are_left_alone_but_count_as_ready():
    vms = [vm(i) for i in range(2)]
    run = state(vms, mu="1")  # N0 2, R_min 1
    d = decide(obs(0, *vms, vm(7)), {}, run, PLAN, 0)
    assert d.start == ("0",)
    run = record_started(d.run, "0", 0)
    done = decide(obs(10, *vms, vm(7)), {"0": OK}, run, PLAN, 10)
    done = decide(obs(20, *vms, vm(7)), {"1": OK}, record_started(done.run, "1", 10), PLAN, 20)
    assert done.outcome is Outcome.SUCCEEDED and "7" not in done.run.tracks


def test_a_refused_request_is_retried_then_fails_after_timeout():
    vms = [vm(i) for i in range(3)]
    run = record_refused(state(vms), "0", 0, "Conflict", "another operation is in progress")
    d = decide(obs(10, *vms), {}, run, PLAN, 10)
    assert d.start == ("0",)  # not started, so asking again cannot reimage it twice
    run = record_refused(d.run, "0", 10, "Conflict", "still busy")
    assert run.tracks["0"].refused_since == 0
    d = decide(obs(1800, *vms), {}, run, PLAN, 1800)
    assert d.start == ("0",)  # time alone fails nothing: it is asked again (issue 6)
    run = record_refused(d.run, "0", 1800, "Conflict", "still busy", timeout_seconds=PLAN.timeout_seconds)
    d = decide(obs(1810, *vms), {}, run, PLAN, 1810)
    assert d.outcome is Outcome.FAILED and d.run.failure.code == "Conflict"


def test_an_unknown_outcome_is_never_asked_again():
    vms = [vm(i) for i in range(3)]
    run = record_start_failed(state(vms), "0", 0, "InternalServerError", "boom", outcome_unknown=True)
    assert "outcome is unknown" in run.failure.message
    d = decide(obs(10, *vms), {}, run, PLAN, 10)
    assert d.start == () and d.outcome is Outcome.FAILED


def test_an_instance_stopped_before_its_turn_is_skipped_not_touched():
    vms = [vm(i) for i in range(3)]
    d = decide(obs(0, vm(0, power="deallocated", health=None), vm(1, protected=True), vm(2)), {},
               state(vms, mu="2"), PLAN, 0)
    assert d.run.tracks["0"].reason == "deallocated"
    assert d.run.tracks["1"].reason == "protected from scale-set actions"
    assert d.start == ("2",)


def test_ignore_availability_lets_the_last_ready_instance_go():
    vms = [vm(0)]
    assert decide(obs(0, *vms), {}, state(vms), PLAN, 0).start == ()
    assert decide(obs(0, *vms), {}, state(vms, ignore_availability=True), PLAN, 0).start == ("0",)


def test_finishes_when_every_instance_is_done():
    vms = [vm(0)]
    run = record_started(state(vms, ignore_availability=True), "0", 0)
    d = decide(obs(10, *vms), {"0": OK}, run, PLAN, 10)
    assert d.outcome is Outcome.SUCCEEDED
