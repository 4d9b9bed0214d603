"""max-failed: the run goes on past failed instances until more than that many have failed,
keeps them out of service in the budget, and still ends failed naming each."""

from __future__ import annotations

from cycle_vmss.report import EXIT_CODES

from .conftest import assert_budget_kept, rollout


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
