"""pre-reimage-command and post-ready-command in virtual time, through the engine's `commands`
runner (the shell ones run end to end in tests/cli): how long a command takes is part of the
instance's time out of service, and waiting for one costs no extra reads."""

from __future__ import annotations

import pytest

from cycle_vmss.compute import OperationState, OperationStatus
from cycle_vmss.hooks import Command

from .conftest import rollout


class Slow(Command):
    """A command that exits 0 `seconds` of virtual time after it began."""

    def __init__(self, clock, which: str, seconds: float) -> None:
        self.clock, self.which, self.ends = clock, which, clock.now() + seconds

    def status(self) -> OperationStatus:
        return OperationStatus(OperationState.SUCCEEDED if self.clock.now() >= self.ends
                               else OperationState.IN_PROGRESS)

    def add_done_callback(self, callback) -> None:
        pass


@pytest.mark.timeout(30)
def test_a_post_ready_command_of_two_minutes_is_waited_for_at_the_poll_not_in_a_busy_loop():
    run = rollout({"instances": 2, "timings": {"reimage_seconds": 30}},
                  commands=lambda clock: lambda which, _c, _env, _t: Slow(clock, which, 120),
                  post_ready_command="smoke-test", poll_interval_seconds="10")
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    done = {row["id"]: row for row in r["instances"]}
    assert all(row["action"] == "reimaged" for row in done.values())
    # Each instance: about 30 s of reimage and 120 s of command, one at a time, at a 10 s poll.
    assert 300 <= r["durationSeconds"] <= 400
    assert r["requests"]["reads"] < 100  # a list at most every poll, not a spin while it runs


def test_a_reimage_refused_after_its_pre_command_is_said_and_asked_again():
    # Azure answers the first reimage request of instance 0 with 409 (busy): it was asked
    # after its pre-reimage-command, inside the one operation the engine follows.
    run = rollout({"instances": 2, "timings": {"reimage_seconds": 30},
                   "faults": {"conflict_first_reimage": ["0"]}},
                  commands=lambda clock: lambda which, _c, _env, _t: Slow(clock, which, 20),
                  pre_reimage_command="drain", poll_interval_seconds="10")
    assert run.report["result"] == "succeeded", run.report["message"]
    said = [e.message for e in run.events.of("waiting") if "refused the reimage after" in e.message]
    assert said == ["instance 0: Azure refused the reimage after its pre-reimage-command for now "
                    "((Conflict) Another operation on this or a dependent resource is in progress. "
                    "Retry the request after the operation completes.); asking again each pass"]
    assert [h["reimages"][-1]["status"] for h in run.backend.history()["instances"].values()] == \
        ["Succeeded", "Succeeded"]
