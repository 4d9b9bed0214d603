"""max-failed: the run goes on past failed instances until more than that many have failed,
keeps them out of service in the budget, and still ends failed naming each."""

from __future__ import annotations

from dataclasses import replace

from cycle_vmss.compute import OperationState
from cycle_vmss.decide import Status, decide
from cycle_vmss.report import EXIT_CODES

from .conftest import assert_budget_kept, rollout
from .test_decide import PLAN, down, obs, state, vm


def ten(failing: list[str]) -> dict:
    return {"instances": [{"id": str(i), **({"on_reimage": "fail"} if str(i) in failing else {})}
                          for i in range(10)], "timings": {"reimage_seconds": 30}}


def test_two_failures_tolerated_the_other_eight_reimaged_and_the_run_fails_naming_both():
    run = rollout(ten(["2", "6"]), max_failed="2", max_unavailable="3")
    r = run.report
    assert r["result"] == "failed" and EXIT_CODES[r["result"]] == 1
    assert r["message"].startswith("2 instances failed (max-failed 2 let the run go on): 2 (")
    assert "6 (" in r["message"] and r["message"].endswith("; 8 reimaged")
    actions = {row["id"]: row["action"] for row in r["instances"]}
    assert sorted(i for i, a in actions.items() if a == "failed") == ["2", "6"]
    assert sorted(i for i, a in actions.items() if a == "reimaged") == ["0", "1", "3", "4", "5", "7", "8", "9"]
    assert r["failure"]["code"] == "InstancesFailed"
    assert all(len(run.reimages(str(i))) == 1 for i in range(10))
    assert_budget_kept(run, r_min=7)


def test_one_failure_more_than_max_failed_stops_new_starts():
    run = rollout(ten(["0", "1", "2"]), max_failed="2", max_unavailable="3")
    r = run.report
    assert r["result"] == "failed"
    assert "3 instances failed, more than max-failed 2" in r["message"]
    assert sum(1 for row in r["instances"] if row["action"] == "not-started") >= 1


def test_without_max_failed_the_first_failure_ends_the_run():
    run = rollout(ten(["0"]), max_unavailable="3")
    r = run.report
    assert r["result"] == "failed" and r["failure"]["instanceId"] == "0"
    assert "max-failed" not in r["message"]
    assert any(row["action"] == "not-started" for row in r["instances"])


def test_a_failed_instance_stays_out_of_service_in_the_budget():
    # One out at a time (R_min 9 of 10). Instance 0 times out at 3 minutes (failed) and becomes
    # healthy at 250 s; a failed instance stays out of service in the budget however it looks,
    # so no other instance may go, and the run is blocked, as the warning said.
    scenario = ten([])
    scenario["instances"][0]["timings"] = {"reimage_seconds": 250}
    run = rollout(scenario, max_failed="1", timeout_minutes="3")
    r = run.report
    assert r["result"] == "failed" and r["failure"]["code"] == "Blocked", r["message"]
    assert [i for i in map(str, range(10)) if run.reimages(i)] == ["0"]
    assert any("max-failed 1 lets 1 instance fail, but failed instances stay out of service"
               in w for w in r["warnings"])


def test_a_percentage_rounds_down():
    run = rollout(ten(["3", "4"]), max_failed="15%", max_unavailable="3")  # 1.5 -> 1
    assert "2 instances failed, more than max-failed 1" in run.report["message"]


def test_a_failed_instance_whose_reimage_azure_still_runs_holds_its_slot():
    # 0 timed out (failed; max-failed let the run go on) and the list shows its reimage still
    # running: with a cap of 1 nothing else starts until it has settled.
    run = state([down(0), vm(1), vm(2)], mu="1", ignore_availability=True)
    run = replace(run, tracks={**run.tracks, "0": replace(
        run.tracks["0"], status=Status.FAILED, started=0.0, op_state=OperationState.IN_PROGRESS)})
    d = decide(obs(70, down(0), vm(1), vm(2)), {}, run, PLAN, 70)
    assert d.start == ()
    assert d.waiting.endswith("in-flight cap: 1 of 1 reimages in flight (Azure still runs the "
                              "reimage of failed 0)")
    assert decide(obs(80, vm(0, health="unhealthy"), vm(1), vm(2)), {}, run, PLAN, 80).start == ("1",)


def test_a_slot_held_that_long_by_a_failed_reimage_blocks_the_run_saying_so():
    # Instance 0's reimage takes 10 minutes, its timeout is 1: it fails, max-failed lets the run
    # go on, and Azure still runs its reimage, which holds the only slot past another timeout.
    run = rollout({"instances": [{"id": "0", "timings": {"reimage_seconds": 600}}, {"id": "1"},
                                 {"id": "2"}], "timings": {"reimage_seconds": 30}},
                  max_failed="1", timeout_minutes="1", poll_interval_seconds="5")
    r = run.report
    assert r["result"] == "failed" and r["failure"]["code"] == "Blocked"
    assert r["failure"]["message"] == ("instance 1 could not start for 60 s: Azure still runs "
                                       "the reimage of failed 0, which holds the in-flight cap of 1")
    assert run.backend.history()["max_reimages_in_flight"] == 1
