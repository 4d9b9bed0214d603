"""The engine's view of Azure Compute: frozen observations and a narrow port.

Two implementations subclass `ComputePort`: `cycle_vmss.azure_adapter.AzureComputePort` (the
real SDK over HTTPS) and `cycle_vmss.simulator.inprocess.SimulatorComputePort` (the simulator's
backend called directly, for virtual-time runs, mapped through the same SDK models). This module
imports no Azure SDK: everything here is plain data so the decision function stays pure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Callable

HEALTH_EXTENSION_TYPES = ("ApplicationHealthLinux", "ApplicationHealthWindows")


@dataclass(frozen=True, slots=True)  # compared and read for every instance on every pass
class Instance:
    """One instance as a single list call saw it. Status codes are the part after the slash,
    lower-cased (`ProvisioningState/succeeded` -> "succeeded"); "" when Azure gave none."""

    id: str  # instanceId (Uniform) or VM name (Flexible); never assume 0..N-1
    name: str
    zone: str | None = None
    fault_domain: int | None = None
    provisioning: str = ""
    power: str = ""
    health: str | None = None  # vmHealth code; None when the instance view has no vmHealth
    protected: bool = False  # protectionPolicy.protectFromScaleSetActions
    standby: bool = False  # Flexible: instanceView.isVMInStandbyPool (parked, serves nothing)
    # False when the list left vmHealth out (a Flexible set's VM list may): the instance is
    # then judged on provisioning and power, or by its own instance view while in flight.
    health_listed: bool = True
    # timeCreated: with the id, it tells an instance from a later one that reuses its id
    time_created: datetime | None = None
    # Azure's times (epoch seconds, Azure's clock) of the ProvisioningState status and of
    # vmHealth (when the health was reported); None when Azure gave none.
    provisioning_time: float | None = None
    health_time: float | None = None
    # When its OS disk was last provisioned (the disk's ProvisioningState time: a reimage moves
    # it), Azure's clock; None when Azure gave none.
    os_disk_time: float | None = None
    # latestModelApplied: None where Azure gives no such signal (a Flexible set's VMs)
    latest_model_applied: bool | None = None

    @property
    def busy(self) -> bool:
        """An operation still runs on it (provisioning updating: a reimage, an upgrade, a
        repair): its states, and its OS disk, are not yet what they will be."""
        return self.provisioning == "updating"

    @property
    def in_service_candidate(self) -> bool:
        """Not stopped, deallocated or parked in a standby pool: it counts towards N0."""
        return not self.standby and self.power not in ("stopped", "stopping", "deallocated",
                                                       "deallocating")


@dataclass(frozen=True)
class ScaleSet:
    id: str  # full ARM resource id
    name: str
    resource_group: str
    subscription_id: str
    location: str
    orchestration_mode: str  # "Uniform" | "Flexible"
    capacity: int
    upgrade_mode: str = "Manual"
    health_extension: str | None = None  # type of the Application Health extension in the model
    provisioning: str = ""  # the set's own provisioningState, lower-cased ("updating" while busy)
    automatic_repairs: bool = False  # automaticRepairsPolicy.enabled
    automatic_os_upgrade: bool = False  # upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade


@dataclass(frozen=True)
class Observation:
    """One poll: the whole set from one paged list call, at the time it was taken."""

    time: float
    instances: tuple[Instance, ...]

    def by_id(self) -> dict[str, Instance]:
        return {i.id: i for i in self.instances}


class OperationState(str, Enum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    # Ended Canceled or with OperationPreempted: another operation (a repair, autoscale) took
    # the instance over, which lives on. Not an ARM status: ports map to it (`preempted`).
    PREEMPTED = "Preempted"


def preempted(status: str, error_code: str | None) -> bool:
    """Whether an operation that ended with `status` and `error_code` was preempted: Azure ends
    a preempted operation Canceled with the code OperationPreempted; either one says so."""
    return status.lower() in ("canceled", "cancelled") or error_code == "OperationPreempted"


@dataclass(frozen=True)
class OperationStatus:
    state: OperationState
    error_code: str | None = None
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state is not OperationState.IN_PROGRESS


class Operation(ABC):
    """A long-running Azure operation already accepted by ARM. `status()` never blocks for
    long: it reports what is known now (the SDK's poller advances in its own thread, or one
    status read is made now), or raises `Throttled` (`retry_after`: the seconds left) while
    Azure has its status poll wait."""

    @abstractmethod
    def status(self) -> OperationStatus: ...

    @abstractmethod
    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) once the operation has ended, or at once if it
        has; an implementation that learns of the end only through `status()` never calls it."""


# A list that Azure throttles part way resumes at the throttled page (as the SDK's own retry
# did, in place) when its earlier pages are at most this old; older ones are read again, so a
# list is never staler than a pass at a slow poll interval. Starting over every time, a read
# budget that runs dry every few reads would never let a list of that many pages finish.
LIST_RESUME_SECONDS = 120.0


@dataclass
class PartialList:
    """The pages of one list read before Azure throttled the next: their items, where the
    throttled page begins (a nextLink, or the simulator's page token), and when."""
    items: list
    resume_at: Any
    read_at: float  # when its first page was read

    def fresh(self, now: float) -> bool:
        return now - self.read_at <= LIST_RESUME_SECONDS


@dataclass
class RequestCounts:
    reads: int = 0
    writes: int = 0
    throttled: int = 0


# --- errors: one base for this boundary; only front ends turn them into exit codes -------------


class AzureError(Exception):
    """Something Azure said. `code` is ARM's error code, `status` the HTTP status."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class NotFound(AzureError):
    pass


class Conflict(AzureError):
    """409: another operation is in flight on that resource."""


class Throttled(AzureError):
    """429: Azure asks to be left alone for `retry_after` seconds (its Retry-After). The SDK does
    not wait that out itself when it is long: the engine does, between passes, where cancel and
    the timeouts still hold."""

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code, status=429)
        self.retry_after = retry_after


class Locked(Conflict):
    """409 ScopeLocked: an ARM resource lock (how Flexible sets protect an instance) refuses
    the write. Unlike a busy 409, asking again will not help until someone removes the lock."""


class AuthenticationFailed(AzureError):
    """401, or no credential could produce a token."""


class Forbidden(AzureError):
    """403: the identity lacks an RBAC action."""


class ComputePort(ABC):
    """What the engine may ask of Azure. Every call counts itself in `counts`."""

    counts: RequestCounts
    subscription_id: str  # the one it talks to, for messages
    # The fewest requests Azure said are left in the budgets its answer to the last accepted
    # write named (`x-ms-ratelimit-remaining-resource`); None before any, or when it named none.
    writes_left: int | None = None
    # The same for reads: what the answer to the last read (the last page of a list, read
    # right after it) said is left of its budgets.
    reads_left: int | None = None

    @abstractmethod
    def get_scale_set(self) -> ScaleSet: ...

    @abstractmethod
    def rolling_upgrade_in_progress(self) -> bool: ...

    @abstractmethod
    def os_upgrade_in_progress(self) -> bool:
        """Whether the set's OS upgrade history (`osUpgradeHistory`) has an upgrade rolling
        forward: how Azure shows an automatic OS image upgrade running."""

    @abstractmethod
    def list_instances(self) -> tuple[Instance, ...]:
        """One paged `virtualMachines?$expand=instanceView` list (all pages)."""

    @abstractmethod
    def protected_instances(self) -> frozenset[str]:
        """The ids of the instances protected from scale-set actions, from the scale set's VM
        list (served on both kinds of set). A Flexible set's VMs carry no protection policy in
        `list_instances`, so preflight asks this there."""

    @abstractmethod
    def instance_views(self, instance_ids: list[str]) -> tuple[Instance, ...]:
        """Each named instance as its own instance view shows it, one read each (ids and
        states only; an instance that is gone is left out). For the in-flight instances of a
        list that carried no vmHealth."""

    @abstractmethod
    def begin_reimage(self, instance_id: str, *, all_disks: bool = False) -> Operation:
        """Reimage exactly one instance. Raises `Conflict` if it is busy."""

    @abstractmethod
    def begin_manual_upgrade(self, instance_id: str) -> Operation:
        """Bring exactly one instance to the scale set's latest model (`manualUpgrade`)."""

    @abstractmethod
    def begin_set_capacity(self, capacity: int) -> Operation: ...

    @abstractmethod
    def automatic_repairs_state(self) -> str | None:
        """The AutomaticRepairs `serviceState` in the set's instance view `orchestrationServices`
        ("Running", "Suspended", "NotRunning"), or None when the view lists no such service."""

    @abstractmethod
    def begin_set_automatic_repairs(self, action: str, *, quick: bool = False) -> Operation:
        """`setOrchestrationServiceState` AutomaticRepairs with `action` "Suspend" or "Resume".
        `quick`: one attempt with short network timeouts, for a run that is being cancelled."""

    @abstractmethod
    def begin_delete_instances(self, instance_ids: list[str]) -> Operation: ...
