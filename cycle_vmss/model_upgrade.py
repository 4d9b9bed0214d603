"""apply-latest-model: an instance's upgrade to the latest model and its reimage, as one operation.

A reimage keeps the model an instance has; bringing it to the scale set's latest model is its own
call (`manualUpgrade` naming that instance). Done one after the other on the same instance, both
fall into the one window in which the engine holds it out of service: the engine sees a single
operation that ends when the reimage does, and its budget, timeout and done rule apply as to any
reimage.
"""

from __future__ import annotations

import threading
from typing import Callable

from .compute import (
    AzureError, ComputePort, Conflict, Locked, Operation, OperationState, OperationStatus,
)

_RUNNING = OperationStatus(OperationState.IN_PROGRESS)


class UpgradeThenReimage(Operation):
    """`upgrade` (already accepted), then the reimage of `instance_id`, asked by the first
    `status()` that sees the upgrade succeed. The upgrade's end wakes the engine (its callbacks
    run then too), so the reimage follows at once. A reimage Azure refuses for now (409, 429) is
    asked again on the next `status()`; any other refusal, or an upgrade that did not succeed,
    ends this operation with what Azure said."""

    def __init__(self, port: ComputePort, instance_id: str, upgrade: Operation, *,
                 all_disks: bool = False) -> None:
        self._port, self._id, self._all_disks = port, instance_id, all_disks
        self._upgrade = upgrade
        self._reimage: Operation | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def status(self) -> OperationStatus:
        with self._lock:
            if self._reimage is not None:
                return self._reimage.status()
            upgraded = self._upgrade.status()
            if not upgraded.finished:
                return _RUNNING
            if upgraded.state is not OperationState.SUCCEEDED:
                return OperationStatus(upgraded.state, upgraded.error_code,
                                       f"the upgrade to the latest model did not succeed: "
                                       f"{upgraded.error_message or upgraded.state.value}")
            try:
                self._reimage = self._port.begin_reimage(self._id, all_disks=self._all_disks)
            except AzureError as err:
                if (isinstance(err, Conflict) and not isinstance(err, Locked)) or err.status == 429:
                    return _RUNNING  # not accepted for now: asked again on the next status()
                return OperationStatus(OperationState.FAILED, err.code or "RequestFailed",
                                       f"the reimage after the upgrade to the latest model was "
                                       f"refused: {err}")
            for callback in self._callbacks:
                self._reimage.add_done_callback(callback)
            return _RUNNING

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            self._upgrade.add_done_callback(callback)  # the upgrade's end: time to ask the reimage
            if self._reimage is not None:
                self._reimage.add_done_callback(callback)
