"""The surge's own instances, exactly (SPEC "Surge, exactly"), in virtual time: an id someone
else's instance reuses is not ours, and the wait for Azure's extras is cancel-aware and bounded.
The CLI over HTTPS covers overprovisioning and failing scale-outs (tests/cli/test_cli_surge.py)."""

from __future__ import annotations

import threading

from .conftest import assert_budget_kept, rollout


def test_a_surge_id_reused_by_someone_elses_instance_is_not_deleted():
    # The surge's instance 3 is deleted by someone else at 12 s, and their addition at 14 s
    # takes id 3 again, between two of the run's lists (every 10 s).
    run = rollout({"instances": 3, "zones": [], "reuse_instance_ids": True,
                   "timings": {"reimage_seconds": 30},
                   "events": [{"at_seconds": 12, "delete_instance": "3"},
                              {"at_seconds": 14, "add_instances": 1}]},
                  max_surge="1", poll_interval_seconds="10")

    assert run.report["result"] == "succeeded"
    history = run.history["instances"]
    assert history["3#1"]["created_by"] == "capacity" and history["3#1"]["deleted_by"] == "event"
    assert history["3"]["created_by"] == "event" and history["3"]["deleted"] is None  # theirs stays
    assert [w for w in run.writes() if w["path"].endswith("/delete")] == []
    assert run.report["capacity"] == {"before": 3, "during": 4, "after": 4}  # 3 + their one
    assert run.backend.capacity == 4
    assert_budget_kept(run, r_min=2)


def test_waiting_for_azures_extras_ends_on_cancel():
    cancelled = threading.Event()
    # Azure takes its extras back only after 10 minutes: the run is cancelled while it waits.
    run = rollout({"instances": 2, "zones": [], "overprovision": True,
                   "timings": {"overprovision_delete_seconds": 600}},
                  max_surge="1", poll_interval_seconds="5", cancelled=cancelled,
                  listener=lambda e: e.kind == "waiting" and "extra" in e.message and cancelled.set())

    r = run.report
    assert r["result"] == "cancelled" and "raising the capacity to 3" in r["message"]
    assert any("capacity stays at 3" in w for w in r["warnings"])
    assert all(not record["reimages"] for record in run.history["instances"].values())


def test_waiting_for_azures_extras_is_bounded_by_the_timeout():
    run = rollout({"instances": 2, "zones": [], "overprovision": True,
                   "timings": {"overprovision_delete_seconds": 600}},
                  max_surge="1", poll_interval_seconds="5", timeout_minutes="1")

    r = run.report
    assert r["result"] == "failed"
    assert "the set still has 4 instances for a capacity of 3 after 1 minutes" in r["message"]
    assert all(not record["reimages"] for record in run.history["instances"].values())
