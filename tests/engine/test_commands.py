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
