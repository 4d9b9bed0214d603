"""`SimulatorComputePort`: the engine's ComputePort over the simulator backend, with no HTTP.

For virtual-time runs (engine tests, the benchmark). From answer to observation it goes the
production adapter's way: each snapshot is rendered by `bodies` as HTTP would send it,
deserialized with azure-mgmt-compute's models and mapped by `azure_adapter`'s functions. It
behaves like the real SDK adapter where the engine can tell: one backend call per HTTP request
the SDK would send (each list page, each operation-status poll), requests recorded under the
`routes` paths HTTP would use, and the adapter's bounded retry policy replayed on the port's clock
(a 429 waits a short `Retry-After` and raises `Throttled` for a long one; 5xx backs off 0, 1 s).

Deserializing costs a third of a millisecond an instance, and the benchmark lists a thousand
instances hundreds of times: so the port keeps what it made of each instance's snapshot until
the backend gives that instance a new one (a new `rev`), and maps only what changed.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from azure.mgmt.compute.models import (
    RollingUpgradeStatusInfo,
    UpgradeOperationHistoricalStatusInfo,
    VirtualMachine,
    VirtualMachineInstanceView,
    VirtualMachineScaleSet,
    VirtualMachineScaleSetInstanceView,
    VirtualMachineScaleSetVM,
    VirtualMachineScaleSetVMInstanceView,
)

from .. import compute
from ..azure_adapter import (
    SDK_RETRIES, SDK_WAIT_MAX, budget_left, instance_from_sdk, instance_from_view, instance_from_vm,
    repairs_state, retry_after, rolling_forward, scale_set_from_sdk, throttled_poll, unlisted_health,
)
from ..compute import (
    ComputePort, Instance, Operation, OperationState, OperationStatus, PartialList, RequestCounts,
    ScaleSet,
)
from . import bodies, routes
from .backend import Backend, VmSnapshot
from .errors import ArmError
from .identity import authorization_failed

# The object id a 403 names for the in-process port's caller (no token, so no real one).
CALLER_OBJECT_ID = "00000000-0000-0000-0000-00000000cafe"

T = TypeVar("T")

# The adapter's retry policy (azure-core's, bounded): at most SDK_RETRIES retries on an error
# status, backoff 0.8 s doubling from the second retry on, capped at SDK_WAIT_MAX; a Retry-After
# header replaces the backoff, and one longer than SDK_WAIT_MAX is not waited for here.
BACKOFF_FACTOR = 0.8
_RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


def to_compute_error(error: ArmError) -> compute.AzureError:
    """The port's error for an ARM error, keeping ARM's code and HTTP status."""
    if error.status == 429:
        return compute.Throttled(f"({error.code}) {error.message}", code=error.code,
                                 retry_after=retry_after(error.headers))
    kind = {404: compute.NotFound, 409: compute.Conflict, 401: compute.AuthenticationFailed,
            403: compute.Forbidden}.get(error.status, compute.AzureError)
    if error.status == 409 and error.code == "ScopeLocked":
        kind = compute.Locked
    return kind(f"({error.code}) {error.message}", code=error.code, status=error.status)


class SimulatorOperation(Operation):
    """An accepted operation; each `status()` is one GET of its Azure-AsyncOperation URL until
    it has finished (then the answer is kept, as the SDK's poller keeps its result). A throttled
    GET is not repeated before its Retry-After has passed, as the adapter's poller waits; until
    then `status()` raises `Throttled`, as the adapter's does."""

    def __init__(self, port: "SimulatorComputePort", op_id: str) -> None:
        self.port = port
        self.id = op_id
        self._final: OperationStatus | None = None
        self._quiet: tuple[float, float] = (0.0, 0.0)  # the last Retry-After, and its end

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Never called back, and rightly so in virtual time: the clock moves only while the
        engine sleeps and no poller runs meanwhile, so the engine's own `status()` (or its
        list) is the first to see the operation end; a callback would only repeat what it saw."""

    def status(self) -> OperationStatus:
        if self._final is not None:
            return self._final
        if self.port.clock.now() < self._quiet[1]:
            asked, until = self._quiet
            raise throttled_poll(asked, until - self.port.clock.now())
        try:
            snapshot = self.port._call("read", "GET", self.port._operation_path(self.id),
                                       lambda: self.port.backend.operation_status(self.id))
        except compute.Throttled as throttled:
            self._quiet = (throttled.retry_after, self.port.clock.now() + throttled.retry_after)
            raise throttled_poll(throttled.retry_after, throttled.retry_after) from None
        body = bodies.operation(snapshot)  # what the SDK's poller reads
        error = body.get("error") or {}
        state = (OperationState.PREEMPTED if compute.preempted(body["status"], error.get("code"))
                 else OperationState(body["status"]))
        status = OperationStatus(state, error.get("code"), error.get("message"))
        if status.finished:
            self._final = status
        return status

    def __repr__(self) -> str:
        return f"SimulatorOperation({self.id})"


class SimulatorComputePort(ComputePort):
    def __init__(self, backend: Backend, resource_group: str, scale_set_name: str, *,
                 clock=None) -> None:
        self.backend = backend
        self.scenario = backend.scenario
        self.subscription_id = self.scenario.subscription_id
        self.resource_group = resource_group
        self.scale_set_name = scale_set_name
        self.clock = clock or backend.clock
        self.counts = RequestCounts()
        # instance id -> (rev, Instance): what the instance's snapshot of that rev mapped to
        self._mapped: dict[str, tuple[int, Instance]] = {}
        # page token -> (the snapshots that page held last, their Instances): an unchanged page
        # costs one comparison of the same snapshot objects
        self._pages: dict[str | None, tuple[tuple[VmSnapshot, ...], tuple[Instance, ...]]] = {}
        self._scale_set: ScaleSet | None = None  # as the last get_scale_set read it
        self._partial: dict[str, PartialList] = {}  # a list throttled part way, by kind

    # --- ComputePort --------------------------------------------------------------------------

    def get_scale_set(self) -> ScaleSet:
        snapshot = self._call("read", "GET", self._path(routes.VMSS),
                              lambda: self.backend.get_scale_set(self.resource_group, self.scale_set_name))
        vmss = VirtualMachineScaleSet(bodies.scale_set(self.scenario, snapshot))
        self._scale_set = scale_set_from_sdk(vmss, self.subscription_id, self.resource_group,
                                             self.scale_set_name)
        return self._scale_set

    def _flexible(self) -> ScaleSet | None:
        """The scale set when it is Flexible (its instances are then VMs), else None. The mode
        comes from preflight's `get_scale_set`; before any, the port speaks Uniform."""
        ss = self._scale_set
        return ss if ss is not None and ss.orchestration_mode == "Flexible" else None

    def rolling_upgrade_in_progress(self) -> bool:
        try:
            snapshot = self._call("read", "GET", self._path(routes.VMSS, "/rollingUpgrades/latest"),
                                  lambda: self.backend.latest_rolling_upgrade(
                                      self.resource_group, self.scale_set_name))
        except compute.NotFound as exc:
            if exc.code == "ResourceNotFound":  # the set itself is missing, not the upgrade
                raise
            return False
        return rolling_forward(RollingUpgradeStatusInfo(bodies.rolling_upgrade(self.scenario, snapshot)))

    def os_upgrade_in_progress(self) -> bool:
        snapshot, rolling = self._call(
            "read", "GET", self._path(routes.VMSS, "/osUpgradeHistory"),
            lambda: self.backend.os_upgrade_history(self.resource_group, self.scale_set_name))
        body = bodies.os_upgrade_history(self.scenario, snapshot, rolling)
        return any(rolling_forward(UpgradeOperationHistoricalStatusInfo(entry))
                   for entry in body["value"])

    def list_instances(self) -> tuple[Instance, ...]:
        flexible = self._flexible()
        if flexible is not None:  # one paged list of the group's VMs, filtered to the set
            path = self._path(routes.VMS)
            vmss_filter = f"'virtualMachineScaleSet/id' eq '{flexible.id}'"
            fetch = lambda s: self.backend.list_vms(  # noqa: E731
                self.resource_group, vmss_filter=vmss_filter, expand_instance_view=True, after=s)
            model, to_instance, listed = VirtualMachine, instance_from_vm, True
        else:
            path = self._path(routes.VMSS, "/virtualMachines")
            fetch = lambda s: self.backend.list_instances(  # noqa: E731
                self.resource_group, self.scale_set_name, after=s)
            model, to_instance, listed = VirtualMachineScaleSetVM, instance_from_sdk, False

        def observe(vm: VmSnapshot) -> Instance:
            return to_instance(model(bodies.vm(self.scenario, vm, expand=True, listed=listed)))

        instances = self._read_list("vms" if flexible else "instances", path, fetch,
                                    lambda token, page: self._page_instances(token, page, observe))
        return tuple(instances) if flexible is None else unlisted_health(tuple(instances), flexible)

    def protected_instances(self) -> frozenset[str]:
        def protected(token: str | None, page: tuple[VmSnapshot, ...]) -> list[str]:
            return [vm.id for vm in page if instance_from_sdk(VirtualMachineScaleSetVM(
                bodies.scale_set_vm(self.scenario, vm, expand=False))).protected]
        return frozenset(self._read_list(
            "protection", self._path(routes.VMSS, "/virtualMachines"),
            lambda s: self.backend.list_instances(self.resource_group, self.scale_set_name, after=s),
            protected))

    def _read_list(self, kind: str, path: str, fetch: Callable[[str | None], tuple],
                   convert: Callable[[str | None, tuple[VmSnapshot, ...]], Iterable[T]]) -> list[T]:
        """Every page of a list; throttled part way, the next call resumes at the throttled page
        while the pages before are fresh, as the adapter does with a nextLink."""
        partial = self._partial.pop(kind, None)
        if partial is not None and not partial.fresh(self.clock.now()):
            partial = None
        items = list(partial.items) if partial else []
        first_read = partial.read_at if partial else self.clock.now()
        after: str | None = partial.resume_at if partial else None  # the last id of the page before
        while True:
            token = after
            try:
                page, after = self._call("read", "GET", path, lambda s=token: fetch(s))
            except compute.Throttled:
                self._partial[kind] = PartialList(items, token, first_read)
                raise
            items.extend(convert(token, tuple(page)))
            if after is None:
                return items

    def instance_views(self, instance_ids: list[str]) -> tuple[Instance, ...]:
        rg, name = self.resource_group, self.scale_set_name
        views = []
        for i in instance_ids:
            if self._flexible() is not None:  # the VM's own; the scale-set VM's is refused
                path = self._path(routes.SINGLE_VM, "/instanceView", vm_name=i)
                read, model = (lambda: self.backend.get_vm(rg, i)), VirtualMachineInstanceView
            else:
                path = self._path(routes.VM, "/instanceView", instance_id=i)
                read = lambda: self.backend.get_instance_view(rg, name, i)  # noqa: E731
                model = VirtualMachineScaleSetVMInstanceView
            try:
                snapshot = self._call("read", "GET", path, read)
            except compute.NotFound:
                continue  # gone: the next list tells the engine so
            view = model(bodies.instance_view(self.scenario, snapshot))
            views.append(instance_from_view(i, view))
        return tuple(views)

    def _page_instances(self, token: str | None, page: tuple[VmSnapshot, ...],
                        observe: Callable[[VmSnapshot], Instance]) -> tuple[Instance, ...]:
        """The Instances of one page, mapping only the snapshots not seen before."""
        seen = self._pages.get(token)
        if seen is not None and seen[0] == page:
            return seen[1]
        instances = []
        for vm in page:
            mapped = self._mapped.get(vm.id)
            if mapped is None or mapped[0] != vm.rev:
                mapped = self._mapped[vm.id] = (vm.rev, observe(vm))
            instances.append(mapped[1])
        result = tuple(instances)
        self._pages[token] = (page, result)
        return result

    def begin_reimage(self, instance_id: str, *, all_disks: bool = False) -> Operation:
        if self._flexible() is not None:  # the single-VM reimage; a VM has no reimageall
            if all_disks:
                raise ValueError("a Flexible scale set's VMs have no reimageall operation")
            op_id = self._call(
                "write", "POST", self._path(routes.SINGLE_VM, "/reimage", vm_name=instance_id),
                lambda: self.backend.reimage_vm(self.resource_group, instance_id), status=202)
            return SimulatorOperation(self, op_id)
        action = "reimageall" if all_disks else "reimage"
        op_id = self._call(
            "write", "POST", self._path(routes.VM, f"/{action}", instance_id=instance_id),
            lambda: self.backend.reimage(self.resource_group, self.scale_set_name, instance_id,
                                         all_disks=all_disks), status=202)
        return SimulatorOperation(self, op_id)

    def begin_manual_upgrade(self, instance_id: str) -> Operation:
        if self._flexible() is not None:  # preflight refuses apply-latest-model there first
            raise ValueError("a Flexible scale set's VMs have no latest-model upgrade")
        op_id = self._call(
            "write", "POST", self._path(routes.VMSS, "/manualupgrade"),
            lambda: self.backend.manual_upgrade(self.resource_group, self.scale_set_name,
                                                [instance_id]), status=202)
        return SimulatorOperation(self, op_id)

    def begin_set_capacity(self, capacity: int) -> Operation:
        _, op_id = self._call(
            "write", "PATCH", self._path(routes.VMSS),
            lambda: self.backend.update_scale_set(self.resource_group, self.scale_set_name,
                                                  {"sku": {"capacity": capacity}}))
        return SimulatorOperation(self, op_id)

    def automatic_repairs_state(self) -> str | None:
        snapshot, vms = self._call(
            "read", "GET", self._path(routes.VMSS, "/instanceView"),
            lambda: self.backend.get_scale_set_instance_view(self.resource_group, self.scale_set_name))
        return repairs_state(VirtualMachineScaleSetInstanceView(
            bodies.scale_set_instance_view(self.scenario, snapshot, vms)))

    def begin_set_automatic_repairs(self, action: str, *, quick: bool = False) -> Operation:
        op_id = self._call(
            "write", "POST", self._path(routes.VMSS, "/setOrchestrationServiceState"),
            lambda: self.backend.set_orchestration_service_state(
                self.resource_group, self.scale_set_name, "AutomaticRepairs", action), status=202)
        return SimulatorOperation(self, op_id)

    def begin_delete_instances(self, instance_ids: list[str]) -> Operation:
        op_id = self._call(
            "write", "POST", self._path(routes.VMSS, "/delete"),
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
                self._authorize(method, path)
                self.backend.faults.admit(kind, method, path)
                result = fn()
            except ArmError as exc:
                self.backend.record_request(method, path, exc.status)
                if exc.status == 429:
                    self.counts.throttled += 1
                wait = float(exc.headers["Retry-After"]) if "Retry-After" in exc.headers else None
                if (exc.status not in _RETRY_STATUSES or retries >= SDK_RETRIES
                        or (wait is not None and wait > SDK_WAIT_MAX)):
                    raise to_compute_error(exc) from None
                retries += 1
                if wait is not None:
                    self.clock.sleep(wait)
                elif retries > 1:
                    self.clock.sleep(min(BACKOFF_FACTOR * 2 ** (retries - 1), SDK_WAIT_MAX))
                continue
            self.backend.record_request(method, path, status)
            left = budget_left(self.backend.faults.ratelimit_headers(
                kind, method, path)["x-ms-ratelimit-remaining-resource"])
            if kind == "write":
                self.writes_left = left
            else:
                self.reads_left = left
            return result

    def _authorize(self, method: str, path: str) -> None:
        """The scenario's `denied_actions`, as ARM checks them before anything else."""
        route, _, _ = routes.match(method, path)
        if route is not None and route.action in self.scenario.denied_actions:
            raise authorization_failed(CALLER_OBJECT_ID, route.action, routes.arm_scope(path))

    def _path(self, template: str, suffix: str = "", **params: str) -> str:
        """The path HTTP would use: a `routes` template filled in for this set."""
        return template.format(subscription=self.subscription_id, rg=self.resource_group,
                               name=self.scale_set_name, **params) + suffix

    def _operation_path(self, op_id: str) -> str:
        return self._path(routes.OPERATION, location=self.scenario.location, op_id=op_id)
