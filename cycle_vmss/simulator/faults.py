"""What the scenario's `faults` do to requests, apart from the state machine.

`FaultInjector.admit(kind)` counts each ARM request and answers the scenario's throttling (every
Nth read or write: 429 with Retry-After) and server errors (500 at a seeded rate), the way
Compute's front door does before a request reaches the resource; `ratelimit_headers(kind)` are
the x-ms-ratelimit-remaining-* headers Azure puts on every answer. The reimage faults refuse an
instance's first reimage request with 409 and hold back the answer to an accepted one.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable

from .errors import Conflict, ServerError, Throttled
from .randomness import Randomness
from .scenario import Faults

KINDS = ("read", "write")
# Azure's request budgets (x-ms-ratelimit-remaining-*): (window seconds, allowance).
_SUBSCRIPTION_LIMIT = {"read": 12000, "write": 1200}
_RESOURCE_BUCKETS = {
    "read": (("Microsoft.Compute/GetVMScaleSetVM3Min", 180, 1000),
             ("Microsoft.Compute/GetVMScaleSetVM30Min", 1800, 5000)),
    "write": (("Microsoft.Compute/VMScaleSetActions3Min", 180, 240),
              ("Microsoft.Compute/VMScaleSetActions30Min", 1800, 1200)),
}
_HOUR = 3600


class FaultInjector:
    """`instance_key` turns a scenario's instance reference into the id the set uses."""

    def __init__(self, faults: Faults, now: Callable[[], float], randomness: Randomness,
                 instance_key: Callable[[str], str]) -> None:
        self.faults = faults
        self._now = now
        self._randomness = randomness
        self._lock = threading.Lock()
        self._admitted = dict.fromkeys(KINDS, 0)
        self._recent: dict[str, list[float]] = {kind: [] for kind in KINDS}  # sorted times
        self.throttled = 0
        self.server_errors = 0
        self.conflicts = 0  # 409s answered by `conflict_first_reimage`
        self._asked_reimage: set[str] = set()  # instances whose reimage was requested at all
        self._conflict_ids = {instance_key(i) for i in faults.conflict_first_reimage} \
            if isinstance(faults.conflict_first_reimage, tuple) else set()
        self._response_delays_left = {instance_key(i) for i in faults.reimage_response_delay_ids}

    # --- every ARM request ----------------------------------------------------------------

    def admit(self, kind: str) -> None:
        """Count one request of `kind` ("read" or "write"); raise the scenario's 429 or 500."""
        if kind not in KINDS:
            raise ValueError(f"admit kind must be 'read' or 'write', not {kind!r}")
        with self._lock:
            self._admitted[kind] += 1
            now = self._now()
            recent = self._recent[kind]
            recent.append(now)
            cut = bisect.bisect_right(recent, now - _HOUR)
            if cut > 1000:  # trim now and then; counting stays a bisect
                del recent[:cut]
            faults = self.faults
            every = faults.throttle_reads_every if kind == "read" else faults.throttle_writes_every
            if every and self._admitted[kind] % every == 0:
                self.throttled += 1
                bucket = _RESOURCE_BUCKETS[kind][1][0]
                group = bucket.split("/")[-1]
                raise Throttled(
                    "The server rejected the request because too many requests have been "
                    "received for this subscription.",
                    headers={"Retry-After": str(faults.retry_after_seconds),
                             "x-ms-ratelimit-remaining-resource": f"{bucket};0"},
                    details=[{"code": "TooManyRequests", "target": group,
                              "message": f'{{"operationGroup":"{group}",'
                                         f'"allowedRequestCount":{every - 1},'
                                         f'"measuredRequestCount":{every}}}'}])
            if faults.server_error_rate and self._randomness.chance(faults.server_error_rate):
                self.server_errors += 1
                raise ServerError("An unexpected error occured while processing the request. "
                                  "Please retry.", code="InternalServerError")

    def ratelimit_headers(self, kind: str) -> dict:
        with self._lock:
            now = self._now()
            recent = self._recent.get(kind, [])

            def used(window: float) -> int:
                return len(recent) - bisect.bisect_right(recent, now - window)

            buckets = [f"{name};{max(allowance - used(window), 0)}"
                       for name, window, allowance in _RESOURCE_BUCKETS.get(kind, ())]
            if kind == "write":
                buckets.append("Microsoft.Compute/VmssQueuedVMOperations;0")
            header = "reads" if kind == "read" else "writes"
            return {
                f"x-ms-ratelimit-remaining-subscription-{header}":
                    str(max(_SUBSCRIPTION_LIMIT.get(kind, 0) - used(_HOUR), 0)),
                "x-ms-ratelimit-remaining-resource": ",".join(buckets),
            }

    def counts(self) -> dict:
        """Requests admitted so far, by kind, and how many were throttled or failed with 500."""
        with self._lock:
            return {"reads": self._admitted["read"], "writes": self._admitted["write"],
                    "throttled": self.throttled, "server_errors": self.server_errors}

    # --- reimage requests -----------------------------------------------------------------

    def refuse_first_reimage(self, instance_id: str) -> None:
        """The `conflict_first_reimage` fault: a 409 that starts nothing, once per instance."""
        with self._lock:
            first = instance_id not in self._asked_reimage
            self._asked_reimage.add(instance_id)
            chosen = self.faults.conflict_first_reimage
            if not first or not chosen:
                return
            if isinstance(chosen, int) and len(self._asked_reimage) > chosen:
                return
            if not isinstance(chosen, int) and instance_id not in self._conflict_ids:
                return
            self.conflicts += 1
        raise Conflict("Another operation on this or a dependent resource is in progress. "
                       "Retry the request after the operation completes.")

    def take_response_delay(self, instance_id: str) -> float:
        """Seconds the HTTP layer holds back the answer to this (accepted) reimage request:
        the `reimage_response_delay_*` fault, once per listed instance."""
        with self._lock:
            if instance_id not in self._response_delays_left:
                return 0.0
            self._response_delays_left.discard(instance_id)
            return self.faults.reimage_response_delay_seconds
