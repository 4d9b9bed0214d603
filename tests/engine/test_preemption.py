"""Azure's own operations during a run: a reimage preempted (Canceled / OperationPreempted) is
asked once more, a second preemption fails that instance, and automatic repairs that replace or
reimage instances mid-run leave the run safe. Over HTTPS through the real SDK where the
adapter's mapping of the operation's end matters; in virtual time otherwise."""

from __future__ import annotations

import pytest

from cycle_vmss.compute import OperationState, OperationStatus
from cycle_vmss.decide import Status, decide, record_started
from cycle_vmss.report import EXIT_CODES
from cycle_vmss.runner import execute
from cycle_vmss.settings import build_settings

from .conftest import assert_budget_kept, rollout
from .test_decide import PLAN, down, obs, state, vm

# Instance 0's first reimage is preempted a quarter in; instance 1's, slower, by an event at 2 s.
PREEMPTED = {"instances": [{"id": "0", "on_reimage": "preempted"},
                           {"id": "1", "timings": {"reimage_seconds": 4, "boot_seconds": 0.2,
                                                   "health_seconds": 0.2}},
                           {"id": "2"}, {"id": "3"}],
             "zones": [], "events": [{"at_seconds": 2, "preempt_operation": "1"}]}


PREEMPTION = OperationStatus(OperationState.PREEMPTED, "OperationPreempted",
                             "Operation execution has been preempted by a more recent operation.")


def test_the_decision_asks_a_preempted_instance_once_more_then_fails_it():
    vms = [vm(i) for i in range(4)]
    run = record_started(state(vms), "1", 0)  # N0 4, R_min 3

    d = decide(obs(10, vm(0), down(1), vm(2), vm(3)), {"1": PREEMPTION}, run, PLAN, 10)
    again = d.run.tracks["1"]
    assert (again.status, again.started, again.error_code) == (Status.PENDING, None, "OperationPreempted")
    assert d.changed == ("1",) and d.outcome is None
    assert d.start == ()  # Azure's operation still holds it (updating): never asked meanwhile
    assert "an operation still runs on 1 (provisioning updating)" in d.waiting
    assert d.run.failure is None
    d = decide(obs(15, vm(0), vm(1, health="unhealthy"), vm(2), vm(3)), {}, d.run, PLAN, 15)
    assert d.start == ("1",)  # settled, unready: first, at no cost to the budget

    d = decide(obs(20, vm(0), down(1), vm(2), vm(3)), {"1": PREEMPTION},
               record_started(d.run, "1", 10), PLAN, 20)
    failed = d.run.tracks["1"]
    assert failed.status is Status.FAILED and d.run.failure.code == "OperationPreempted"
    assert d.run.failure.message.startswith("instance 1: reimage preempted again by another operation")
    assert d.outcome.value == "failed" and d.start == ()


def reimage_statuses(requests: list[dict], instance_id: str) -> list[int]:
    return [r["status"] for r in requests
            if r["method"] == "POST" and r["path"].endswith(f"/virtualMachines/{instance_id}/reimage")]


@pytest.mark.slow  # real time: two reimages each of instances 0 and 1, about 10 s
def test_a_preempted_reimage_is_asked_once_more_over_https(simulator, secret_credential,
                                                           fast_timings, monkeypatch):
    sim = simulator({**PREEMPTED, "timings": fast_timings})
    info = sim.info
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_bundle"])
    settings = build_settings({
        "resource_group": info["resource_group"], "scale_set_name": info["scale_set_name"],
        "subscription_id": info["subscription_id"], "arm_endpoint": info["arm_endpoint"],
        "max_unavailable": "2", "poll_interval_seconds": "1", "timeout_minutes": "2"})

    report = execute(settings, credential=secret_credential(sim)).as_dict()

    assert report["result"] == "succeeded", report["message"]
    rows = {row["id"]: row for row in report["instances"]}
    assert {i: row["action"] for i, row in rows.items()} == dict.fromkeys("0123", "reimaged")
    for iid in "01":  # each was requested twice: its row says why
        assert rows[iid]["error"]["code"] == "OperationPreempted"
        assert f"instance {iid}: reimage preempted" in rows[iid]["error"]["message"]
        assert reimage_statuses(sim.requests(), iid).count(202) == 2
        assert [r["status"] for r in sim.history()["instances"][iid]["reimages"]] == ["Canceled", "Succeeded"]
    assert rows["2"]["error"] is None and reimage_statuses(sim.requests(), "2") == [202]
    history = sim.history()
    assert history["max_not_ready"] <= 2  # N0 4, max-unavailable 2: R_min 2 held throughout
    for takeout in history["takeouts"]:
        assert not takeout["was_ready"] or takeout["others_ready"] >= 2, takeout


def test_a_preempted_reimage_goes_back_under_the_budget_and_waits_for_azures_operation():
    run = rollout({"instances": [{"id": "0", "on_reimage": "preempted"}, {"id": "1"}, {"id": "2"}],
                   "zones": []}, poll_interval_seconds="1")
    r = run.report
    assert r["result"] == "succeeded"
    assert [x["status"] for x in run.reimages("0")] == ["Canceled", "Succeeded"]
    assert run.events.ids("started") == ["0", "0", "1", "2"]
    waiting = [e.message for e in run.events.of("waiting")]
    assert any(m.startswith("instance 0: reimage preempted by another operation (OperationPreempted")
               and m.endswith("asked once more") for m in waiting)
    assert_budget_kept(run, r_min=2)


def test_preempted_twice_fails_that_instance_naming_it_and_operation_preempted():
    scenario = {"instances": [{"id": "0", "on_reimage": "preempted"}, {"id": "1"}, {"id": "2"}],
                "zones": [], "timings": {"reimage_seconds": 4, "boot_seconds": 1, "health_seconds": 1},
                # the first preemption at 1 s, Azure's operation until 6 s, the second reimage
                # accepted at the next pass: preempted again at 8 s
                "events": [{"at_seconds": 8, "preempt_operation": "0"}]}
    run = rollout(scenario, poll_interval_seconds="1")
    r = run.report
    assert r["result"] == "failed" and EXIT_CODES[r["result"]] == 1
    assert r["failure"]["instanceId"] == "0" and r["failure"]["code"] == "OperationPreempted"
    assert r["message"].startswith("instance 0: reimage preempted again by another operation "
                                   "(OperationPreempted: ")
    assert {row["id"]: row["action"] for row in r["instances"]} == {
        "0": "failed", "1": "not-started", "2": "not-started"}
    assert [x["status"] for x in run.reimages("0")] == ["Canceled", "Canceled"]


# --- automatic repairs during a run (left on: suspend-automatic-repairs false), in virtual time ----

def test_a_repair_that_replaces_an_instance_mid_run_is_a_removal_and_the_run_stays_safe():
    # Instance 5, out of scope, turns unhealthy at 10 s: it holds the budget until Azure replaces
    # it with a new instance (6) a minute later; the run sees 5 removed and leaves 6 alone.
    scenario = {"instances": 6, "timings": {"reimage_seconds": 30, "boot_seconds": 5,
                                            "health_seconds": 5},
                "automatic_repairs": {"grace_minutes": 1, "action": "Replace"},
                "events": [{"at_seconds": 10, "instance": "5", "health": "unhealthy"}]}
    run = rollout(scenario, instance_ids="0 1 2 3 4", suspend_automatic_repairs="false")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert {row["id"]: row["action"] for row in r["instances"]} == {
        **dict.fromkeys("01234", "reimaged"), "5": "removed"}
    [repair] = run.history["repairs"]["done"]
    assert (repair["instance"], repair["action"], repair["replacement"]) == ("5", "Replace", "6")
    assert run.reimages("6") == []
    assert_budget_kept(run, r_min=4)  # N0 6, then 5 after the removal; max-unavailable 1


def test_a_repair_that_reimages_an_instance_never_healthy_after_ours_lets_it_finish():
    # Instance 2 comes back unhealthy from our reimage; Azure's Reimage repair a minute later
    # brings it back healthy, which the run, still watching it, takes as done.
    scenario = {"instances": [{"id": "0"}, {"id": "1"}, {"id": "2", "on_reimage": "never-healthy"},
                              {"id": "3"}],
                "automatic_repairs": {"grace_minutes": 1, "action": "Reimage"}}
    run = rollout(scenario, max_unavailable="2", suspend_automatic_repairs="false")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert [x["status"] for x in run.reimages("2")] == ["Succeeded"]  # the repair is not ours
    assert [(x["instance"], x["action"]) for x in run.history["repairs"]["done"]] == [("2", "Reimage")]
    assert_budget_kept(run, r_min=2)
