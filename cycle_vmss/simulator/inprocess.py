"""`SimulatorComputePort`: the engine's ComputePort over the simulator backend, with no HTTP.

For virtual-time runs (engine tests, the benchmark). It behaves like the real SDK adapter where
the engine can tell: one backend call per HTTP request the SDK would send (each list page, each
operation-status poll), requests recorded under the paths HTTP would use, and azure-core's retry
policy replayed on the port's clock (429 waits `Retry-After`; 5xx backs off 0, 1.6, 3.2 ... s).
"""

from __future__ import annotations

import operator
from typing import Callable, TypeVar

from .. import compute
from ..compute import (
    HEALTH_EXTENSION_TYPES, ComputePort, Instance, Operation, OperationState, OperationStatus,
    RequestCounts, ScaleSet,
)
from .backend import Backend
from .errors import ArmError

T = TypeVar("T")

# azure-core RetryPolicy defaults (what ARM clients get): at most 3 retries on an error status
# (`retry_status`), backoff 0.8 s doubling from the second retry on, capped at 120 s; a
# Retry-After header replaces the backoff.
RETRY_STATUS = 3
BACKOFF_FACTOR = 0.8
BACKOFF_MAX = 120.0
_RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


def to_compute_error(error: ArmError) -> compute.AzureError:
    """The port's error for an ARM error, keeping ARM's code and HTTP status."""
    kind = {404: compute.NotFound, 409: compute.Conflict, 401: compute.AuthenticationFailed,
            403: compute.Forbidden}.get(error.status, compute.AzureError)
    if error.status == 409 and error.code == "ScopeLocked":
        kind = compute.Locked
    return kind(f"({error.code}) {error.message}", code=error.code, status=error.status)


def _status_code(statuses: list[dict], prefix: str) -> str:
    """`ProvisioningState/failed/OSProvisioningTimedOut` -> "failed"."""
    for status in statuses:
        parts = (status.get("code") or "").split("/")
        if parts[0] == prefix and len(parts) > 1:
            return parts[1].lower()
    return ""


def instance_from_body(body: dict) -> Instance:
    """A scale-set VM (Uniform: `instanceId`) or a VM of a Flexible set (its name is its id)."""
    properties = body.get("properties") or {}
    view = properties.get("instanceView") or {}
    statuses = view.get("statuses") or []
    health = ((view.get("vmHealth") or {}).get("status") or {}).get("code")
    zones = body.get("zones") or []
    fault_domain = view.get("platformFaultDomain")
    return Instance(
        id=body.get("instanceId") or body["name"],
        name=body["name"],
        zone=zones[0] if zones else None,
        fault_domain=fault_domain if fault_domain is not None else properties.get("platformFaultDomain"),
        provisioning=_status_code(statuses, "ProvisioningState"),
        power=_status_code(statuses, "PowerState"),
        health=health.split("/", 1)[1].lower() if health and "/" in health else None,
        protected=bool((properties.get("protectionPolicy") or {}).get("protectFromScaleSetActions")),
        standby=bool(view.get("isVMInStandbyPool")),
    )


def scale_set_from_body(body: dict) -> ScaleSet:
    properties = body.get("properties") or {}
    profile = properties.get("virtualMachineProfile") or {}
    extensions = (profile.get("extensionProfile") or {}).get("extensions") or []
    health = next((e["properties"]["type"] for e in extensions
                   if (e.get("properties") or {}).get("type") in HEALTH_EXTENSION_TYPES), None)
    parts = body["id"].split("/")  # /subscriptions/{sub}/resourceGroups/{rg}/...
    return ScaleSet(
        id=body["id"], name=body["name"], resource_group=parts[4], subscription_id=parts[2],
        location=body["location"], orchestration_mode=properties.get("orchestrationMode", "Uniform"),
        capacity=int((body.get("sku") or {}).get("capacity") or 0),
        upgrade_mode=(properties.get("upgradePolicy") or {}).get("mode", "Manual"),
        health_extension=health,
    )


class SimulatorOperation(Operation):
    """An accepted operation; each `status()` is one GET of its Azure-AsyncOperation URL until
    it has finished (then the answer is kept, as the SDK's poller keeps its result)."""

    def __init__(self, port: "SimulatorComputePort", op_id: str) -> None:
        self.port = port
        self.id = op_id
        self._final: OperationStatus | None = None

    def status(self) -> OperationStatus:
        if self._final is not None:
            return self._final
        body = self.port._call("read", "GET", self.port._operation_path(self.id),
                               lambda: self.port.backend.operation_status(self.id))
        error = body.get("error") or {}
        status = OperationStatus(OperationState(body["status"]), error.get("code"),
                                 error.get("message"))
        if status.finished:
            self._final = status
        return status

    def __repr__(self) -> str:
        return f"SimulatorOperation({self.id})"


class SimulatorComputePort(ComputePort):
    def __init__(self, backend: Backend, resource_group: str, scale_set_name: str, *,
                 clock=None) -> None:
        self.backend = backend
        self.resource_group = resource_group
        self.scale_set_name = scale_set_name
        self.clock = clock or backend.clock
        self.counts = RequestCounts()
        # The backend hands out the same page (and body) objects until something on them
        # changes, so most of a list maps for free: page token -> (page, its Instances), instanceId ->
        # (body, Instance), and the last whole list (its pages, the tuple returned).
        self._mapped_pages: dict[str | None, tuple[list, list[Instance]]] = {}
        self._mapped: dict[str, tuple[dict, Instance]] = {}
        self._last_list: tuple[list, tuple[Instance, ...]] = ([], ())
        self._scale_set: ScaleSet | None = None  # as the last get_scale_set read it

    # --- ComputePort --------------------------------------------------------------------------

    def get_scale_set(self) -> ScaleSet:
        body = self._call("read", "GET", self._set_path(),
                          lambda: self.backend.get_scale_set(self.resource_group, self.scale_set_name))
        self._scale_set = scale_set_from_body(body)
        return self._scale_set

    def _flexible(self) -> ScaleSet | None:
        """The scale set when it is Flexible (its instances are then VMs), else None. The mode
        comes from preflight's `get_scale_set`; before any, the port speaks Uniform."""
        ss = self._scale_set
        return ss if ss is not None and ss.orchestration_mode == "Flexible" else None

    def rolling_upgrade_in_progress(self) -> bool:
        try:
            body = self._call("read", "GET", self._set_path("/rollingUpgrades/latest"),
                              lambda: self.backend.latest_rolling_upgrade(
                                  self.resource_group, self.scale_set_name))
        except compute.NotFound as exc:
            if exc.code == "ResourceNotFound":  # the set itself is missing, not the upgrade
                raise
            return False
        running = ((body.get("properties") or {}).get("runningStatus") or {}).get("code")
        return running == "RollingForward"

    def list_instances(self) -> tuple[Instance, ...]:
        instances: list[Instance] = []
        pages: list[list] = []
        after: str | None = None  # the page token: the last id of the page before
        flexible = self._flexible()
        if flexible is not None:  # one paged list of the group's VMs, filtered to the set
            path = self._vm_path()
            vmss_filter = f"'virtualMachineScaleSet/id' eq '{flexible.id}'"
            fetch = lambda s: self.backend.list_vms(  # noqa: E731
                self.resource_group, vmss_filter=vmss_filter, expand_instance_view=True, after=s)
        else:
            path = self._set_path("/virtualMachines")
            fetch = lambda s: self.backend.list_instances(  # noqa: E731
                self.resource_group, self.scale_set_name, expand_instance_view=True, after=s)
        while True:
            at = after
            page, after = self._call("read", "GET", path, lambda s=at: fetch(s))
            pages.append(page)
            hit = self._mapped_pages.get(at)
            if hit is None or hit[0] is not page:
                hit = (page, [self._instance(body) for body in page])
                self._mapped_pages[at] = hit
            instances.extend(hit[1])
            if after is None:
                break
        last_pages, last = self._last_list
        if len(last_pages) == len(pages) and all(map(operator.is_, last_pages, pages)):
            return last  # the same list as last time: the same tuple (the engine skips work on it)
        result = tuple(instances)
        self._last_list = (pages, result)
        return result

    def _instance(self, body: dict) -> Instance:
        hit = self._mapped.get(body.get("instanceId") or body["name"])
        if hit is not None and hit[0] is body:
            return hit[1]
        instance = instance_from_body(body)
        self._mapped[instance.id] = (body, instance)
        return instance

    def begin_reimage(self, instance_id: str, *, all_disks: bool = False) -> Operation:
        if self._flexible() is not None:  # the single-VM reimage; a VM has no reimageall
            if all_disks:
                raise ValueError("a Flexible scale set's VMs have no reimageall operation")
            op_id = self._call(
                "write", "POST", self._vm_path(f"/{instance_id}/reimage"),
                lambda: self.backend.reimage_vm(self.resource_group, instance_id), status=202)
            return SimulatorOperation(self, op_id)
        action = "reimageall" if all_disks else "reimage"
        op_id = self._call(
            "write", "POST", self._set_path(f"/virtualMachines/{instance_id}/{action}"),
            lambda: self.backend.reimage(self.resource_group, self.scale_set_name, instance_id,
                                         all_disks=all_disks), status=202)
        return SimulatorOperation(self, op_id)

    def begin_set_capacity(self, capacity: int) -> Operation:
        _, op_id = self._call(
            "write", "PATCH", self._set_path(),
            lambda: self.backend.update_scale_set(self.resource_group, self.scale_set_name,
                                                  {"sku": {"capacity": capacity}}))
        return SimulatorOperation(self, op_id)

    def begin_delete_instances(self, instance_ids: list[str]) -> Operation:
        op_id = self._call(
            "write", "POST", self._set_path("/delete"),
            lambda: self.backend.delete_instances(self.resource_group, self.scale_set_name,
                                                  list(instance_ids)), status=202)
        return SimulatorOperation(self, op_id)

    # --- one request, as azure-core would send it ---------------------------------------------

    def _call(self, kind: str, method: str, path: str, fn: Callable[[], T], *, status: int = 200) -> T:
        retries = 0
        while True:
            if kind == "read":
                self.counts.reads += 1
            else:
                self.counts.writes += 1
            try:
                self.backend.admit(kind)
                result = fn()
            except ArmError as exc:
                self.backend.record_request(method, path, exc.status)
                if exc.status == 429:
                    self.counts.throttled += 1
                if exc.status not in _RETRY_STATUSES or retries >= RETRY_STATUS:
                    raise to_compute_error(exc) from None
                retries += 1
                retry_after = exc.headers.get("Retry-After")
                if retry_after is not None:
                    self.clock.sleep(float(retry_after))
                elif retries > 1:
                    self.clock.sleep(min(BACKOFF_FACTOR * 2 ** (retries - 1), BACKOFF_MAX))
                continue
            self.backend.record_request(method, path, status)
            return result

    def _set_path(self, suffix: str = "") -> str:
        sub = self.backend.scenario.subscription_id
        return (f"/subscriptions/{sub}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{self.scale_set_name}{suffix}")

    def _vm_path(self, suffix: str = "") -> str:
        sub = self.backend.scenario.subscription_id
        return (f"/subscriptions/{sub}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Compute/virtualMachines{suffix}")

    def _operation_path(self, op_id: str) -> str:
        s = self.backend.scenario
        return (f"/subscriptions/{s.subscription_id}/providers/Microsoft.Compute/locations/"
                f"{s.location}/operations/{op_id}")
