"""suspend-automatic-repairs in virtual time: the run suspends the set's running automatic repairs
before its first write and resumes them at its end, whatever the end; it leaves alone what it
did not suspend. Assertions read the simulator's history (its `repairs.suspended` intervals)
and its request log."""

from __future__ import annotations

import threading

from cycle_vmss import compute
from cycle_vmss.simulator.inprocess import SimulatorComputePort

from .conftest import NAME, RG, rollout

REPAIRS = {"grace_minutes": 30, "action": "Replace"}
ACTION = "Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"
TIMINGS = {"reimage_seconds": 30, "boot_seconds": 5, "health_seconds": 5}


def orchestration_writes(run) -> list[dict]:
    return [r for r in run.writes() if r["path"].endswith("/setOrchestrationServiceState")]


def other_writes(run) -> list[dict]:
    return [r for r in run.writes() if not r["path"].endswith("/setOrchestrationServiceState")]


def all_reimages(run) -> list[dict]:
    return [r for h in run.history["instances"].values() for r in h["reimages"]]


def test_repairs_are_suspended_before_the_first_reimage_and_resumed_after_success():
    run = rollout({"instances": 4, "timings": TIMINGS, "automatic_repairs": REPAIRS})
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    [(start, end)] = run.history["repairs"]["suspended"]
    reimages = all_reimages(run)
    assert len(reimages) == 4
    assert all(start <= x["start"] and x["end"] is not None and x["end"] <= end for x in reimages)
    writes = run.writes()  # the suspend is the first write, the resume the last
    assert writes[0]["path"].endswith("/setOrchestrationServiceState")
    assert writes[-1]["path"].endswith("/setOrchestrationServiceState")
    assert len(orchestration_writes(run)) == 2
    assert r["automaticRepairs"] == {"state": "Running", "suspended": True, "resumed": True}
    assert run.backend.get_scale_set(RG, NAME).repairs == "Running"


def test_a_repair_due_during_the_run_waits_until_the_run_has_resumed_them():
    # Instance 3, out of scope, turns unhealthy at 10 s; its grace period of one minute ends
    # while the run still reimages. Suspended, it is repaired only once the run is over.
    scenario = {"instances": 4, "timings": TIMINGS,
                "automatic_repairs": {"grace_minutes": 1, "action": "Replace"},
                "events": [{"at_seconds": 10, "instance": "3", "health": "unhealthy"}]}
    run = rollout(scenario, instance_ids="0 1 2", max_unavailable="2")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    [(_, end)] = run.history["repairs"]["suspended"]
    assert end - run.start > 70  # the run outlasted the grace period
    [repair] = run.history["repairs"]["done"]
    assert (repair["instance"], repair["start"]) == ("3", end)


def test_repairs_are_resumed_after_a_failure():
    scenario = {"instances": [{"id": "0"}, {"id": "1", "on_reimage": "fail"}, {"id": "2"}],
                "timings": TIMINGS, "automatic_repairs": REPAIRS}
    run = rollout(scenario)
    r = run.report
    assert r["result"] == "failed"
    [(start, end)] = run.history["repairs"]["suspended"]
    reimages = all_reimages(run)
    assert reimages and all(start <= x["start"] and x["end"] <= end for x in reimages)
    assert r["automaticRepairs"] == {"state": "Running", "suspended": True, "resumed": True}


def test_repairs_are_resumed_after_a_cancel():
    cancelled = threading.Event()

    def cancel_on_first_start(event):
        if event.kind == "started":
            cancelled.set()

    run = rollout({"instances": 3, "timings": TIMINGS, "automatic_repairs": REPAIRS},
                  listener=cancel_on_first_start, cancelled=cancelled)
    r = run.report
    assert r["result"] == "cancelled", r["message"]
    [(start, end)] = run.history["repairs"]["suspended"]
    reimages = all_reimages(run)
    # every reimage the run started began while repairs were suspended; the run resumed them
    # as it ended (the reimage it left in flight goes on in Azure)
    assert len(reimages) == 1 and start <= reimages[0]["start"] <= end
    assert end is not None and r["automaticRepairs"]["resumed"] is True


def test_repairs_already_suspended_are_left_alone():
    class SuspendedBefore(SimulatorComputePort):
        def __init__(self, backend, *args, **kwargs):
            backend.set_orchestration_service_state(RG, NAME, "AutomaticRepairs", "Suspend")
            super().__init__(backend, *args, **kwargs)

    run = rollout({"instances": 3, "timings": TIMINGS, "automatic_repairs": REPAIRS},
                  port_class=SuspendedBefore)
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert orchestration_writes(run) == []  # no Resume of what the run did not suspend
    [(_, end)] = run.history["repairs"]["suspended"]
    assert end is None
    assert r["automaticRepairs"] == {"state": "Suspended", "suspended": False, "resumed": False}


def test_repairs_not_enabled_are_left_alone():
    for scenario in ({"instances": 2}, {"instances": 2, "automatic_repairs": {"enabled": False}}):
        run = rollout({**scenario, "timings": TIMINGS})
        assert run.report["result"] == "succeeded", run.report["message"]
        assert orchestration_writes(run) == []
        assert run.report["automaticRepairs"] is None
        assert not any("automatic repairs" in w for w in run.report["warnings"])


def test_without_the_permission_the_run_is_refused_before_any_other_write():
    run = rollout({"instances": 3, "automatic_repairs": REPAIRS, "denied_actions": [ACTION]})
    r = run.report
    assert r["result"] == "refused"
    assert "\n" not in r["message"]
    assert ACTION in r["message"] and "--suspend-automatic-repairs false" in r["message"]
    assert [w["status"] for w in orchestration_writes(run)] == [403]
    assert other_writes(run) == [] and all_reimages(run) == []
    assert run.history["repairs"]["suspended"] == []


def test_with_the_setting_false_repairs_stay_on_and_a_warning_says_so():
    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_repairs": REPAIRS,
                   "denied_actions": [ACTION]}, suspend_automatic_repairs="false")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert orchestration_writes(run) == []
    [warning] = [w for w in r["warnings"] if "automatic repairs" in w]
    assert "--suspend-automatic-repairs false" in warning and "replace an instance" in warning
    assert r["automaticRepairs"] == {"state": "Running", "suspended": False, "resumed": False}


def test_a_dry_run_says_it_would_suspend_them_and_writes_nothing():
    run = rollout({"instances": 2, "automatic_repairs": REPAIRS}, dry_run="true")
    r = run.report
    assert r["result"] == "dry-run"
    assert "suspend automatic repairs" in r["message"]
    assert run.writes() == [] and run.history["repairs"]["suspended"] == []


def test_preflight_waits_while_the_set_itself_is_updating():
    class ScalingOut(SimulatorComputePort):
        """The set is Updating when the run begins: a capacity change someone else asked for."""
        def __init__(self, backend, *args, **kwargs):
            backend.update_scale_set(RG, NAME, {"sku": {"capacity": 3}})
            super().__init__(backend, *args, **kwargs)

    run = rollout({"instances": 2, "timings": {**TIMINGS, "create_seconds": 60}},
                  port_class=ScalingOut, poll_interval_seconds="5")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    first = min(x["start"] for x in all_reimages(run))
    assert first >= run.start + 60  # no reimage while the set was Updating
    assert any("Updating" in e.message for e in run.events.of("waiting"))
    assert len(all_reimages(run)) == 3


def test_the_os_upgrade_history_is_read_only_on_a_set_with_automatic_os_upgrades():
    # Not enabled in the model: never asked (no need for its read permission), even though an
    # upgrade would show; enabled and idle: asked, and the run goes on.
    history = "/osUpgradeHistory"
    run = rollout({"instances": 2, "timings": TIMINGS, "os_upgrade_in_progress": True})
    assert run.report["result"] == "succeeded", run.report["message"]
    assert not any(r["path"].endswith(history) for r in run.backend.requests())
    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_os_upgrade": True})
    assert run.report["result"] == "succeeded", run.report["message"]
    assert [r["status"] for r in run.backend.requests() if r["path"].endswith(history)] == [200]


def test_on_a_flexible_set_whose_repairs_state_is_unknown_they_are_left_alone_with_a_warning():
    # Azure serves no set-level instance view for a Flexible set: whether its repairs run (or
    # someone suspended them) cannot be read, so the run neither suspends nor resumes them.
    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_repairs": REPAIRS},
                  mode="Flexible")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    assert orchestration_writes(run) == []
    assert any("automatic repairs are enabled" in w and "replace an instance" in w
               for w in r["warnings"])
    assert r["automaticRepairs"] == {"state": None, "suspended": False, "resumed": False}


def test_a_resume_that_fails_leaves_a_warning_with_the_command_that_resumes_them():
    class ResumeRefused(SimulatorComputePort):
        def begin_set_automatic_repairs(self, action, *, quick=False):
            if action == "Resume":
                raise compute.AzureError("500 InternalServerError: try later", status=500)
            return super().begin_set_automatic_repairs(action, quick=quick)

    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_repairs": REPAIRS},
                  port_class=ResumeRefused)
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    [warning] = [w for w in r["warnings"] if "stay suspended" in w]
    assert ("az vmss set-orchestration-service-state --service-name AutomaticRepairs "
            f"--action Resume -g {RG} -n {NAME}") in warning
    assert r["automaticRepairs"] == {"state": "Running", "suspended": True, "resumed": False}


def test_repairs_someone_suspends_after_preflight_are_left_to_them():
    class SuspendedMeanwhile(SimulatorComputePort):
        """Someone suspends the repairs just after preflight has read them Running."""
        reads = 0

        def automatic_repairs_state(self):
            state = super().automatic_repairs_state()
            self.reads += 1
            if self.reads == 1:
                self.backend.set_orchestration_service_state(RG, NAME, "AutomaticRepairs",
                                                             "Suspend")
            return state

    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_repairs": REPAIRS},
                  port_class=SuspendedMeanwhile)
    assert run.report["result"] == "succeeded", run.report["message"]
    assert orchestration_writes(run) == []
    [(_, end)] = run.history["repairs"]["suspended"]
    assert end is None
    assert run.report["automaticRepairs"] == {"state": "Suspended", "suspended": False,
                                              "resumed": False}


def test_a_run_that_cannot_read_whether_repairs_run_is_refused_before_any_write():
    view = "Microsoft.Compute/virtualMachineScaleSets/instanceView/read"
    run = rollout({"instances": 2, "automatic_repairs": REPAIRS, "denied_actions": [view]})
    r = run.report
    assert r["result"] == "refused"
    assert "cannot read whether its automatic repairs run" in r["message"]
    assert "--suspend-automatic-repairs false" in r["message"] and view in r["message"]
    assert run.writes() == []
    # with the setting false the run goes on, warning that repairs may act
    run = rollout({"instances": 2, "timings": TIMINGS, "automatic_repairs": REPAIRS,
                   "denied_actions": [view]}, suspend_automatic_repairs="false")
    assert run.report["result"] == "succeeded", run.report["message"]
    assert any("replace an instance" in w for w in run.report["warnings"])
