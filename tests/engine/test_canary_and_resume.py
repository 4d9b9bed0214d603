"""stop-after (a canary), skip-reimaged-since (resume) and an operation a cancelled run left
behind: the pure rules, then the real engine against the simulator's backend in virtual time,
judged by the simulator's history."""

from __future__ import annotations

from dataclasses import replace

from cycle_vmss.decide import Outcome, REIMAGED_SINCE, Status, decide, record_started
from cycle_vmss.report import EXIT_CODES

from .conftest import assert_budget_kept, rollout
from .test_decide import PLAN, down, obs, state, vm

CANARY = replace(PLAN, stop_after=1)


def test_stop_after_starts_no_more_than_that_then_pauses():
    vms = [vm(i) for i in range(4)]
    d = decide(obs(0, *vms), {}, state(vms, mu="2"), CANARY, 0)
    assert d.start == ("0",)  # two may be out at once, but only one reimage is wanted

    run = record_started(d.run, "0", 0)
    d = decide(obs(10, down(0), *vms[1:]), {}, run, CANARY, 10)
    assert d.start == () and d.outcome is None
    assert d.waiting.startswith("stop-after 1 reached; 1 in flight")


def test_stop_after_pauses_once_its_reimages_are_over_or_succeeds_when_none_is_left():
    vms = [vm(i) for i in range(2)]
    run = record_started(state(vms), "0", 0)
    run = replace(run, tracks={**run.tracks, "0": replace(run.tracks["0"], status=Status.DONE)})
    assert decide(obs(20, *vms), {}, run, CANARY, 20).outcome is Outcome.PAUSED
    run = replace(run, tracks={**run.tracks, "1": replace(run.tracks["1"], status=Status.SKIPPED)})
    assert decide(obs(20, *vms), {}, run, CANARY, 20).outcome is Outcome.SUCCEEDED


def test_an_instance_under_an_operation_is_never_started_and_is_judged_when_it_ends():
    since = 1000.0
    plan = replace(PLAN, reimaged_since=since)
    busy = down(1)  # a reimage a cancelled run left behind
    d = decide(obs(0, vm(0), busy, vm(2)), {}, state([vm(0), busy, vm(2)]), plan, 0)
    assert "1" not in d.start and "an operation still runs on 1" in d.waiting
    fresh = replace(vm(1), os_disk_time=since + 5)  # it ended: its OS disk is new
    d = decide(obs(10, vm(0), fresh, vm(2)), {}, d.run, plan, 10)
    assert (d.run.tracks["1"].status, d.run.tracks["1"].reason) == (Status.SKIPPED, REIMAGED_SINCE)


def test_a_canary_run_reimages_one_restores_the_surge_and_says_how_to_continue():
    run = rollout({"instances": 4}, max_surge="1", stop_after="1")
    r = run.report
    assert r["result"] == "paused" and r["message"].startswith("paused after 1 reimage (stop-after 1)")
    reimaged = [row["id"] for row in r["instances"] if row["action"] == "reimaged"]
    assert len(reimaged) == 1
    assert [i for i, rec in run.history["instances"].items() if rec["reimages"]] == reimaged
    assert r["capacity"] == {"before": 4, "during": 5, "after": 4}  # the surge is restored first
    assert r["continueWith"] == {"skipReimagedSince": r["startTime"],
                                 "remainingInstances": [i for i in "0123" if i not in reimaged]}
    assert_budget_kept(run, 4)


def test_stop_after_as_a_percentage_rounds_up_over_the_instances_to_reimage():
    run = rollout({"instances": 5}, stop_after="30%", instance_ids="0 1 2 3")  # 30% of 4: 2
    assert run.report["result"] == "paused"
    assert sum(1 for rec in run.history["instances"].values() if rec["reimages"]) == 2


def test_a_dry_run_names_the_canary_and_the_instances_stopped_before():
    run = rollout({"instances": 3, "zones": []}, stop_after="1", dry_run="true")
    assert run.report["result"] == "dry-run"
    assert run.report["message"].startswith(
        "dry run: would reimage 1 of 3 instances (0), then pause (stop-after 1) before 1, 2")
    assert run.writes() == []


def _run_on(backend, clock, cancelled=None, listener=None, **raw) -> dict:
    """One more run of the engine on the same simulated set and clock as an earlier one."""
    from cycle_vmss.engine import run_rollout
    from cycle_vmss.settings import build_settings
    from cycle_vmss.simulator.inprocess import SimulatorComputePort

    settings = build_settings({"resource_group": "rg-demo", "scale_set_name": "vmss-demo", **raw})
    port = SimulatorComputePort(backend, settings.resource_group, settings.scale_set_name)

    class Listener:
        def event(self, e):
            if listener is not None:
                listener(e)
    return run_rollout(settings, port, clock=clock, listener=Listener(),
                       cancelled=cancelled).as_dict()


def test_a_cancelled_run_is_continued_by_the_setting_it_printed_each_instance_reimaged_once():
    import threading

    from cycle_vmss.clock import VirtualClock
    from cycle_vmss.simulator.backend import Backend

    clock = VirtualClock()
    backend = Backend({"instances": 6, "timings": {"reimage_seconds": 30}}, clock)
    cancel = threading.Event()
    done = []

    def on_event(e):
        if e.kind == "done":
            done.append(e.instance_id)
        elif e.kind == "started" and len(done) == 2:
            cancel.set()  # halfway: two done, one more just started
    first = _run_on(backend, clock, cancel, on_event, max_unavailable="2",
                    poll_interval_seconds="5")
    assert first["result"] == "cancelled"
    in_flight = [r["id"] for r in first["instances"] if r["action"] == "in-flight"]
    assert in_flight and first["continueWith"]["skipReimagedSince"] == first["startTime"]

    second = _run_on(backend, clock, max_unavailable="2", poll_interval_seconds="5",
                     skip_reimaged_since=first["continueWith"]["skipReimagedSince"])
    assert second["result"] == "succeeded", second["message"]
    skipped = {r["id"]: r["reason"] for r in second["instances"] if r["action"] == "skipped"}
    # the two done and the two the cancelled run left in flight (waited for, then judged)
    assert set(skipped) == set(done) | set(in_flight)
    assert set(skipped.values()) == {REIMAGED_SINCE}
    history = backend.history()["instances"]
    assert all(len(rec["reimages"]) == 1 for rec in history.values()), history
    assert second["continueWith"] is None


def test_continuing_a_run_whose_last_reimages_finished_meanwhile_succeeds_without_a_write():
    import threading

    from cycle_vmss.clock import VirtualClock
    from cycle_vmss.simulator.backend import Backend

    clock = VirtualClock()
    backend = Backend({"instances": 3, "timings": {"reimage_seconds": 30}}, clock)
    cancel = threading.Event()
    started = []

    def on_event(e):
        if e.kind == "started":
            started.append(e.instance_id)
            if len(started) == 3:
                cancel.set()  # the last one in flight: Azure finishes it after the cancel
    first = _run_on(backend, clock, cancel, on_event, poll_interval_seconds="5")
    assert first["result"] == "cancelled" and first["continueWith"] is not None
    writes = len([r for r in backend.requests() if r["method"] != "GET"])

    second = _run_on(backend, clock, poll_interval_seconds="5",
                     skip_reimaged_since=first["continueWith"]["skipReimagedSince"])
    # Done is done: a continuing stage must not fail because nothing was left for it.
    assert second["result"] == "succeeded", second["message"]
    assert "nothing left to reimage" in second["message"]
    assert EXIT_CODES[second["result"]] == 0 and second["continueWith"] is None
    assert len([r for r in backend.requests() if r["method"] != "GET"]) == writes
    assert all(len(rec["reimages"]) == 1 for rec in backend.history()["instances"].values())


def test_skip_reimaged_since_a_duration_skips_instances_with_a_newer_os_disk():
    day = 86400
    run = rollout({"instances": [{"id": "0", "os_disk_time": -10 * day},
                                 {"id": "1", "os_disk_time": -2 * day}, {"id": "2"}]},
                  skip_reimaged_since="7d")
    rows = {row["id"]: row for row in run.report["instances"]}
    assert rows["0"]["action"] == "reimaged"
    assert (rows["1"]["action"], rows["1"]["reason"]) == ("skipped", REIMAGED_SINCE)
    assert (rows["2"]["action"], rows["2"]["reason"]) == ("skipped", REIMAGED_SINCE)
    assert [i for i, rec in run.history["instances"].items() if rec["reimages"]] == ["0"]


OLD_MODEL = {"instances": 4, "events": [{"at_seconds": 0, "model_update": True}]}


def test_apply_latest_model_upgrades_then_reimages_each_within_the_budget():
    run = rollout(OLD_MODEL, apply_latest_model="true", max_unavailable="1")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert all(row["modelUpgraded"] for row in r["instances"])
    history = run.history["instances"]
    for rec in history.values():
        (upgrade,), (reimage,) = rec["manual_upgrades"], rec["reimages"]
        assert upgrade["status"] == reimage["status"] == "Succeeded"
        # upgraded, then reimaged on the next pass (the engine counts it out all along)
        assert 0 <= reimage["start"] - upgrade["end"] <= 10
    assert run.history["max_reimages_in_flight"] == 1
    assert_budget_kept(run, 3)
    assert all(i.latest_model_applied for i in run.port.list_instances())


def test_without_apply_latest_model_a_warning_names_the_instances_left_on_an_old_model():
    run = rollout(OLD_MODEL, instance_ids="0 1")
    assert run.report["result"] == "succeeded"
    assert ("instances 0, 1 are not on the scale set's latest model, and a reimage keeps an "
            "instance's model: set apply-latest-model: true") in run.report["warnings"][0]
    assert not any(rec["manual_upgrades"] for rec in run.history["instances"].values())


def test_a_dry_run_names_the_instances_it_would_upgrade():
    run = rollout({**OLD_MODEL, "events": [], "instances": [
        {"id": "0", "latest_model_applied": False}, {"id": "1"}]},
        apply_latest_model="true", dry_run="true")
    assert "first upgrade 0 to the latest model" in run.report["message"]
    assert run.writes() == []
