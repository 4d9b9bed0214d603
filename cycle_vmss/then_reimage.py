"""A step before a reimage and the reimage itself, as one operation: the upgrade to the latest
model (`apply-latest-model`), or the pre-reimage-command.

Done one after the other on the same instance, both fall into the one window in which the
engine holds it out of service: the engine sees a single operation that ends when the reimage
does, and its budget, timeout and done rule apply as to any reimage. (A reimage keeps the model
an instance has; bringing it to the scale set's latest model is its own call, `manualUpgrade`
naming that instance.)
"""

from __future__ import annotations

import threading
from typing import Callable

from .compute import (
    AzureError, ComputePort, Conflict, Locked, Operation, OperationState, OperationStatus,
)

_RUNNING = OperationStatus(OperationState.IN_PROGRESS)


class ThenReimage(Operation):
    """`first` (already running), then the reimage `begin` asks for, by the first `status()`
    that sees `first` succeed. The end of `first` wakes the engine (its callbacks run then too),
    so the reimage follows at once. A reimage Azure refuses for now (409, 429) is asked again
    on the next `status()`; any other refusal, or a `first` that did not succeed, ends this
    operation: with `first`'s own status when `why` is None, else with `why` before its
    message."""

    def __init__(self, first: Operation, begin: Callable[[], Operation], after: str,
                 why: str | None = None) -> None:
        self.first, self._begin, self.after, self._why = first, begin, after, why
        self._reimage: Operation | None = None
        # What Azure said when it last refused the reimage for now (None: not refused, or
        # accepted since), for the engine to say while it asks again.
        self.refused: AzureError | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def status(self) -> OperationStatus:
        with self._lock:
            if self._reimage is not None:
                return self._reimage.status()
            first = self.first.status()
            if not first.finished:
                return _RUNNING
            if first.state is not OperationState.SUCCEEDED:
                if self._why is None:
                    return first
                return OperationStatus(first.state, first.error_code,
                                       f"{self._why}: {first.error_message or first.state.value}")
            try:
                self._reimage = self._begin()
            except AzureError as err:
                if (isinstance(err, Conflict) and not isinstance(err, Locked)) or err.status == 429:
                    self.refused = err
                    return _RUNNING  # not accepted for now: asked again on the next status()
                return OperationStatus(OperationState.FAILED, err.code or "RequestFailed",
                                       f"the reimage after {self.after} was refused: {err}")
            self.refused = None
            for callback in self._callbacks:
                self._reimage.add_done_callback(callback)
            return _RUNNING

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            if self._reimage is not None:
                self._reimage.add_done_callback(callback)
        self.first.add_done_callback(callback)  # the first step's end: time to ask the reimage


def upgrade_then_reimage(port: ComputePort, instance_id: str, *, all_disks: bool = False) -> ThenReimage:
    """apply-latest-model: the instance's upgrade to the latest model (asked now), then its
    reimage."""
    return ThenReimage(port.begin_manual_upgrade(instance_id),
                       lambda: port.begin_reimage(instance_id, all_disks=all_disks),
                       "the upgrade to the latest model",
                       "the upgrade to the latest model did not succeed")
