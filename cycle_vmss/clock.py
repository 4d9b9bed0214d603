"""Time as a parameter: the engine and the simulator never read the wall clock directly.

`SystemClock` is real time whose sleep a cancel event can cut short; `VirtualClock` is time that
moves only when someone sleeps, so a ten-hour rollout runs in a second.
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
