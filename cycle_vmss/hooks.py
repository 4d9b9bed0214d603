"""pre-reimage-command and post-ready-command: a shell command run on this machine (the runner,
the agent, the action's container) around each instance's reimage, as an `Operation` the engine
follows like Azure's own.

The pre-command runs once the instance is out of the budget and before its reimage request
(`then_reimage.ThenReimage`): the place to drain it from a load balancer. The post-command runs once
it is ready (after min-ready-seconds); it is done only when that exits 0. A non-zero exit, or a
run longer than timeout-minutes, fails the instance with the exit code and the last lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Callable

from .compute import Operation, OperationState, OperationStatus
from .decide import POST_FAILED, PRE_FAILED

PRE, POST = "pre-reimage-command", "post-ready-command"
FAILED_CODES = {PRE: PRE_FAILED, POST: POST_FAILED}
LAST_LINES = 5  # of the command's output, in the report's error
_RUNNING = OperationStatus(OperationState.IN_PROGRESS)


def hook_environment(instance_id: str, name: str, zone: str | None, resource_group: str,
                     scale_set: str) -> dict[str, str]:
    """What the command is told about its instance, beside this process's environment."""
    return {**os.environ, "CYCLE_VMSS_HOOK_INSTANCE_ID": instance_id,
            "CYCLE_VMSS_HOOK_INSTANCE_NAME": name, "CYCLE_VMSS_HOOK_ZONE": zone or "",
            "CYCLE_VMSS_HOOK_RESOURCE_GROUP": resource_group,
            "CYCLE_VMSS_HOOK_SCALE_SET": scale_set}


class Command(Operation):
    """A command the engine follows: which one it is, the output lines not yet logged, and a
    way to stop it. `CommandOperation` runs one; tests in virtual time may give their own."""

    which: str

    def take_output(self) -> list[str]:
        return []

    def stop(self) -> None:
        pass


# Starts a command: (which, the command, its environment, timeout in seconds) -> Command.
CommandRunner = Callable[[str, str, dict[str, str], float], Command]


class CommandOperation(Command):
    """One run of `command` through the shell, started at once, in its own process group (so
    that a cancel or a timeout ends whatever it started). Its output lines wait in `output`
    until the engine takes them (`take_output`), to log them from its own thread."""

    def __init__(self, which: str, command: str, env: dict[str, str], timeout: float) -> None:
        self.which, self.timeout = which, timeout
        self._lines: deque[str] = deque()
        self._last: deque[str] = deque(maxlen=LAST_LINES)
        self._status = _RUNNING
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            command, shell=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=os.name == "posix")
        threading.Thread(target=self._follow, name=f"cycle-vmss-{which}", daemon=True).start()

    def _follow(self) -> None:
        deadline = time.monotonic() + self.timeout
        timer = threading.Timer(self.timeout, self.stop)
        timer.daemon = True
        timer.start()
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self._lines.append(line)
                self._last.append(line)
        code = self._process.wait()
        timer.cancel()
        last = " | ".join(self._last)
        if code == 0:
            status = OperationStatus(OperationState.SUCCEEDED)
        elif time.monotonic() >= deadline:
            status = OperationStatus(OperationState.FAILED, FAILED_CODES[self.which],
                                     f"{self.which} ran longer than {self.timeout / 60:g} minutes "
                                     f"and was stopped; last lines: {last or '(none)'}")
        else:
            status = OperationStatus(OperationState.FAILED, FAILED_CODES[self.which],
                                     f"{self.which} exited {code}; last lines: {last or '(none)'}")
        with self._lock:
            self._status = status
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def take_output(self) -> list[str]:
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
        return lines

    def stop(self) -> None:
        """End the command and what it started (the run is over, or its time is)."""
        if self._process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(self._process.pid, signal.SIGKILL)
            else:
                self._process.kill()
        except OSError:
            pass  # it ended meanwhile

    def status(self) -> OperationStatus:
        with self._lock:
            return self._status

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if self._status.finished:
                done = True
            else:
                done = False
                self._callbacks.append(callback)
        if done:
            callback()
