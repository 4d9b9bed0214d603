"""One named test per engine violation the randomized runs found (issue 6), each reading the
simulator's record; the same cases are `@example`s of the property test."""

from __future__ import annotations

from .invariants import Case
from .test_randomized import BASE, FAST, run_case


def scenario(instances, events=(), faults=None, **timings) -> dict:
    return {"instances": instances, "zones": [], "health_extension": True, "faults": faults or {},
            "timings": {**FAST, **timings}, "events": list(events)}


def test_restore_never_scales_in_instances_others_added_during_the_run():
    backend, report = run_case(Case(
        scenario([{"id": "0"}, {"id": "1"}, {"id": "2"}], [{"at_seconds": 30, "add_instances": 1}],
                 reimage_seconds=10, create_seconds=5),
        {**BASE, "max_unavailable": "0", "max_surge": "1"}))
    h = backend.history()["instances"]
    assert report["result"] == "succeeded"
    assert h["4"]["created_by"] == "event" and h["4"]["deleted"] is None  # theirs stays
    assert h["3"]["created_by"] == "capacity" and h["3"]["deleted"] is not None  # ours went
    assert backend.capacity == 4


def test_an_instance_others_add_during_the_surge_is_not_taken_for_a_surge_instance():
    backend, report = run_case(Case(
        scenario([{"id": "0"}], [{"at_seconds": 1, "add_instances": 1}]),
        {**BASE, "max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "1"}))
    h = backend.history()["instances"]
    assert report["result"] == "succeeded"
    assert h["1"]["created_by"] == "capacity" and h["1"]["deleted"] is not None
    assert h["2"]["created_by"] == "event" and h["2"]["deleted"] is None


def test_the_surge_raises_the_capacity_from_what_it_is_not_from_preflight():
    backend, report = run_case(Case(
        scenario([{"id": "0"}, {"id": "1"}],
                 [{"at_seconds": 0, "instance": "0", "health": "unhealthy"},
                  {"at_seconds": 1, "add_instances": 2}, {"at_seconds": 0, "delete_instance": "0"}],
                 faults={"throttle_reads_every": 3, "retry_after_seconds": 2}),
        {**BASE, "max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "1"}))
    h = backend.history()["instances"]
    assert report["result"] == "succeeded", report["message"]
    assert [i for i, r in h.items() if r.get("created_by") == "event" and r["deleted"]] == []


def test_an_instance_deleted_by_someone_else_during_its_reimage_is_removed_not_failed():
    backend, report = run_case(Case(
        scenario([{"id": "0"}, {"id": "1"}, {"id": "2"}], [{"at_seconds": 5, "delete_instance": "0"}],
                 reimage_seconds=30, delete_seconds=10),
        {**BASE, "poll_interval_seconds": "2", "timeout_minutes": "5"}))
    assert report["result"] == "succeeded", report["message"]
    assert {r["id"]: r["action"] for r in report["instances"]}["0"] == "removed"
    assert backend.history()["instances"]["0"]["reimages"][0]["status"] == "Canceled"


def test_one_409_is_not_a_refusal_for_the_whole_timeout():
    # 0 is refused once at t=0; the next pass comes a whole timeout later (a 60 s poll, as slow
    # throttled passes do): it used to fail "refused for 60 s" without asking again.
    backend, report = run_case(Case(
        scenario([{"id": "0"}, {"id": "1"}], faults={"conflict_first_reimage": ["0"]}),
        {**BASE, "poll_interval_seconds": "60", "timeout_minutes": "1"}))
    assert backend.conflicts == 1
    assert report["result"] == "succeeded", report["message"]
    assert len(backend.history()["instances"]["0"]["reimages"]) == 1


def test_nothing_to_reimage_is_refused_without_a_write():
    for instances in ([], [{"id": "0", "power": "stopped"}, {"id": "1", "power": "deallocated"}]):
        backend, report = run_case(Case(scenario(instances), dict(BASE)))
        assert report["result"] == "refused" and "nothing to reimage" in report["message"]
        assert [r for r in backend.requests() if r["method"] != "GET"] == []
