"""The simulated scale set: all state and all time of the local Azure simulator.

`Backend(scenario, clock)` holds one scale set, its instances and their long-running operations.
Every verb first advances the state machine to `clock.now()`, applying each scheduled transition
at its exact time (so history intervals are exact, not the time somebody happened to look), then
acts at `now`. Verbs answer frozen snapshots (`ScaleSetSnapshot`, `VmSnapshot`,
`OperationSnapshot`) that `bodies` renders in ARM's shapes, and raise the `ArmError`s of
`errors`. One lock makes it thread-safe; the scenario's request faults live in `faults`.

A reimage of instance i started at s, with its timings R, B, H:
  s          provisioning updating, power stopping, no vmHealth
  s + R/2    power stopped
  s + R      power starting                       (stopped/deallocated instances stay so and
  s + R + B  provisioning succeeded, power running  their operation ends at s + R)
             operation Succeeded; vmHealth initializing
  s+R+B+H    vmHealth healthy (`never-healthy`: unhealthy)
With `stale_health_seconds` S, vmHealth shows the value and time it had before s until
s + R + B + S, while the instance's own health (what history judges) runs as above.
`on_reimage: fail` ends at s + R + B with provisioning failed, vmHealth unknown and the
operation Failed with the instance's `error_code`.

Preemption (AZURE-NOTES: repairs or autoscale preempt a reimage): at s + R/4 (`on_reimage:
preempted`, once) or at a `preempt_operation` event, the reimage's operation ends Canceled with
OperationPreempted while the instance lives on; the preempting operation, Azure's own, takes it
down and up again with the same timings (a reimage asked meanwhile answers 409).

Automatic repairs (Learn: virtual-machine-scale-sets-automatic-instance-repairs): an instance
that is running, unprotected, idle and unhealthy for `grace_minutes` after its last state change
(provisioning succeeded) is repaired, at most 5% of the set at once (one under 20 instances),
unless `setOrchestrationServiceState` suspended AutomaticRepairs: `Replace` deletes it and creates
a new instance (a new id), `Reimage` and `Restart` take it down and up like a preempting operation.

The model (SPEC: `latest_model_applied`, `model_update`, `manualupgrade`): a `model_update` event
leaves every instance off the latest model (`latestModelApplied` false; instances created later
are on it). `manualupgrade` naming instances (REST: VirtualMachineScaleSets_UpdateInstances, 202
and an operation) takes each down and up as a reimage does, for `manual_upgrade_seconds`, and
then it is on the latest model. Azure may restart an instance for a model change (an image
change re-creates its OS disk); the simulator always takes it out of service, the less kind
reading. A reimage keeps the model. Each instance's OS disk carries the time it was provisioned
(`os_disk_time`), which a reimage moves to its end: it provisions a new OS disk from the image.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from . import routes
from .errors import BadRequest, Conflict, NotFound, OperationNotAllowed, ResourceNotFound, ScopeLocked
from .faults import FaultInjector, TokenBuckets
from .randomness import Randomness
from .scenario import FLAPS, Event, InstanceSpec, Scenario, Timings, load_scenario

# Operations a `preempt_operation` event (or `on_reimage: preempted`) cancels.
_REIMAGE_KINDS = ("reimage", "reimageall", "reimage-set")
# A preempted operation's error (its status is Canceled): Azure's code and message, as
# kubernetes-sigs/cloud-provider-azure matches them (pkg/consts `OperationPreemptedErrorMessage`).
_PREEMPTED = {"code": "OperationPreempted",
              "message": "Operation execution has been preempted by a more recent operation."}
# The one `$filter` ARM takes on a resource group's VM list.
_VMSS_FILTER = re.compile(r"\s*'virtualMachineScaleSet/id'\s+eq\s+'([^']+)'\s*", re.IGNORECASE)
_ENTITY_NOT_FOUND = "The entity was not found in this Azure location."
# Learn, troubleshoot allocation-failure (and Azure/AKS#1272, a scale-out that hit it).
_ALLOCATION_FAILED = ("Allocation failed. We do not have sufficient capacity for the requested VM "
                      "size in this region. Read more about improving likelihood of allocation "
                      "success at http://aka.ms/allocation-guidance")
_VM_CORES = 2  # of the simulated VM size, Standard_D2s_v3 (bodies.VM_SIZE)
# An instance there from the start got its OS disk this long before (a scenario may say when).
_INITIAL_DISK_AGE = 86400.0


def _id_key(instance_id: str) -> tuple:
    return (0, int(instance_id), "") if instance_id.isdigit() else (1, 0, instance_id)


@dataclass(frozen=True)
class VmSnapshot:
    """One instance as ARM shows it at one instant. The backend replaces it whenever anything
    shown changes, with a new `rev` (unique across the set's life), so a reader may keep what it
    made of a snapshot for as long as the instance's rev stays the same."""

    id: str  # instanceId (Uniform) or VM name (Flexible)
    vm_id: str
    computer_name: str
    zone: str | None
    fault_domain: int
    protected: bool
    standby: bool  # Flexible: parked in the standby pool (not counted in capacity)
    error_code: str  # shown while provisioning is failed
    time_created: float
    provisioning: str
    provisioning_time: float
    power: str
    health: str | None  # None: no vmHealth reported
    health_time: float  # when `health` last changed (vmHealth's status time)
    rev: int
    # (health, time) that vmHealth still shows after a reimage (`stale_health_seconds`)
    stale_health: tuple[str, float] | None = None
    latest_model_applied: bool = True
    os_disk_time: float = 0.0  # when its OS disk was provisioned

    @property
    def shown_health(self) -> tuple[str | None, float]:
        """The health and its time as vmHealth shows them: stale for a while after a reimage."""
        return self.stale_health or (self.health, self.health_time)


@dataclass(frozen=True)
class ScaleSetSnapshot:
    capacity: int
    updating: bool  # an operation on the whole set is in flight
    unique_id: str
    time_created: float
    instance_count: int  # including those being deleted
    repairs: str | None = None  # AutomaticRepairs serviceState; None: the model has no policy


@dataclass(frozen=True)
class OperationSnapshot:
    id: str
    status: str  # InProgress, Succeeded, Failed, Canceled
    start: float
    end: float | None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class _Vm:
    """One instance's course through the state machine; `state` is what ARM shows of it."""

    state: VmSnapshot
    on_reimage: str
    timings: Timings
    created: float | None  # None for instances that existed at the start
    locked: bool = False  # Flexible: a resource lock on the VM (its reimage answers ScopeLocked)
    extra: bool = False  # an overprovisioned instance: Azure deletes it, the capacity omits it
    op_id: str | None = None  # the operation in flight on this instance
    health_before: tuple[str, float] | None = None  # (health, time) when its reimage began
    gen: int = 0  # bumped when an instance's course changes; stale transitions are dropped
    was_running: bool = True  # its power was running when its current course began
    deleting: bool = False

    @property
    def id(self) -> str:
        return self.state.id


@dataclass
class _Operation:
    id: str
    kind: str
    start: float
    pending: set = field(default_factory=set)
    end: float | None = None
    status: str = "InProgress"
    error: dict | None = None

    def snapshot(self) -> OperationSnapshot:
        error = self.error or {}
        return OperationSnapshot(self.id, self.status, self.start, self.end, error.get("code"),
                                 error.get("message"))


class Backend:
    def __init__(self, scenario: Scenario | dict | str | None = None, clock=None, *,
                 token_buckets: TokenBuckets | None = None) -> None:
        """`token_buckets`: the subscription's Compute buckets when several sets share them
        (`Subscription`); by default the set has its own."""
        if clock is None:
            from ..clock import SystemClock

            clock = SystemClock()
        self.scenario = load_scenario(scenario)
        self.clock = clock
        self._lock = threading.RLock()
        self.randomness = Randomness(self.scenario.faults.seed)
        # Flexible: an instance is a VM named `<scale set>_<suffix>`, and that name is its id
        # everywhere (bodies, routes, history); scenario keys may give the suffix alone.
        self._flexible = self.scenario.orchestration_mode == "Flexible"
        # scenario reference -> instance id; drawn before the faults resolve their references
        self._names: dict[str, str] = {}
        for spec in self.scenario.instances:
            self._names[spec.id] = self._new_name(spec.id)
        self.faults = FaultInjector(self.scenario.faults, clock.now, self.randomness, self._vm_key,
                                    compute_limits=self.scenario.compute_limits,
                                    buckets=token_buckets)
        self.start = clock.now()
        self._t = self.start  # the instant the state machine stands at
        self._queue: list = []
        self._seq = itertools.count()
        self._vms: dict[str, _Vm] = {}
        self._order: list[str] | None = None  # ids in list order, until one is added or removed
        self._rev = 0  # the last rev given to a VmSnapshot
        self._ops: dict[str, _Operation] = {}
        self._scale_set_ops: set[str] = set()
        self._next_id = 0
        self._freed: set[str] = set()  # ids of deleted instances, for `reuse_instance_ids`
        self._unique_id = self.randomness.guid()
        self.capacity = 0
        # introspection
        self._requests: list[dict] = []
        self._hist: dict[str, dict] = {}
        self._ready: dict[str, bool] = {}
        self._dirty: set[str] = set()
        self._not_ready_count = 0
        self._in_flight: set[str] = set()
        self._max_not_ready = 0
        self._max_in_flight = 0
        self._whole_set_calls: list[dict] = []
        self._capacity_log: list[dict] = []
        self._takeouts: list[dict] = []
        self._event_log: list[dict] = []
        self._repairs: list[dict] = []  # each repair begun: start, instance, action, op
        self._repairs_suspended: list[list] = []  # [start, end or None] of each suspension
        for spec in self.scenario.instances:
            self._add_vm(spec, created=None)
        self._set_capacity_value(len(self._live()))
        for event in self.scenario.events:
            self._schedule(self.start + event.at_seconds, self._run_event, event)
        if self._repair_policy() is not None:  # instances unhealthy from the start
            self._schedule(self.start + self._repair_policy().grace_minutes * 60, self._repair_scan)
        self._settle()

    # What the request faults answered, for tests that tally them.
    @property
    def throttled(self) -> int:
        return self.faults.throttled

    @property
    def server_errors(self) -> int:
        return self.faults.server_errors

    @property
    def conflicts(self) -> int:
        return self.faults.conflicts

    # --- ARM verbs ------------------------------------------------------------------------

    def get_scale_set(self, rg: str, name: str) -> ScaleSetSnapshot:
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            return self._scale_set()

    def update_scale_set(self, rg: str, name: str, patch: dict) -> tuple[ScaleSetSnapshot, str]:
        """PATCH: only `sku.capacity` changes anything."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            result = self._apply_model(patch)
            self._advance()
            return result

    def put_scale_set(self, rg: str, name: str, body: dict) -> tuple[ScaleSetSnapshot, str]:
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            result = self._apply_model(body)
            self._advance()
            return result

    def list_instances(self, rg: str, name: str, *,
                       after: str | None = None) -> tuple[list[VmSnapshot], str | None]:
        """One page of `virtualMachines`: the instances listed after the id `after` (None = from
        the start); returns the page and the token of the next page (its last id), or None.
        Served on Flexible sets too (their VMs by name), as Azure does (Learn:
        virtual-machine-scale-sets-orchestration-modes, "List scale sets VM API changes")."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            return self._page(after)

    def _page(self, after: str | None) -> tuple[list[VmSnapshot], str | None]:
        # The token is the last id listed, not an offset: an instance deleted between two pages
        # of one list must not shift the next page (Azure's tokens are not offsets either).
        ids = self._list_order()
        skip = 0 if after is None else bisect.bisect_right(ids, _id_key(after), key=_id_key)
        size = self.scenario.page_size
        page = [self._vms[i].state for i in ids[skip:skip + size]]
        return page, (ids[skip + size - 1] if skip + size < len(ids) else None)

    def get_instance(self, rg: str, name: str, instance_id: str) -> VmSnapshot:
        """One scale-set VM, on either kind of set (a Flexible VM by its name)."""
        with self._lock:
            self._advance()
            return self._find_vm(rg, name, instance_id).state

    def get_instance_view(self, rg: str, name: str, instance_id: str) -> VmSnapshot:
        """A scale-set VM's instanceView (the snapshot its GET shows). A Flexible set's VMs have
        theirs on the single-VM API only: refused, the less kind reading of Azure's docs."""
        with self._lock:
            self._advance()
            self._uniform_only(rg, name, "virtualMachines.instanceView.GET")
            return self._find_vm(rg, name, instance_id).state

    def update_instance(self, rg: str, name: str, instance_id: str,
                        body: dict) -> tuple[VmSnapshot, str]:
        """PUT of a scale-set VM: only `properties.protectionPolicy.protectFromScaleSetActions`
        changes anything. Protection lives on the scale-set VM model on both kinds of set (Learn:
        virtual-machine-scale-sets-instance-protection; Flexible from api-version 2023-09-01).
        Answers 200 and an operation that has already ended, as recorded
        (azure-recordings/vmss_vm_put_update_response_200.json)."""
        with self._lock:
            self._advance()
            vm = self._find_vm(rg, name, instance_id)
            properties = body.get("properties") if isinstance(body, dict) else None
            policy = properties.get("protectionPolicy") if isinstance(properties, dict) else None
            protect = policy.get("protectFromScaleSetActions") if isinstance(policy, dict) else None
            if protect is not None and not isinstance(protect, bool):
                raise BadRequest(f"The value {protect!r} of parameter "
                                 "'protectionPolicy.protectFromScaleSetActions' is not valid.")
            if protect is not None and protect != vm.state.protected:
                self._set(vm, protected=protect)
            op = self._new_op("update")
            self._end_op(op)
            return vm.state, op.id

    def reimage(self, rg: str, name: str, instance_id: str, *, all_disks: bool = False) -> str:
        with self._lock:
            self._advance()
            self._uniform_only(rg, name, f"virtualMachines.{'reimageall' if all_disks else 'reimage'}.POST")
            vm = self._find_vm(rg, name, instance_id)
            self._check_idle(vm)
            self.faults.refuse_first_reimage(vm.id)
            op = self._new_op("reimageall" if all_disks else "reimage")
            self._begin_reimages([vm], op, all_disks)
            self._advance()
            return op.id

    def manual_upgrade(self, rg: str, name: str, instance_ids: list) -> str:
        """`manualupgrade`: bring the named instances to the latest model. Uniform only: on a
        Flexible set the VMs are standalone and Azure has no such call for them (the less kind
        reading where Learn says nothing)."""
        with self._lock:
            self._advance()
            self._uniform_only(rg, name, "manualUpgrade.POST")
            vms = [self._find_vm(rg, name, str(i)) for i in instance_ids]
            for vm in vms:
                self._check_idle(vm)
            op = self._new_op("manualupgrade")
            for vm in vms:
                self._takeouts.append({"time": self._t, "instance": vm.id,
                                       "was_ready": self._ready.get(vm.id, False),
                                       "others_ready": sum(1 for i, r in self._ready.items()
                                                           if r and i != vm.id)})
                self._hist[vm.id]["manual_upgrades"].append(
                    {"op": op.id, "start": self._t, "end": None, "status": "InProgress"})
                op.pending.add(vm.id)
                vm.op_id = op.id
                running = vm.state.power == "running"
                done = self._take_down(vm, running, vm.timings.manual_upgrade_seconds)
                self._schedule(done, self._upgrade_done, vm, vm.gen, op, running)
            self._settle()
            self._advance()
            return op.id

    # --- Flexible: the instances are ordinary VMs (Microsoft.Compute/virtualMachines) ---------

    def list_vms(self, rg: str, *, vmss_filter: str | None, expand_instance_view: bool,
                 after: str | None = None) -> tuple[list[VmSnapshot], str | None]:
        """One page of the resource group's VMs. ARM takes one `$filter`,
        `'virtualMachineScaleSet/id' eq '<set id>'`, and `$expand=instanceView` only with it.
        A Uniform set's instances are not VM resources: they are never listed here."""
        with self._lock:
            self._advance()
            self._check_group(rg)
            if vmss_filter is None and expand_instance_view:
                raise BadRequest("The $expand=instanceView option can only be specified together "
                                 "with a valid $filter on 'virtualMachineScaleSet/id'.",
                                 code="InvalidParameter")
            if vmss_filter is not None:
                found = _VMSS_FILTER.fullmatch(vmss_filter)
                if found is None:
                    raise BadRequest(f"The $filter '{vmss_filter}' is not supported. Allowed value is "
                                     "'virtualMachineScaleSet/id' eq '/subscriptions/{subId}/"
                                     "resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/"
                                     "virtualMachineScaleSets/{vmssName}'.", code="InvalidParameter")
                if found.group(1).lower() != self._set_id().lower():
                    return [], None
            if not self._flexible:
                return [], None
            return self._page(after)

    def get_vm(self, rg: str, vm_name: str) -> VmSnapshot:
        """One VM of a Flexible set (its GET and its instanceView show the same snapshot)."""
        with self._lock:
            self._advance()
            return self._find_flexible_vm(rg, vm_name).state

    def reimage_vm(self, rg: str, vm_name: str) -> str:
        """`POST .../virtualMachines/{vmName}/reimage`: 202 and an async operation, as for
        Uniform. A resource lock on the VM refuses it with 409 ScopeLocked first."""
        with self._lock:
            self._advance()
            vm = self._find_flexible_vm(rg, vm_name)
            if vm.locked:
                scope = self._vm_resource_id(vm.id)
                raise ScopeLocked(f"The scope '{scope}' cannot perform write operation because "
                                  f"following scope(s) are locked: '{scope}'. Please remove the "
                                  "lock and try again.")
            self._check_idle(vm)
            self.faults.refuse_first_reimage(vm.id)
            op = self._new_op("reimage")
            self._begin_reimages([vm], op, False)
            self._advance()
            return op.id

    def reimage_set(self, rg: str, name: str, instance_ids: list | None, *,
                    all_disks: bool = False) -> str:
        """The whole-set reimage (`virtualMachineScaleSets/{name}/reimage`): every named instance,
        or every unprotected one when None, at once."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            if instance_ids is None:
                vms = [vm for vm in self._sorted_vms() if not vm.state.protected and not vm.deleting]
            else:
                vms = [self._find_vm(rg, name, str(i)) for i in instance_ids]
            for vm in vms:
                self._check_unprotected(vm, name)
                self._check_idle(vm)
            op = self._new_op("reimageall" if all_disks else "reimage-set")
            self._scale_set_ops.add(op.id)
            self._whole_set_calls.append(
                {"time": self._t, "instances": [vm.id for vm in vms], "all_disks": all_disks})
            self._begin_reimages(vms, op, all_disks)
            self._advance()
            return op.id

    def delete_instances(self, rg: str, name: str, instance_ids: list) -> str:
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            vms = []
            for instance_id in instance_ids:
                vm = self._vms.get(str(instance_id))
                if vm is None:
                    raise BadRequest(
                        f"The provided instanceId {instance_id} is not an active Virtual Machine "
                        "Scale Set VM instanceId.", code="InvalidParameter")
                vms.append(vm)
            op = self._new_op("delete")
            self._scale_set_ops.add(op.id)
            self._begin_deletes(vms, op, by="request")
            self._advance()
            return op.id

    def get_scale_set_instance_view(self, rg: str, name: str
                                    ) -> tuple[ScaleSetSnapshot, tuple[VmSnapshot, ...]]:
        """The set and every instance, which its instance view summarises."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            if self._flexible:
                self._uniform_only(rg, name, "instanceView.GET")
            return self._scale_set(), tuple(vm.state for vm in self._vms.values())

    def latest_rolling_upgrade(self, rg: str, name: str) -> ScaleSetSnapshot:
        """The set a rolling upgrade runs on, when the scenario says one does (NotFound if not)."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            if not self.scenario.rolling_upgrade_in_progress:
                raise NotFound(
                    f"Rolling upgrade status for Virtual Machine Scale Set '{name}' was not found.")
            return self._scale_set()

    def os_upgrade_history(self, rg: str, name: str) -> tuple[ScaleSetSnapshot, bool]:
        """The set, and whether an automatic OS image upgrade rolls forward on it now (the
        scenario's `os_upgrade_in_progress`); the history is empty otherwise."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            return self._scale_set(), self.scenario.os_upgrade_in_progress

    def set_orchestration_service_state(self, rg: str, name: str, service_name: str,
                                        action: str) -> str:
        """`POST .../setOrchestrationServiceState` (`{"serviceName", "action"}`): Suspend or
        Resume AutomaticRepairs; an operation that ends at once. Azure does not document the
        answer for a set whose repairs are not enabled: refused here (400), the less kind."""
        with self._lock:
            self._advance()
            self._check_set(rg, name)
            if str(service_name).lower() != "automaticrepairs":
                raise BadRequest(f"The value '{service_name}' of parameter 'serviceName' is not "
                                 "supported here; the simulator knows 'AutomaticRepairs'.",
                                 code="InvalidParameter")
            if str(action).lower() not in ("suspend", "resume"):
                raise BadRequest(f"The value '{action}' of parameter 'action' is not valid; "
                                 "expected 'Suspend' or 'Resume'.", code="InvalidParameter")
            if self._repair_policy() is None:
                raise BadRequest(f"Automatic repairs are not enabled on Virtual Machine Scale Set "
                                 f"'{self.scenario.scale_set_name}'.", code="OperationNotAllowed")
            suspended = self._repairs_suspended_now()
            if action.lower() == "suspend" and not suspended:
                self._repairs_suspended.append([self._t, None])
            elif action.lower() == "resume" and suspended:
                self._repairs_suspended[-1][1] = self._t
                self._repair_scan()
            op = self._new_op("orchestration-service-state")
            self._end_op(op)
            self._advance()
            return op.id

    def has_operation(self, op_id: str) -> bool:
        """Whether this set began the operation (a subscription finds an id's set by it)."""
        with self._lock:
            return op_id in self._ops

    def operation_status(self, op_id: str) -> OperationSnapshot:
        with self._lock:
            self._advance()
            op = self._ops.get(op_id)
            if op is None:
                raise NotFound(_ENTITY_NOT_FOUND)
            return op.snapshot()

    # --- requests seen ----------------------------------------------------------------------

    def record_request(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._requests.append(
                {"method": method, "path": path, "status": int(status), "time": self.clock.now()})

    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._requests]

    # --- history --------------------------------------------------------------------------

    def history(self) -> dict:
        """What happened, from the state machine's own record (times are epoch seconds).
        Ready = provisioning succeeded, power running and, when the model has the health
        extension, vmHealth healthy; stopped and deallocated instances are never ready."""
        with self._lock:
            self._advance()
            instances = {}
            for instance_id in sorted(self._hist, key=_id_key):
                h = self._hist[instance_id]
                instances[instance_id] = {
                    "not_ready": [list(i) for i in h["not_ready"]],
                    "reimages": [dict(r) for r in h["reimages"]],
                    "manual_upgrades": [dict(r) for r in h["manual_upgrades"]],
                    "created": h["created"], "deleted": h["deleted"], "zone": h["zone"],
                }
                for key in ("created_by", "deleted_by"):  # see _create and _begin_deletes
                    if h.get(key):
                        instances[instance_id][key] = h[key]
            return {
                "start": self.start,
                "now": self._t,
                "instances": instances,
                "max_not_ready": self._max_not_ready,
                "max_reimages_in_flight": self._max_in_flight,
                "whole_set_reimages": len(self._whole_set_calls),
                "whole_set_reimage_calls": [dict(c) for c in self._whole_set_calls],
                "capacity": [dict(c) for c in self._capacity_log],
                "takeouts": [dict(t) for t in self._takeouts],
                "events": [dict(e) for e in self._event_log],
                "repairs": {"done": [self._repair_record(r) for r in self._repairs],
                            "suspended": [list(i) for i in self._repairs_suspended]},
            }

    def _repair_record(self, repair: dict) -> dict:
        record = {k: v for k, v in repair.items() if k != "op"}
        record["end"] = self._ops[repair["op"]].end  # None while it runs
        return record

    # --- time -----------------------------------------------------------------------------

    def _schedule(self, at: float, fn: Callable, *args) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), fn, args))

    def _advance(self) -> None:
        """Apply every transition due by `clock.now()`, each batch at its own instant."""
        now = self.clock.now()
        while self._queue and self._queue[0][0] <= now:
            at = self._queue[0][0]
            self._t = max(self._t, at)
            while self._queue and self._queue[0][0] <= at:
                _, _, fn, args = heapq.heappop(self._queue)
                fn(*args)
            self._settle()
        self._t = max(self._t, now)

    # --- state changes ----------------------------------------------------------------------

    def _add_vm(self, spec: InstanceSpec, *, created: float | None) -> _Vm:
        instance_id = self._names.get(spec.id) or self._new_name(spec.id)
        self._names[spec.id] = instance_id
        if instance_id in self._hist:  # a reused id: the earlier holder's record moves aside
            self._settle()  # its removal is recorded first
            earlier = sum(1 for key in self._hist if key.startswith(f"{instance_id}#")) + 1
            self._hist[f"{instance_id}#{earlier}"] = self._hist.pop(instance_id)
        self._rev += 1
        state = VmSnapshot(
            id=instance_id, vm_id=self.randomness.guid(),
            computer_name=self._computer_name(instance_id), zone=spec.zone,
            fault_domain=spec.fault_domain, protected=spec.protect_from_scale_set_actions,
            standby=spec.standby, error_code=spec.error_code, time_created=self._t,
            provisioning="succeeded", provisioning_time=self._t, power=spec.power,
            health=spec.health if spec.power == "running" else None, health_time=self._t,
            rev=self._rev, latest_model_applied=spec.latest_model_applied,
            os_disk_time=self.start + spec.os_disk_time if spec.os_disk_time is not None
            else self._t if created is not None else self.start - _INITIAL_DISK_AGE)
        vm = _Vm(state, on_reimage=spec.on_reimage, timings=spec.timings, created=created,
                 locked=spec.locked)
        self._vms[vm.id] = vm
        self._order = None
        self._hist[vm.id] = {"not_ready": [], "reimages": [], "manual_upgrades": [],
                             "created": created, "deleted": None, "zone": spec.zone}
        suffix = self._suffix(spec.id)
        if suffix.isdigit():
            self._next_id = max(self._next_id, int(suffix) + 1)
        self._dirty.add(vm.id)
        return vm

    def _set_capacity_value(self, capacity: int) -> None:
        if not self._capacity_log or self._capacity_log[-1]["capacity"] != capacity:
            self._capacity_log.append({"time": self._t, "capacity": capacity})
        self.capacity = capacity

    def _set(self, vm: _Vm, **changes) -> None:
        """Change what an instance shows, now: a new snapshot with a new rev."""
        if "provisioning" in changes:
            changes["provisioning_time"] = self._t
        if "health" in changes and changes["health"] != vm.state.health:
            changes["health_time"] = self._t
        self._rev += 1
        vm.state = replace(vm.state, rev=self._rev, **changes)
        self._dirty.add(vm.id)
        if "health" in changes or "provisioning" in changes:
            due = self._repair_due(vm)
            if due is not None:
                self._schedule(due, self._repair_scan)

    def _new_op(self, kind: str) -> _Operation:
        op = _Operation(id=self.randomness.guid(), kind=kind, start=self._t)
        self._ops[op.id] = op
        return op

    def _finish_part(self, op: _Operation, vm: _Vm, status: str, error: dict | None = None) -> None:
        """One instance's share of `op` ended; the operation ends with its last instance."""
        op.pending.discard(vm.id)
        if vm.op_id == op.id:
            vm.op_id = None
        self._in_flight.discard(vm.id)
        records = self._hist[vm.id]["manual_upgrades" if op.kind == "manualupgrade" else "reimages"]
        for record in reversed(records):
            if record["op"] == op.id and record["end"] is None:
                record["end"], record["status"] = self._t, status
                break
        if status != "Succeeded" and op.error is None:
            op.error, op.status = error, status
        if not op.pending:
            self._end_op(op)

    def _end_op(self, op: _Operation) -> None:
        op.end = self._t
        if op.status == "InProgress":
            op.status = "Succeeded"
        self._scale_set_ops.discard(op.id)

    def _check_unprotected(self, vm: _Vm, name: str) -> None:
        """Protection blocks actions on the scale set, not a user's action on one instance
        (Learn: virtual-machine-scale-sets-instance-protection): only the whole-set verbs ask.
        A whole-set reimage naming a protected instance is refused (409 OperationNotAllowed),
        the less kind of what Azure may do; one naming none skips it."""
        if vm.state.protected:
            raise OperationNotAllowed(
                f"Operation 'reimage' is not allowed on Virtual Machine Scale Set VM instance "
                f"'{vm.id if self._flexible else f'{name}_{vm.id}'}' since it is protected from "
                "scale set actions.")

    def _check_idle(self, vm: _Vm) -> None:
        if vm.op_id is not None or vm.deleting:
            where = f" To retrieve status of the operation use uri: {self._op_path(vm.op_id)}." \
                if vm.op_id else ""
            raise Conflict("Another operation on this or a dependent resource is in progress."
                           f"{where} Retry the request after the operation completes.")

    def _begin_reimages(self, vms: list[_Vm], op: _Operation, all_disks: bool) -> None:
        others_ready = {vm.id: sum(1 for i, r in self._ready.items() if r and i != vm.id)
                        for vm in vms}
        for vm in vms:
            self._takeouts.append({"time": self._t, "instance": vm.id,
                                   "was_ready": self._ready.get(vm.id, False),
                                   "others_ready": others_ready[vm.id]})
            self._hist[vm.id]["reimages"].append(
                {"op": op.id, "start": self._t, "end": None, "status": "InProgress",
                 "all_disks": all_disks})
            op.pending.add(vm.id)
            vm.op_id = op.id
            self._in_flight.add(vm.id)
            running = vm.state.power == "running"
            state = vm.state
            vm.health_before = (state.health, state.health_time) if state.health else None
            done = self._take_down(vm, running)
            self._schedule(done, self._reimage_done, vm, vm.gen, op, running)
            if vm.on_reimage == "preempted":  # out of service, stopping: the less kind moment
                self._schedule(self._t + vm.timings.reimage_seconds / 4, self._preempt_at,
                               vm, vm.gen, op)
        self._settle()

    def _take_down(self, vm: _Vm, running: bool, seconds: float | None = None) -> float:
        """Start the out-of-service course of a reimage (or of Azure's own operation, or a
        manual upgrade: `seconds` instead of `reimage_seconds`) on `vm` now; returns when it
        ends (after power starting and boot, for a running instance)."""
        vm.gen += 1
        vm.was_running = running
        t, gen = vm.timings, vm.gen
        down = t.reimage_seconds if seconds is None else seconds
        if running:
            self._set(vm, provisioning="updating", power="stopping", health=None,
                      stale_health=None)
            self._at(vm, gen, self._t + down / 2, power="stopped")
            self._at(vm, gen, self._t + down, power="starting")
            return self._t + down + t.boot_seconds
        # a stopped or deallocated instance is reimaged where it stands
        self._set(vm, provisioning="updating")
        return self._t + down

    def _at(self, vm: _Vm, gen: int, at: float, **changes) -> None:
        self._schedule(at, self._transition, vm, gen, changes)

    def _transition(self, vm: _Vm, gen: int, changes: dict) -> None:
        if vm.gen == gen and vm.id in self._vms:
            self._set(vm, **changes)

    def _preempt_at(self, vm: _Vm, gen: int, op: _Operation) -> None:
        if vm.gen == gen and vm.id in self._vms:
            self._preempt(vm, op)

    def _preempt(self, vm: _Vm, op: _Operation) -> None:
        """A more recent operation of Azure's preempts `op` on `vm`; the instance lives on."""
        self._finish_part(op, vm, "Canceled", dict(_PREEMPTED))
        if vm.on_reimage == "preempted":  # only once
            vm.on_reimage = "ok"
        self._azure_course(vm, self._new_op("preempting"), vm.was_running)

    def _azure_course(self, vm: _Vm, op: _Operation, running: bool) -> float:
        """Azure's own operation `op` (one that preempted a reimage, a Reimage or Restart repair)
        takes `vm` down and up again, healthy; returns when it ends."""
        op.pending.add(vm.id)
        vm.op_id = op.id
        done = self._take_down(vm, running)
        self._schedule(done, self._azure_course_done, vm, vm.gen, op, running)
        return done

    def _azure_course_done(self, vm: _Vm, gen: int, op: _Operation, was_running: bool) -> None:
        if vm.gen != gen or vm.id not in self._vms:
            return
        if was_running:
            health_on = self.scenario.health_extension
            self._set(vm, provisioning="succeeded", power="running",
                      health="initializing" if health_on else "healthy")
            self._at(vm, gen, self._t + vm.timings.health_seconds, health="healthy")
        else:
            self._set(vm, provisioning="succeeded")
        self._finish_part(op, vm, "Succeeded")

    def _upgrade_done(self, vm: _Vm, gen: int, op: _Operation, was_running: bool) -> None:
        if vm.gen != gen or vm.id not in self._vms:
            return
        self._set(vm, latest_model_applied=True)
        self._azure_course_done(vm, gen, op, was_running)

    def _reimage_done(self, vm: _Vm, gen: int, op: _Operation, was_running: bool) -> None:
        if vm.gen != gen or vm.id not in self._vms:
            return
        self._set(vm, os_disk_time=self._t)  # a new OS disk, even when an extension then fails
        if vm.on_reimage == "fail":
            back_on = {"power": "running", "health": "unknown"} if was_running else {}
            self._set(vm, provisioning="failed", **back_on)
            message = (f"VM has reported a failure when processing extension 'customScript' "
                       f"(instance '{vm.id}'). Error code: {vm.state.error_code}.")
            self._finish_part(op, vm, "Failed", {"code": vm.state.error_code, "message": message})
            return
        if not was_running:
            self._set(vm, provisioning="succeeded")
        else:
            health_on = self.scenario.health_extension
            self._set(vm, provisioning="succeeded", power="running",
                      health="initializing" if health_on else "healthy")
            self._serve_stale_health(vm, gen)
            final = "unhealthy" if vm.on_reimage == "never-healthy" else "healthy"
            at = self._t + vm.timings.health_seconds
            if vm.on_reimage == "flap":  # healthy, unhealthy, ... then healthy for good
                for _ in range(FLAPS):
                    self._at(vm, gen, at, health="healthy")
                    self._at(vm, gen, at + vm.timings.health_seconds, health="unhealthy")
                    at += 2 * vm.timings.health_seconds
            self._at(vm, gen, at, health=final)
        self._finish_part(op, vm, "Succeeded")

    def _serve_stale_health(self, vm: _Vm, gen: int) -> None:
        """For `stale_health_seconds` after a reimage ends, vmHealth keeps the value and time it
        had before. vmHealth is an `InstanceViewStatus` whose `time` is when it was reported
        (REST spec; Learn: health-extension, "View VMHealth"), and Azure promises no fresh report
        by the time an operation ends: the less kind reading is an old `healthy` shown on."""
        if vm.health_before is not None and vm.timings.stale_health_seconds > 0:
            self._set(vm, stale_health=vm.health_before)
            self._at(vm, gen, self._t + vm.timings.stale_health_seconds, stale_health=None)

    def _apply_model(self, body: dict) -> tuple[ScaleSetSnapshot, str]:
        sku = body.get("sku") if isinstance(body, dict) else None
        capacity = sku.get("capacity") if isinstance(sku, dict) else None
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                     or capacity < 0):
            raise BadRequest(f"The value {capacity!r} of parameter 'sku.capacity' is not valid.")
        added = capacity - len(self._live()) if capacity is not None else 0
        if added > 0 and self.scenario.scale_out_error == "quota":
            raise self._quota_exceeded(added)
        op = self._new_op("update")
        if capacity is not None:
            self._scale_set_ops.add(op.id)
            self._change_capacity(capacity, op)
        if not op.pending:
            self._end_op(op)
        self._settle()
        return self._scale_set(), op.id

    def _live(self) -> list[_Vm]:
        """The instances the capacity counts: standby-pool VMs and the extra instances of an
        overprovisioned scale-out are not part of it."""
        return [vm for vm in self._sorted_vms()
                if not vm.deleting and not vm.state.standby and not vm.extra]

    def _change_capacity(self, capacity: int, op: _Operation | None) -> None:
        live = self._live()
        if capacity > len(live):
            self._create(capacity - len(live), op, by="capacity")
        elif capacity < len(live):
            # Scale-in removes the highest ids; protected instances are left alone.
            candidates = [vm for vm in live if not vm.state.protected]
            victims = candidates[max(len(candidates) - (len(live) - capacity), 0):]
            self._begin_deletes(victims, op, adjust_capacity=False, by="scale-in")
        self._set_capacity_value(capacity)

    def _create(self, count: int, op: _Operation | None, *, by: str) -> None:
        """`count` new instances, `by` a capacity change (`capacity`), someone else (`event`) or
        Azure's automatic repairs (`repair`). A capacity change fails with the scenario's
        `scale_out_error` (AllocationFailed), or on an overprovisioned set also creates 20% more
        (at least one) as extras."""
        by_capacity = by == "capacity"
        failing = by_capacity and self.scenario.scale_out_error == "AllocationFailed"
        # Overprovisioning adds 20% more, at least one (the rule the scenario key documents).
        extras = max(1, math.ceil(count * 0.2)) \
            if by_capacity and self.scenario.overprovision and not failing else 0
        timings = self.scenario.timings
        zones = self.scenario.zones
        new = []
        for _ in range(count + extras):
            reference = self._new_instance_id()
            # New instances go to the zone with the fewest live instances, as Azure balances.
            if zones:
                per_zone = {z: 0 for z in zones}
                for other in self._live():
                    if other.state.zone in per_zone:
                        per_zone[other.state.zone] += 1
                zone = min(zones, key=lambda z: (per_zone[z], zones.index(z)))
                fault_domain = (per_zone[zone]) % 5
            else:
                zone, fault_domain = None, self._next_id % 5
            spec = InstanceSpec(reference, zone, fault_domain, timings=timings)
            vm = self._add_vm(spec, created=self._t)
            self._hist[vm.id]["created_by"] = by
            self._set(vm, provisioning="creating", power="starting", health=None)
            gen = vm.gen
            if op is not None:
                op.pending.add(vm.id)
                vm.op_id = op.id
            self._schedule(self._t + timings.create_seconds, self._created, vm, gen, op, failing)
            new.append(vm)
        # Azure keeps whichever instances succeeded first, so the extras it deletes follow no
        # id order (Learn, virtual-machine-scale-sets-design-overview: it "deletes the extra VMs
        # once the requested number of VMs are successfully provisioned"): a random draw.
        for vm in self.randomness.sample(new, extras):
            vm.extra = True

    def _new_instance_id(self) -> str:
        """A new instance's reference: the next id upwards, or with `reuse_instance_ids` the lowest id freed by a deletion
        (Azure gives no order and may reuse ids: Learn, virtual-machine-scale-sets-instance-ids)."""
        if self.scenario.reuse_instance_ids and self._freed:
            reused = min(self._freed, key=lambda i: _id_key(self._suffix(i)))
            self._freed.discard(reused)
            return reused
        return str(self._next_id)

    def _created(self, vm: _Vm, gen: int, op: _Operation | None, failing: bool) -> None:
        if failing and vm.gen == gen and vm.id in self._vms:
            # Learn, troubleshoot allocation-failure: the operation fails with AllocationFailed
            # and the instances it started stay, provisioning failed, until deleted.
            self._set(vm, provisioning="failed", power="deallocated", error_code="AllocationFailed")
            self._finish_part(op, vm, "Failed", {"code": "AllocationFailed", "message": _ALLOCATION_FAILED})
            return
        if op is not None and vm.id in op.pending:
            op.pending.discard(vm.id)
            if vm.op_id == op.id:
                vm.op_id = None
            if not op.pending:
                self._end_op(op)
        if vm.gen != gen or vm.id not in self._vms:
            return
        health_on = self.scenario.health_extension
        self._set(vm, provisioning="succeeded", power="running",
                  health="initializing" if health_on else "healthy")
        self._at(vm, gen, self._t + vm.timings.health_seconds, health="healthy")
        if vm.extra:
            self._schedule(self._t + vm.timings.overprovision_delete_seconds, self._delete_extra,
                           vm, gen)

    def _delete_extra(self, vm: _Vm, gen: int) -> None:
        if vm.gen == gen and vm.id in self._vms and not vm.deleting:
            self._begin_deletes([vm], None, by="overprovision")

    def _quota_exceeded(self, added: int) -> OperationNotAllowed:
        """A scale-out past the regional cores quota, refused at once: 409 OperationNotAllowed
        in the words of nforgeio/neonKUBE#1671 (Learn: azure-resource-manager error-resource-quota)."""
        usage = _VM_CORES * len(self._live())
        more = _VM_CORES * added
        return OperationNotAllowed(
            "Operation could not be completed as it results in exceeding approved Total Regional "
            f"Cores quota. Additional details - Deployment Model: Resource Manager, Location: "
            f"{self.scenario.location}, Current Limit: {usage}, Current Usage: {usage}, Additional "
            f"Required: {more}, (Minimum) New Limit Required: {usage + more}. Submit a request for "
            "Quota increase at https://aka.ms/ProdportalCRP by specifying parameters listed in the "
            "'Details' section for deployment to succeed.")

    def _begin_deletes(self, vms: list[_Vm], op: _Operation | None, *, by: str,
                       adjust_capacity: bool = True) -> None:
        """Delete `vms`; `by` says who, for the history: `request` (a client's delete call),
        `scale-in`, `event` (someone else), `overprovision` (Azure, its extra instances)."""
        for vm in vms:
            if vm.deleting:
                continue
            self._hist[vm.id]["deleted_by"] = by
            if vm.op_id is not None and vm.op_id in self._ops:
                # A delete preempts whatever ran on the instance, as Azure does.
                other = self._ops[vm.op_id]
                if vm.id in other.pending:
                    self._finish_part(other, vm, "Canceled", dict(_PREEMPTED))
            vm.gen += 1
            vm.deleting = True
            self._set(vm, provisioning="deleting", health=None, stale_health=None,
                      power="stopping" if vm.state.power == "running" else vm.state.power)
            if op is not None:
                op.pending.add(vm.id)
                vm.op_id = op.id
            self._schedule(self._t + vm.timings.delete_seconds, self._deleted, vm, op)
        if adjust_capacity:
            self._set_capacity_value(len(self._live()))
        if op is not None and not op.pending:
            self._end_op(op)
        self._settle()

    def _deleted(self, vm: _Vm, op: _Operation | None) -> None:
        self._vms.pop(vm.id, None)
        self._order = None
        self._hist[vm.id]["deleted"] = self._t
        self._dirty.add(vm.id)
        self._freed.add(vm.id)
        if op is not None:
            op.pending.discard(vm.id)
            if not op.pending and op.end is None:
                self._end_op(op)

    def _run_event(self, event: Event) -> None:
        record = {"time": self._t, **{k: v for k, v in event.__dict__.items() if v is not None}}
        self._event_log.append(record)
        if event.health is not None:
            vm = self._vms.get(self._vm_key(event.instance or ""))
            if vm is None or vm.deleting:
                record["skipped"] = "no such instance"
                return
            previous = vm.state.health
            self._set(vm, health=event.health)
            if event.for_seconds is not None:
                self._schedule(self._t + event.for_seconds, self._restore_health, vm, event.health,
                               previous)
        elif event.delete_instance is not None:
            vm = self._vms.get(self._vm_key(event.delete_instance))
            if vm is None or vm.deleting:  # a delete already under way: the second adds nothing
                record["skipped"] = "no such instance" if vm is None else "already deleting"
                return
            self._begin_deletes([vm], None, by="event")
        elif event.add_instances:
            # Instances created by someone else are busy until created, like any others.
            self._create(event.add_instances, self._new_op("create"), by="event")
            self._set_capacity_value(len(self._live()))
        elif event.model_update:
            for vm in self._live():
                if vm.state.latest_model_applied:
                    self._set(vm, latest_model_applied=False)
        elif event.preempt_operation is not None:
            vm = self._vms.get(self._vm_key(event.preempt_operation))
            op = self._ops.get(vm.op_id) if vm is not None and vm.op_id else None
            if op is None or op.kind not in _REIMAGE_KINDS:
                record["skipped"] = "no reimage in flight"
                return
            self._preempt(vm, op)

    def _restore_health(self, vm: _Vm, expected: str, previous: str | None) -> None:
        # Only undo our own change: a reimage in between owns the health state now.
        if vm.id in self._vms and vm.state.health == expected and not vm.deleting:
            self._set(vm, health=previous)

    # --- automatic repairs ------------------------------------------------------------------

    def _repair_policy(self):
        policy = self.scenario.automatic_repairs
        return policy if policy is not None and policy.enabled else None

    def _repairs_suspended_now(self) -> bool:
        return bool(self._repairs_suspended) and self._repairs_suspended[-1][1] is None

    def _repairs_state(self) -> str | None:
        """The set's instance view `orchestrationServices` AutomaticRepairs `serviceState`."""
        if self.scenario.automatic_repairs is None:
            return None
        if self._repair_policy() is None:
            return "NotRunning"
        return "Suspended" if self._repairs_suspended_now() else "Running"

    def _repair_due(self, vm: _Vm) -> float | None:
        """When `vm` is to be repaired if it stays as it is, or None if it is not a candidate:
        protected instances are never repaired (Learn), busy or stopped ones not now."""
        policy = self._repair_policy()
        s = vm.state
        if (policy is None or vm.deleting or vm.op_id is not None or s.protected or s.standby
                or s.provisioning != "succeeded" or s.power != "running" or s.health != "unhealthy"):
            return None
        # The grace period starts when the last state change completed (provisioning succeeded).
        return max(s.health_time, s.provisioning_time) + policy.grace_minutes * 60

    def _repair_scan(self) -> None:
        """Repair every instance that is due, in batches of at most 5% of the set (Learn)."""
        if self._repair_policy() is None or self._repairs_suspended_now():
            return
        limit = max(1, len(self._live()) // 20)
        running = sum(1 for r in self._repairs if self._ops[r["op"]].end is None)
        for vm in self._sorted_vms():
            if running >= limit:
                return
            due = self._repair_due(vm)
            if due is not None and due <= self._t:
                self._begin_repair(vm)
                running += 1

    def _begin_repair(self, vm: _Vm) -> None:
        action = self._repair_policy().action
        op = self._new_op("repair")
        repair = {"start": self._t, "instance": vm.id, "action": action, "op": op.id}
        if action == "Replace":  # delete it and create a new one in its place (capacity unchanged)
            before = set(self._vms)
            self._begin_deletes([vm], None, adjust_capacity=False, by="repair")
            self._create(1, op, by="repair")
            repair["replacement"] = min(set(self._vms) - before, key=_id_key)
            end = self._t + self.scenario.timings.create_seconds
        else:
            end = self._azure_course(vm, op, running=True)
        self._repairs.append(repair)
        self._schedule(end, self._repair_scan)  # the next batch

    # --- readiness bookkeeping ----------------------------------------------------------------

    def _is_ready(self, vm: _Vm) -> bool:
        state = vm.state
        return (state.provisioning == "succeeded" and state.power == "running"
                and (not self.scenario.health_extension or state.health == "healthy"))

    def _settle(self) -> None:
        """Record readiness changes of the instances touched at this instant."""
        for instance_id in self._dirty:
            vm = self._vms.get(instance_id)
            was = self._ready.get(instance_id)
            intervals = self._hist[instance_id]["not_ready"]
            if vm is None:  # removed
                if was is False:
                    self._not_ready_count -= 1
                    intervals[-1][1] = self._t
                self._ready.pop(instance_id, None)
                continue
            ready = self._is_ready(vm)
            if ready == was:
                continue
            if not ready:
                self._not_ready_count += 1
                intervals.append([self._t, None])
            elif was is False:
                self._not_ready_count -= 1
                intervals[-1][1] = self._t
            self._ready[instance_id] = ready
        self._dirty.clear()
        self._max_not_ready = max(self._max_not_ready, self._not_ready_count)
        self._max_in_flight = max(self._max_in_flight, len(self._in_flight))

    # --- lookups and names --------------------------------------------------------------------

    def _check_set(self, rg: str, name: str) -> None:
        s = self.scenario
        if rg.lower() != s.resource_group.lower() or name.lower() != s.scale_set_name.lower():
            raise ResourceNotFound(
                f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource "
                f"group '{rg}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix")

    def _uniform_only(self, rg: str, name: str, operation: str) -> None:
        """The scale-set VM APIs (and the set's instance view) refuse a Flexible set, as Azure
        does: 400 "Operation 'VirtualMachineScaleSets.virtualMachines.GET' is not allowed on
        Virtual Machine Scale Set '<name>'."."""
        self._check_set(rg, name)
        if self._flexible:
            raise BadRequest(f"Operation 'VirtualMachineScaleSets.{operation}' is not allowed on "
                             f"Virtual Machine Scale Set '{self.scenario.scale_set_name}'.",
                             code="OperationNotAllowed")

    def _check_group(self, rg: str) -> None:
        if rg.lower() != self.scenario.resource_group.lower():
            raise NotFound(f"Resource group '{rg}' could not be found.", code="ResourceGroupNotFound")

    def _find_flexible_vm(self, rg: str, vm_name: str) -> _Vm:
        self._check_group(rg)
        vm = self._vms.get(vm_name) if self._flexible else None
        if vm is None:
            raise ResourceNotFound(
                f"The Resource 'Microsoft.Compute/virtualMachines/{vm_name}' under resource group "
                f"'{rg}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix")
        return vm

    def _find_vm(self, rg: str, name: str, instance_id: str) -> _Vm:
        self._check_set(rg, name)
        vm = self._vms.get(str(instance_id))
        if vm is None:
            raise NotFound(_ENTITY_NOT_FOUND)
        return vm

    def _vm_key(self, instance: str) -> str:
        """A scenario's instance reference as the id the set uses: itself for Uniform, the VM
        name for Flexible (a full name is taken as it is)."""
        prefix = f"{self.scenario.scale_set_name}_"
        if not self._flexible or instance.startswith(prefix):
            return instance
        return self._names.get(instance, prefix + instance)

    def _new_name(self, reference: str) -> str:
        """The id of a new instance: its reference on a Uniform set; on a Flexible set the VM
        name `<scale set>_<suffix>`, the suffix being the reference (`flexible_vm_names`
        "index") or 8 hex digits from the seeded randomness ("guid", as Azure names them:
        Learn, virtual-machine-scale-sets-instance-ids)."""
        prefix = f"{self.scenario.scale_set_name}_"
        if not self._flexible or reference.startswith(prefix):
            return reference
        if self.scenario.flexible_vm_names == "index":
            return prefix + reference
        taken = set(self._names.values())
        while (name := prefix + self.randomness.hex8()) in taken:
            pass
        return name

    def _suffix(self, instance_id: str) -> str:
        prefix = f"{self.scenario.scale_set_name}_"
        return instance_id[len(prefix):] if self._flexible and instance_id.startswith(prefix) \
            else instance_id

    def _computer_name(self, instance_id: str) -> str:
        suffix = self._suffix(instance_id)
        suffix = f"{int(suffix):06x}" if suffix.isdigit() else suffix
        return f"{self.scenario.scale_set_name[:9]}{suffix}"

    def _set_id(self) -> str:
        s = self.scenario
        return routes.VMSS.format(subscription=s.subscription_id, rg=s.resource_group,
                                  name=s.scale_set_name)

    def _vm_resource_id(self, vm_name: str) -> str:
        s = self.scenario
        return routes.SINGLE_VM.format(subscription=s.subscription_id, rg=s.resource_group,
                                       vm_name=vm_name)

    def _op_path(self, op_id: str) -> str:
        s = self.scenario
        return routes.OPERATION.format(subscription=s.subscription_id, location=s.location,
                                       op_id=op_id)

    def _sorted_vms(self) -> list[_Vm]:
        return [self._vms[i] for i in self._list_order()]

    def _list_order(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._vms, key=_id_key)
        return self._order

    def _scale_set(self) -> ScaleSetSnapshot:
        return ScaleSetSnapshot(capacity=self.capacity, updating=bool(self._scale_set_ops),
                                unique_id=self._unique_id, time_created=self.start,
                                instance_count=len(self._vms), repairs=self._repairs_state())

    def __repr__(self) -> str:
        return (f"Backend({self.scenario.resource_group}/{self.scenario.scale_set_name}, "
                f"{len(self._vms)} instances)")
