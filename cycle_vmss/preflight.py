"""Preflight: read the scale set and settle the plan, changing nothing.

`preflight(...)` reads the set, its rolling-upgrade status and its instances, checks the settings
against them, waits (reading only) while the health of in-scope instances is still initializing
or a read is throttled, and returns the plan, the budget and the first run state as one frozen
`Preflight`; the engine then runs the loop from it. Every refusal is one `PreflightStop` with
the message for the report.
Preflight announces the plan and the skipped instances through `emit`, and waits through `wait`,
which the engine gives it (so the heartbeat and cancellation work as in the rest of the run).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, TypeVar

from .budget import resolve_budget
from .clock import Clock
from .compute import (
    AuthenticationFailed, AzureError, ComputePort, Forbidden, Instance, NotFound, ScaleSet, Throttled,
)
from .decide import OUT_OF_SCOPE, Plan, RunState, Status, Track, id_key, plan_order, short, skip_reason
from .health import HealthSourceRefused, Readiness, describe, readiness, resolve_source
from .report import out_of_scope_line
from .settings import Budget, HealthSource, Settings

Emit = Callable[..., None]  # (kind, instance_id=None, message="", data=None): one run event
# (why, ready instances[, seconds]): sleep one poll, or that long; False when cancelled
Wait = Callable[..., bool]
T = TypeVar("T")


class PreflightStop(Exception):
    """The run ends in preflight, with nothing changed: `result` is "refused" or "cancelled"."""

    def __init__(self, result: str, message: str, scale_set: ScaleSet | None = None):
        super().__init__(message)
        self.result, self.message, self.scale_set = result, message, scale_set


@dataclass(frozen=True)
class Preflight:
    scale_set: ScaleSet
    instances: tuple[Instance, ...]  # the list the plan was made from
    plan: Plan
    run: RunState  # every instance tracked: pending, or skipped with its reason
    report: Mapping[str, object]  # the report's `plan`
    ready: int  # ready instances in that list (0 when the initial health check was skipped)
    # The AutomaticRepairs serviceState when the set's automatic repairs are enabled ("Running",
    # "Suspended", ...; "" when Azure would not say); None when they are not enabled.
    repairs: str | None = None


def preflight(settings: Settings, port: ComputePort, clock: Clock, emit: Emit, wait: Wait) -> Preflight:
    """Read the set and settle the plan; raises `PreflightStop` instead of changing anything."""
    s = settings
    where = f"scale set {s.scale_set_name} in resource group {s.resource_group}"
    deadline = clock.now() + s.timeout_minutes * 60.0

    def patient(read: Callable[[], T]) -> T:
        return _patient(read, clock, wait, deadline)

    ss = _read_scale_set(port, where, patient)
    try:
        ss = _await_set_idle(s, port, ss, clock, wait, deadline, where, patient)
        source = _check(s, port, ss, where, patient)
        repairs = _repairs_state(s, port, ss, where, patient)
        instances = _list(port, ss, where, patient)
        ids = {i.id for i in instances}
        scope, missing = _scope(s.instance_ids, instances)
        if missing:
            raise PreflightStop("refused", f"instance-ids: {', '.join(missing)} "
                                           f"{'is' if len(missing) == 1 else 'are'} not in {where} "
                                           f"(its instances: {short(sorted(ids, key=id_key))})")
        since = (s.skip_reimaged_since.resolve(clock.now())
                 if s.skip_reimaged_since is not None else None)
        plan = Plan(source, s.timeout_minutes * 60.0, float(s.min_ready_seconds),
                    s.ignore_availability, reimaged_since=since)
        _check_model(s, ss, scope, instances, where)
        instances = _await_operations(scope, port, ss, clock, wait, instances, plan, where,
                                      patient)
        ready = 0
        if not s.ignore_initial_health:
            instances, ready = _initial_health_gate(scope, port, ss, clock, wait, instances, plan,
                                                    where, patient)
    except PreflightStop as stop:
        raise PreflightStop(stop.result, stop.message, ss) from None
    run = _first_state(s, scope, instances, plan.reimaged_since)
    pending = {t.id for t in run.tracks.values() if t.status is Status.PENDING}
    if s.stop_after is not None:
        plan = replace(plan, stop_after=resolve_stop_after(s.stop_after, len(pending)))
    plan = replace(plan, max_failed=resolve_max_failed(s.max_failed, len(pending)),
                   post_ready_command=bool(s.post_ready_command))
    budget = run.budget
    report = {
        "n0": budget.n0, "maxUnavailable": budget.unavailable, "maxSurge": budget.surge,
        "automaticSurge": budget.automatic_surge, "rMin": budget.r_min,
        "maxInFlight": budget.max_in_flight,
        "order": plan_order(instances, pending, source, budget.max_in_flight),
        "surgeTo": ss.capacity + budget.surge if budget.surge and pending else None,
    }
    emit("plan", data=dict(report))
    outside = [t.id for t in run.tracks.values() if t.reason == OUT_OF_SCOPE]
    for t in run.tracks.values():
        if t.status is Status.SKIPPED and t.reason != OUT_OF_SCOPE:
            emit("skipped", t.id, t.reason or "")
    if outside:  # one line for them all, not one per instance
        emit("skipped", None, out_of_scope_line(outside) or "", data={"ids": outside})
    return Preflight(ss, instances, plan, run, report, ready, repairs)


def _patient(read: Callable[[], T], clock: Clock, wait: Wait, deadline: float) -> T:
    """`read()`, asked again after a 429 once its Retry-After has passed (waits cut to
    `deadline`; past it the 429 is raised). The waits are `wait`'s, so a cancel still holds."""
    while True:
        try:
            return read()
        except Throttled as err:
            left = deadline - clock.now()
            if left <= 0:
                raise
            seconds = min(err.retry_after, left)
            if not wait(f"Azure throttled a read (Retry-After {err.retry_after:.0f} s); "
                        f"asking again in {seconds:.0f} s", 0, seconds):
                raise PreflightStop("cancelled", "cancelled during preflight; nothing was changed") from None


def _read_scale_set(port: ComputePort, where: str, patient: Callable) -> ScaleSet:
    try:
        return patient(port.get_scale_set)
    except NotFound as err:
        if err.code == "SubscriptionNotFound":  # not the set: the subscription itself
            raise PreflightStop("refused", f"subscription {port.subscription_id} was not found, "
                                           f"or this identity has no role in it (Azure said: {err}); "
                                           f"check the subscription-id setting or "
                                           f"AZURE_SUBSCRIPTION_ID, and the identity's role "
                                           f"assignments") from None
        raise PreflightStop("refused", f"{where} was not found (Azure said: {err})") from None
    except (Forbidden, AuthenticationFailed) as err:
        raise PreflightStop("refused", f"{where}: cannot read it ({err})") from None
    except AzureError as err:
        raise PreflightStop("refused", f"{where}: {err}") from None


def _await_set_idle(s: Settings, port: ComputePort, ss: ScaleSet, clock: Clock, wait: Wait,
                    deadline: float, where: str, patient: Callable) -> ScaleSet:
    """Wait (reading only, up to timeout-minutes) while the set itself is Updating: a change to
    its model or capacity is still being applied, and its instances may yet change under it."""
    while ss.provisioning == "updating":
        if clock.now() >= deadline:
            raise PreflightStop("refused", f"{where} is still Updating (an operation on the whole "
                                           f"set runs) after {s.timeout_minutes} minutes; run "
                                           f"again once it has finished; nothing was changed")
        if not wait(f"{where} is Updating (an operation on the whole set runs); waiting for it "
                    f"to end before the plan", 0):
            raise PreflightStop("cancelled", "cancelled during preflight; nothing was changed")
        ss = _read_scale_set(port, where, patient)
    return ss


def _repairs_state(s: Settings, port: ComputePort, ss: ScaleSet, where: str,
                   patient: Callable) -> str | None:
    """The AutomaticRepairs serviceState of a set whose automatic repairs are enabled (None when
    they are not), from the set's instance view; "" when unknown: Azure serves no set-level
    instance view for a Flexible set. A run that is to suspend them and cannot read it is
    refused, as for its other reads."""
    if not ss.automatic_repairs:
        return None
    if ss.orchestration_mode == "Flexible":
        return ""
    try:
        return patient(port.automatic_repairs_state) or ""
    except AzureError as err:
        if not s.suspend_automatic_repairs:
            return ""
        raise PreflightStop("refused", f"{where}: cannot read whether its automatic repairs run "
                                       f"({err}); set {s.setting('suspend_automatic_repairs', 'false')} "
                                       f"to run without suspending them") from None


def _check(s: Settings, port: ComputePort, ss: ScaleSet, where: str, patient: Callable) -> HealthSource:
    """The set can be rolled with these settings now; returns the resolved health source."""
    if ss.orchestration_mode not in ("Uniform", "Flexible"):
        raise PreflightStop("refused", f"{where} uses {ss.orchestration_mode} orchestration; "
                                       f"cycle-vmss reimages Uniform and Flexible scale sets")
    if ss.orchestration_mode == "Flexible" and s.reimage_all:
        # A VM's reimage has no all-disks form (the scale-set VMs' reimageall does not exist
        # for Flexible sets): refused before anything is touched.
        raise PreflightStop("refused", f"reimage-all: true is not possible on {where}: it uses "
                                       f"Flexible orchestration, whose instances are VMs reimaged "
                                       f"one by one with the single-VM reimage, which has no "
                                       f"all-disks form; set reimage-all: false to reimage the OS "
                                       f"disks; nothing was changed")
    upgrades = [("rolling upgrade status", port.rolling_upgrade_in_progress, "a rolling upgrade")]
    if ss.automatic_os_upgrade:  # these show in the OS upgrade history, not in the one above
        upgrades.append(("OS upgrade history", port.os_upgrade_in_progress,
                         "an automatic OS image upgrade"))
    for record, in_progress, what in upgrades:
        try:
            upgrading = patient(in_progress)
        except AzureError as err:
            raise PreflightStop("refused", f"{where}: cannot read its {record} ({err})") from None
        if upgrading:
            raise PreflightStop("refused", f"{where} has {what} in progress; wait for it to "
                                           f"finish (or cancel it) and run again")
    try:
        return resolve_source(s.health_source, ss)
    except HealthSourceRefused as err:
        raise PreflightStop("refused", str(err)) from None


def _list(port: ComputePort, ss: ScaleSet, where: str, patient: Callable) -> tuple[Instance, ...]:
    """The set's instances, each protected one marked so. Azure does not block a user's
    reimage of a protected instance, so the run must skip it itself; a Flexible set's VM list
    shows no protection policy, the scale set's VM list does."""
    try:
        instances = patient(port.list_instances)
        if ss.orchestration_mode == "Flexible":
            protected = patient(port.protected_instances)
            instances = tuple(replace(i, protected=True) if i.id in protected else i
                              for i in instances)
        return instances
    except AzureError as err:
        raise PreflightStop("refused", f"{where}: cannot list its instances ({err})") from None


def _scope(wanted: tuple[str, ...] | None, instances: tuple[Instance, ...]) -> tuple[frozenset[str] | None, list[str]]:
    """The ids in scope (None: all), and what matched no instance. Each of instance-ids may be
    an instance's id or the VM name shown beside it: on a Uniform set the results table shows
    both (`1`, `vmss-web_1`), and a user copies either."""
    if wanted is None:
        return None, []
    by_name = {i.name: i.id for i in instances if i.name}
    ids = {i.id for i in instances}
    found = [w if w in ids else by_name.get(w) for w in wanted]
    return frozenset(f for f in found if f is not None), [w for w, f in zip(wanted, found) if f is None]


def _initial_health_gate(scope: frozenset[str] | None, port: ComputePort, ss: ScaleSet,
                         clock: Clock, wait: Wait, instances: tuple[Instance, ...], plan: Plan,
                         where: str, patient: Callable) -> tuple[tuple[Instance, ...], int]:
    """Every in-scope instance ready. Health `initializing` means its probe has not decided
    yet: wait for it (up to timeout-minutes), reading only. Returns the list that passed and
    its ready count."""
    deadline = clock.now() + plan.timeout_seconds
    source = plan.health_source
    while True:
        checked = [i for i in instances if (scope is None or i.id in scope)
                   and skip_reason(i, plan.reimaged_since) is None]
        verdicts = {i.id: readiness(i, source) for i in checked}
        ready = sum(1 for i in instances if readiness(i, source) is Readiness.READY)
        unready = [i for i in checked if verdicts[i.id] is not Readiness.READY]
        if not unready:
            return instances, ready
        waiting = all(verdicts[i.id] is Readiness.WAIT for i in unready)
        if not waiting or clock.now() >= deadline:
            named = "; ".join(f"{i.id} ({describe(i)})" for i in
                              sorted(unready, key=lambda i: id_key(i.id)))
            raise PreflightStop("refused", f"{len(unready)} instance"
                                           f"{'s' if len(unready) != 1 else ''} of {where} "
                                           f"{'is' if len(unready) == 1 else 'are'} not ready: "
                                           f"{named}; fix them, or pass ignore-initial-health to "
                                           f"reimage them first")
        if not wait(f"health of {short([i.id for i in unready])} is initializing; waiting "
                    f"before the initial health check", ready):
            raise PreflightStop("cancelled", "cancelled during preflight; nothing was changed")
        instances = _list(port, ss, where, patient)


def _await_operations(scope: frozenset[str] | None, port: ComputePort, ss: ScaleSet,
                      clock: Clock, wait: Wait, instances: tuple[Instance, ...], plan: Plan,
                      where: str, patient: Callable) -> tuple[Instance, ...]:
    """Wait (reading only, up to timeout-minutes) while an operation still runs on an in-scope
    instance: the reimage a cancelled run left behind ends on its own, and only then do its
    states and its OS disk's time say whether it is done. After the timeout the run goes on;
    the rules never ask such an instance to reimage while the operation runs."""
    deadline = clock.now() + plan.timeout_seconds
    while True:
        busy = [i.id for i in instances if (scope is None or i.id in scope)
                and i.busy]
        if not busy or clock.now() >= deadline:
            return instances
        if not wait(f"an operation still runs on {short(sorted(busy, key=id_key))} "
                    f"(provisioning updating); waiting for it to end before the plan", 0):
            raise PreflightStop("cancelled", "cancelled during preflight; nothing was changed")
        instances = _list(port, ss, where, patient)


def _check_model(s: Settings, ss: ScaleSet, scope: frozenset[str] | None,
                 instances: tuple[Instance, ...], where: str) -> None:
    """apply-latest-model needs Azure's per-instance latest-model signal."""
    if not s.apply_latest_model:
        return
    unknown = [i.id for i in instances if (scope is None or i.id in scope)
               and i.latest_model_applied is None]
    if unknown:
        why = (" (a Flexible set's instances are VM resources, which carry no latestModelApplied "
               "flag)" if ss.orchestration_mode == "Flexible" else "")
        raise PreflightStop("refused", f"apply-latest-model: true is not possible on {where}: "
                                       f"Azure does not say whether its instances "
                                       f"{short(sorted(unknown, key=id_key))} are on the latest "
                                       f"model{why}; set apply-latest-model: false; nothing was "
                                       f"changed")


def resolve_max_failed(max_failed: Budget, to_reimage: int) -> int:
    """max-failed as a count: N% of the instances to reimage rounds down (a tolerance)."""
    return max_failed.value * to_reimage // 100 if max_failed.percent else max_failed.value


def resolve_stop_after(stop_after: Budget, to_reimage: int) -> int:
    """stop-after as a count: N, or N% of the instances to reimage, rounded up."""
    if stop_after.percent:
        return max(1, -(-stop_after.value * to_reimage // 100))
    return stop_after.value


def _first_state(s: Settings, scope: frozenset[str] | None, instances: tuple[Instance, ...],
                 reimaged_since: float | None) -> RunState:
    """A track for every instance of the set (pending, or skipped with its reason) and the
    budget resolved against N0, the instances in service now."""
    tracks: dict[str, Track] = {}
    for inst in sorted(instances, key=lambda i: id_key(i.id)):
        if scope is not None and inst.id not in scope:
            reason: str | None = OUT_OF_SCOPE
        elif inst.busy:  # judged once its operation ends (`decide`)
            reason = None
        else:
            reason = skip_reason(inst, reimaged_since)
        tracks[inst.id] = Track(inst.id, Status.SKIPPED if reason else Status.PENDING, reason,
                                in_n0=inst.in_service_candidate, last=inst)
    n0 = sum(1 for i in instances if i.in_service_candidate)
    budget = resolve_budget(n0, s.max_unavailable, s.max_surge,
                            ignore_availability=s.ignore_availability)
    return RunState(tracks, budget)
