"""What the scenario's `faults` do to requests, apart from the state machine.

`FaultInjector.admit(kind, method, path)` counts each ARM request and answers the scenario's
throttling (every Nth read or write: 429 with Retry-After), Compute's token buckets (with
`compute_limits: "azure"`, in `TokenBuckets`) and server errors (500 at a seeded rate), the way
Compute's front door does before a request reaches the resource; `ratelimit_headers(...)` are
the x-ms-ratelimit-remaining-* headers Azure puts on every answer. The reimage faults refuse an
instance's first reimage request with 409 and hold back the answer to an accepted one.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass
from typing import Callable

from . import routes
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
_THROTTLED_MESSAGE = ("The server rejected the request because too many requests have been "
                      "received for this subscription.")


# --- Compute's token buckets (`compute_limits: "azure"`) ------------------------------------------
# Source: Microsoft Learn, "Compute throttling limits" (MicrosoftDocs/azure-compute-docs,
# articles/virtual-machines/compute-throttling-limits.md, ms.date 05/27/2024). Each policy has a
# bucket per resource and one per subscription (per region); a bucket starts full, every request
# takes one token from each bucket of its policy, a request finding one empty is answered 429,
# and every minute each bucket gets its refill rate back, up to its capacity (the page's table:
# tokens are added at the start of each minute). "Users can successfully invoke API calls 1 min
# after getting throttled": Retry-After is the time to the next refill.


@dataclass(frozen=True)
class Policy:
    """One throttling policy: (refill per minute, capacity) per resource and per subscription.
    `resource` None: the page applies only its subscription-level limit. Learn names no header
    for these policies, so `name` is the category's, as the header shows it."""

    name: str
    resource: tuple[int, int] | None
    subscription: tuple[int, int]


# The scale set VM table. Where Learn leaves the resource open (a Uniform set's VMs are not
# resources of their own), the bucket is the scale set's: all its VMs share it (less kind).
_VMSS_VM_UPDATE = Policy("UpdateVMScaleSetVMs", (4, 12), (500, 1500))  # Reimage, ReimageAll
_VMSS_VM_DELETE = Policy("DeleteVMScaleSetVMs", (4, 12), (500, 1500))
_VMSS_VM_GET = Policy("GetVMScaleSetVMs", (12, 36), (2000, 6000))  # Get, GetInstanceView
# The scale set table. Its Reimage and Reimage All take only the subscription-level bucket.
_VMSS_UPDATE = Policy("UpdateVMScaleSet", (4, 12), (500, 1500))
_VMSS_SET_ACTION = Policy("UpdateVMScaleSet", None, (500, 1500))
_VMSS_LOW_COST_GET = Policy("LowCostGetVMScaleSet", (12, 36), (800, 2400))  # Get, rolling upgrades
_VMSS_HIGH_COST_GET = Policy("HighCostGetVMScaleSet", (10, 30), (360, 1080))  # Get Instance View
# The virtual machine table (a Flexible set's instances are VMs).
_VM_UPDATE = Policy("UpdateVM", (4, 12), (500, 1500))  # Reimage
_VM_LOW_COST_GET = Policy("LowCostGetVM", (12, 36), (8000, 24000))  # Get, Instance View
_VM_HIGH_COST_GET = Policy("HighCostGetVM", None, (300, 900))  # List
# Status of asynchronous operations; its per-VM bucket has no VM in the operation's URL.
_GET_OPERATION = Policy("GetOperation", None, (5000, 15000))

# Route handler -> policy. The scale set VMs' List is in none of the tables; it is taken as the
# scale set's High Cost Get (a list of many VMs; its smaller buckets are the less kind reading).
_POLICIES = {
    "get_scale_set": _VMSS_LOW_COST_GET, "latest_rolling_upgrade": _VMSS_LOW_COST_GET,
    "os_upgrade_history": _VMSS_LOW_COST_GET,
    "update_scale_set": _VMSS_UPDATE, "put_scale_set": _VMSS_UPDATE,
    "get_scale_set_instance_view": _VMSS_HIGH_COST_GET, "list_instances": _VMSS_HIGH_COST_GET,
    "reimage_set": _VMSS_SET_ACTION, "reimage_set_all": _VMSS_SET_ACTION,
    "delete_instances": _VMSS_VM_DELETE,
    "get_instance": _VMSS_VM_GET, "get_instance_view": _VMSS_VM_GET,
    "reimage": _VMSS_VM_UPDATE, "reimage_all": _VMSS_VM_UPDATE,
    "list_vms": _VM_HIGH_COST_GET,
    "get_vm": _VM_LOW_COST_GET, "get_vm_instance_view": _VM_LOW_COST_GET,
    "reimage_vm": _VM_UPDATE,
    "operation": _GET_OPERATION,
}
_MINUTE = 60.0


class TokenBuckets:
    """The buckets' levels, in the backend's time (`now`): state only, no HTTP. A bucket is
    made full when first used; refills come at whole minutes since the buckets began."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._epoch = now()
        self._levels: dict[tuple[str, str], tuple[int, int]] = {}  # -> (tokens, minute refilled)
        # Several scale sets' injectors may share one TokenBuckets (a subscription's buckets).
        self._lock = threading.Lock()
        # (bucket name, scope) -> the fewest tokens it was left with: how near it came to a 429
        self.lowest: dict[tuple[str, str], int] = {}

    def take(self, method: str, path: str) -> None:
        """One token from each bucket of the request's policy, or `Throttled` (and none taken)
        when one of them is empty."""
        charged = self._charged(method, path)
        if not charged:
            return
        with self._lock:
            self._take(charged)

    def _take(self, charged: list[tuple[tuple[str, str], tuple[int, int]]]) -> None:
        minute = self._minute()
        levels = {key: self._level(key, limit, minute) for key, limit in charged}
        empty = [(name, limit[1]) for (name, scope), limit in charged if levels[name, scope] == 0]
        if empty:
            name, capacity = empty[0]
            wait = math.ceil(self._epoch + (minute + 1) * _MINUTE - self._now())
            raise Throttled(_THROTTLED_MESSAGE, headers={
                "Retry-After": str(max(wait, 1)),
                "x-ms-ratelimit-remaining-resource": _header(levels)},
                details=[{"code": "TooManyRequests", "target": name,
                          "message": f'{{"operationGroup":"{name}",'
                                     f'"allowedRequestCount":{capacity},'
                                     f'"measuredRequestCount":{capacity + 1}}}'}])
        for key, tokens in levels.items():
            self._levels[key] = (tokens - 1, minute)
            self.lowest[key] = min(self.lowest.get(key, tokens), tokens - 1)

    def remaining(self, method: str, path: str) -> str | None:
        """The x-ms-ratelimit-remaining-resource value for this request's policy, or None when
        no bucket applies to it."""
        charged = self._charged(method, path)
        if not charged:
            return None
        with self._lock:
            minute = self._minute()
            return _header({key: self._level(key, limit, minute) for key, limit in charged})

    def _minute(self) -> int:
        return int((self._now() - self._epoch) // _MINUTE)

    @staticmethod
    def _charged(method: str, path: str) -> list[tuple[tuple[str, str], tuple[int, int]]]:
        """The request's buckets: ((bucket name, scope), (refill, capacity)) each."""
        route, params, _ = routes.match(method, path)
        policy = _POLICIES.get(route.handler) if route is not None else None
        if policy is None:
            return []
        buckets = [((f"{policy.name}Subscription", params["subscription"].lower()),
                    policy.subscription)]
        if policy.resource is not None:
            # The VM itself (Flexible), or the scale set a Uniform set's VM belongs to.
            resource = params.get("vm_name") or params["name"]
            buckets.insert(0, ((f"{policy.name}Resource",
                                f"{params['rg']}/{resource}".lower()), policy.resource))
        return buckets

    def _level(self, key: tuple[str, str], limit: tuple[int, int], minute: int) -> int:
        rate, capacity = limit
        tokens, refilled = self._levels.get(key, (capacity, minute))
        return min(capacity, tokens + rate * (minute - refilled))


def _header(levels: dict[tuple[str, str], int]) -> str:
    """Azure's format: `Microsoft.Compute/<bucket>;<remaining>`, comma-separated."""
    return ",".join(f"Microsoft.Compute/{name};{tokens}" for (name, _), tokens in levels.items())


class FaultInjector:
    """`instance_key` turns a scenario's instance reference into the id the set uses;
    `compute_limits` "azure" adds Compute's token buckets."""

    def __init__(self, faults: Faults, now: Callable[[], float], randomness: Randomness,
                 instance_key: Callable[[str], str], *, compute_limits: str = "none",
                 buckets: TokenBuckets | None = None) -> None:
        """`buckets`: the subscription's, when several sets share them (else the set's own)."""
        self.faults = faults
        self._now = now
        self._randomness = randomness
        self._buckets = (buckets or TokenBuckets(now)) if compute_limits == "azure" else None
        self._lock = threading.Lock()
        self._admitted = dict.fromkeys(KINDS, 0)
        self._recent: dict[str, list[float]] = {kind: [] for kind in KINDS}  # sorted times
        self.throttled = 0
        self.throttled_by: dict[str, int] = {}  # 429s by the bucket (or group) the body names
        self.server_errors = 0
        self.conflicts = 0  # 409s answered by `conflict_first_reimage`
        self._asked_reimage: set[str] = set()  # instances whose reimage was requested at all
        self._conflict_ids = {instance_key(i) for i in faults.conflict_first_reimage} \
            if isinstance(faults.conflict_first_reimage, tuple) else set()
        self._response_delays_left = {instance_key(i) for i in faults.reimage_response_delay_ids}

    # --- every ARM request ----------------------------------------------------------------

    def admit(self, kind: str, method: str = "", path: str = "") -> None:
        """Count one request of `kind` ("read" or "write"); raise the scenario's 429 or 500, or
        the token buckets' 429 for `method path` (with `compute_limits: "azure"`)."""
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
                self.throttled_by[group] = self.throttled_by.get(group, 0) + 1
                raise Throttled(
                    _THROTTLED_MESSAGE,
                    headers={"Retry-After": str(faults.retry_after_seconds),
                             "x-ms-ratelimit-remaining-resource": f"{bucket};0"},
                    details=[{"code": "TooManyRequests", "target": group,
                              "message": f'{{"operationGroup":"{group}",'
                                         f'"allowedRequestCount":{every - 1},'
                                         f'"measuredRequestCount":{every}}}'}])
            if self._buckets is not None and path:
                try:
                    self._buckets.take(method, path)
                except Throttled as exc:
                    self.throttled += 1
                    bucket = exc.details[0]["target"]
                    self.throttled_by[bucket] = self.throttled_by.get(bucket, 0) + 1
                    raise
            if faults.server_error_rate and self._randomness.chance(faults.server_error_rate):
                self.server_errors += 1
                raise ServerError("An unexpected error occured while processing the request. "
                                  "Please retry.", code="InternalServerError")

    def ratelimit_headers(self, kind: str, method: str = "", path: str = "") -> dict:
        with self._lock:
            buckets = self._buckets.remaining(method, path) if self._buckets and path else None
            now = self._now()
            recent = self._recent.get(kind, [])

            def used(window: float) -> int:
                return len(recent) - bisect.bisect_right(recent, now - window)

            windows = [f"{name};{max(allowance - used(window), 0)}"
                       for name, window, allowance in _RESOURCE_BUCKETS.get(kind, ())]
            if kind == "write":
                windows.append("Microsoft.Compute/VmssQueuedVMOperations;0")
            header = "reads" if kind == "read" else "writes"
            return {
                f"x-ms-ratelimit-remaining-subscription-{header}":
                    str(max(_SUBSCRIPTION_LIMIT.get(kind, 0) - used(_HOUR), 0)),
                "x-ms-ratelimit-remaining-resource": ",".join(windows) if buckets is None else buckets,
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
