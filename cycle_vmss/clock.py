"""Time as a parameter: the engine and the simulator never read the wall clock directly.

`SystemClock` is real time whose sleep a cancel event can cut short; `VirtualClock` is time that
moves only when someone sleeps, so a ten-hour rollout runs in a second; `SharedVirtualClock` is
virtual time for several threads at once (one `Participant` each), which moves when all sleep.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""

    def sleep(self, seconds: float) -> None:
        """Wait; may return early when the run is cancelled."""

    def wake(self) -> None:
        """End the current sleep (or the next one) early: what the sleeper waits for happened.
        Safe from any thread."""


class SystemClock:
    CANCEL_CHECK = 0.1  # seconds: how soon a sleep sees the cancel event while it waits for a wake

    def __init__(self, cancelled: threading.Event | None = None) -> None:
        self.cancelled = cancelled or threading.Event()
        self._woken = threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Returns early when cancelled, or when `wake` was called (since the last sleep)."""
        if seconds <= 0:
            return
        end = time.monotonic() + seconds
        while not self.cancelled.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._woken.wait(min(left, self.CANCEL_CHECK)):
                self._woken.clear()
                return

    def wake(self) -> None:
        """End the current sleep (or the next one) now: something the sleeper waits for
        happened, e.g. an SDK poller saw its operation finish. Safe from any thread."""
        self._woken.set()


class VirtualClock:
    """Starts at a fixed instant; `sleep` advances it at once. Not thread-safe by design."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def wake(self) -> None:
        """Nothing to end: virtual time moves only inside `sleep`, which returns at once, so
        nothing happens while it sleeps that could wake it."""

    def advance_to(self, instant: float) -> None:
        self._now = max(self._now, instant)


class SharedVirtualClock:
    """Virtual time shared by several threads, e.g. ten rollouts against one simulated
    subscription. Each thread takes part through its own `Participant` (a Clock), made with
    `join()` before the threads start, so no one's time runs ahead of a thread not yet started.

    One participant runs at a time. A participant's `sleep(s)` registers its wake time and
    blocks; when no participant is running, time jumps to the earliest wake time and that
    participant goes on (participants due at the same instant go on in turn, in the order they
    joined). A participant that finishes leaves, so the others can advance. Running one at a
    time makes the runs replay exactly: requests reach a shared backend in the same order every
    time. A thread that never enters nor leaves its participant stops everyone's time."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._turn = threading.Condition()
        self._waiting: dict["Participant", float] = {}  # asleep (or not yet entered) -> wake time
        self._running: Participant | None = None
        self._joined = 0

    def now(self) -> float:
        return self._now

    def join(self) -> "Participant":
        """A new participant, due now: it runs once its thread enters it and its turn comes."""
        with self._turn:
            participant = Participant(self, self._joined)
            self._joined += 1
            self._waiting[participant] = self._now
            self._pass_turn()
            return participant

    # --- for Participant, under self._turn ----------------------------------------------------

    def _pass_turn(self) -> None:
        """When no one runs, the earliest due participant (the first joined among equals) does."""
        if self._running is not None or not self._waiting:
            return
        due, order, participant = min((t, p.order, p) for p, t in self._waiting.items())
        del self._waiting[participant]
        self._now = max(self._now, due)
        self._running = participant
        self._turn.notify_all()

    def _wait_turn(self, participant: "Participant") -> None:
        while self._running is not participant:
            self._turn.wait()


class Participant:
    """One thread's view of a `SharedVirtualClock`: the Clock protocol, plus `enter` (wait for
    its first turn) and `leave` (finished: stop holding time back). Use it as a context manager
    around the thread's work."""

    def __init__(self, shared: SharedVirtualClock, order: int) -> None:
        self.shared = shared
        self.order = order
        self._woken = False
        self._left = False

    def __enter__(self) -> "Participant":
        self.enter()
        return self

    def __exit__(self, *exc) -> None:
        self.leave()

    def enter(self) -> None:
        with self.shared._turn:
            self.shared._wait_turn(self)

    def leave(self) -> None:
        shared = self.shared
        with shared._turn:
            if self._left:
                return
            self._left = True
            shared._waiting.pop(self, None)
            if shared._running is self:
                shared._running = None
            shared._pass_turn()

    def now(self) -> float:
        return self.shared.now()

    def sleep(self, seconds: float) -> None:
        """Returns at once for seconds <= 0, or when `wake` was called since the last sleep."""
        shared = self.shared
        with shared._turn:
            if self._woken:
                self._woken = False
                return
            if seconds <= 0:
                return
            if shared._running is not self:
                raise RuntimeError("sleep() on a participant that is not running: enter it "
                                   "from its own thread first")
            shared._waiting[self] = shared._now + seconds
            shared._running = None
            shared._pass_turn()
            shared._wait_turn(self)

    def wake(self) -> None:
        """End this participant's current sleep (or its next one) now: it becomes due at the
        present instant and goes on after the one running now. Safe from any thread."""
        shared = self.shared
        with shared._turn:
            if self in shared._waiting:
                shared._waiting[self] = shared._now
                shared._pass_turn()
            elif not self._left:
                self._woken = True
