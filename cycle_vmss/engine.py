"""The rolling reimage: preflight (read only) -> plan -> surge -> rolling passes -> restore -> report,
with the set's running automatic repairs suspended from before the first write to the end.

`preflight.py` reads the set and settles the plan; this module runs the loop from it. Each
rolling pass observes (the statuses of the operations the pure `to_ask` names, then one paged
list of the set, which shows how a reimage stands), asks the pure `decide` what the rules
allow, acts on the answer and sleeps until the next poll. A pass whose list could only answer
"wait" (the pure `needs_list`) stops at the statuses; an operation whose SDK poller calls back
ends the sleep early. A throttled request (429) is waited out here, between passes, for its
Retry-After but never past the run's next deadline; writes and lists are paced by what Azure
says is left of its write and read budgets. The clock is injected, so the same engine runs against Azure in real time
and against the simulator's backend in virtual time.
`run_rollout` never raises for Azure or preflight problems: the report's `result` says what
happened (`exit_code` maps it to the exit codes).
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from typing import Callable, TypeVar

from .clock import Clock
from .compute import (
    AuthenticationFailed, AzureError, ComputePort, Conflict, Forbidden, Instance, Locked, NotFound,
    Observation, Operation, OperationState, OperationStatus, ScaleSet, Throttled,
)
from .decide import (
    LOCKED, OUT_OF_SCOPE, REIMAGED_SINCE, Decision, Failure, Outcome, Plan, RunState, Status, decide,
    id_key, needs_list, record_gone, record_locked, record_post_started, record_refused,
    record_start_failed, record_started, short, to_ask,
)
from .events import Event, Listener, NullListener
from .gate import Cancelled as GateCancelled
from .gate import Gate, HttpGate, ask_until_cancelled
from .health import states
from .hooks import POST, PRE, Command, CommandOperation, CommandRunner, hook_environment
from .preflight import PreflightStop, preflight
from .report import InstanceRow, Report, exit_code
from .settings import Settings
from .then_reimage import ThenReimage, upgrade_then_reimage

HEARTBEAT_SECONDS = 60.0
EARLY_GAP = 0.5  # of the poll interval: the least time between a list and one a finish brings forward
SLEEP_SLICE = 1.0  # a cancel is noticed within this much clock time even on a clock that ignores it
# Write pacing, from what the answer to the last write said is left of Azure's write budgets
# (x-ms-ratelimit-remaining-resource): below WRITE_RESERVE the next write waits for one token to
# come back at the slowest documented refill (4 a minute: Microsoft Learn, Compute throttling
# limits), and with none left for a whole refill minute ("users can successfully invoke API
# calls 1 min after getting throttled").
WRITE_RESERVE = 2
WRITE_REFILL_SECONDS = 15.0
WRITE_EMPTY_SECONDS = 60.0
# List pacing, from what the answer to a list's last page said is left of Azure's read budgets:
# a list takes a token a page, so with fewer left than its pages the next list waits for the
# missing ones at the slowest documented refill of a list's budget, which comes whole at each
# minute (10 a minute: a scale set's High Cost Get; Microsoft Learn, Compute throttling limits).
READ_REFILL_PER_MINUTE = 10
REPAIRS_ACTION = "Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"

__all__ = ["run_rollout", "exit_code"]


T = TypeVar("T")


class _Stop(Exception):
    """Ends the run early with a result and a one-line message."""

    def __init__(self, result: str, message: str, failure: Failure | None = None):
        super().__init__(message)
        self.result, self.message, self.failure = result, message, failure


def run_rollout(settings: Settings, port: ComputePort, *, clock: Clock,
                listener: Listener = NullListener(),
                cancelled: threading.Event | None = None, gate: Gate | None = None,
                commands: CommandRunner = CommandOperation) -> Report:
    """Run one rollout (or dry run) of `settings` through `port`; returns the run report.
    `gate` answers for gate-url (default: a GET of it); `commands` runs pre-reimage-command
    and post-ready-command (default: the shell)."""
    if gate is None and settings.gate_url:
        gate = HttpGate(settings.gate_url)
    return _Rollout(settings, port, clock, listener, cancelled or threading.Event(), gate,
                    commands).run()


class _Rollout:
    def __init__(self, settings: Settings, port: ComputePort, clock: Clock, listener: Listener,
                 cancelled: threading.Event, gate: Gate | None = None,
                 commands: CommandRunner = CommandOperation) -> None:
        self.s = settings
        self.port = port
        self.gate = gate
        self.run_command = commands
        self.gate_said: str | None = ""  # its last answer ("": not asked yet), logged on change
        self.clock = clock
        self.listener = listener
        self.cancelled = cancelled
        self.start = clock.now()
        self.scale_set: ScaleSet | None = None
        self.first: dict[str, Instance] = {}  # the set as preflight saw it
        self.run_state: RunState | None = None
        self.plan: Plan | None = None
        self.plan_report: dict | None = None
        self.surge: set[tuple] = set()  # the surge's own instances, as (id, timeCreated)
        self.ops: dict[str, Operation] = {}
        self.capacity = {"before": None, "during": None, "after": None}
        self.warnings: list[str] = []
        self.wrote = False  # a write call was accepted: from now on nothing is "unchanged"
        self.last_seen: dict[str, tuple] = {}  # (provisioning, power, health) per instance id
        self.progress = threading.Event()  # set when an operation of ours finishes
        self.last_waiting = ""
        self.last_heartbeat = self.start
        self.last_ready = 0
        self.writes_not_before = self.start  # pacing, or a throttled write's Retry-After
        self.lists_not_before = self.start  # list pacing
        self.throttled_polls: set[str] = set()  # in-flight instances whose status poll waits
        self.refusals_said: dict[str, str | None] = {}  # the last refusal said, per instance
        # The set's AutomaticRepairs state as preflight read it (None: not enabled), and what
        # this run did to them: only what it suspended is ever resumed.
        self.repairs: str | None = None
        self.repairs_suspended = False
        self.repairs_resumed = False

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> Report:
        result, message, failure = "succeeded", "", None
        try:
            result, message = self._execute()
        except _Stop as stop:
            result, message, failure = stop.result, stop.message, stop.failure
        except AzureError as err:  # a call outside the rules' own handling
            result = "failed" if self.wrote else "refused"
            message = f"scale set {self.s.scale_set_name} in resource group {self.s.resource_group}: {err}"
        finally:
            for command in self._commands():  # the run is over: so is what it started here
                command.stop()
            self._log_command_output()
        if self.repairs_suspended:
            self._resume_repairs()
        if result in ("failed", "cancelled") and self.capacity["after"] != self.capacity["before"]:
            surge_ids = sorted(self.run_state.surge_ids, key=id_key) if self.run_state else []
            what = (f"delete the surge instances {', '.join(surge_ids)}" if surge_ids
                    else f"set the capacity back to {self.capacity['before']}")
            self.warnings.append(
                f"capacity stays at {self.capacity['after']} (raised from {self.capacity['before']} "
                f"for the surge) because the run {result}; {what} when you are done")
        self._phase("results")
        report = self._report(result, message, failure)
        self._emit("finished", message=message, data=report.as_dict())
        return report

    def _execute(self) -> tuple[str, str]:
        """The run from preflight to restore: its result and its one line."""
        self._phase("preflight")
        instances = self._preflight()
        if not self._pending():
            if not any(t.reason == REIMAGED_SINCE for t in self.run_state.tracks.values()):
                # issue 6: bad input, like any other refusal (exit 2)
                raise _Stop("refused", f"scale set {self.s.scale_set_name} in resource group "
                                       f"{self.s.resource_group} has nothing to reimage: "
                                       f"{self._skip_summary() or 'it has no instances'}; "
                                       f"nothing was changed")
            # A continuing run whose instances were all reimaged meanwhile (a cancelled run's
            # reimages go on in Azure): what it was asked to do is done, so it succeeds.
            return ("dry-run" if self.s.dry_run else "succeeded"), (
                f"scale set {self.s.scale_set_name} has nothing left to reimage: skipped "
                f"{self._skip_summary()}; nothing was changed")
        self._warn_old_models()
        self._warn_repairs()
        self._warn_max_failed()
        if self.s.dry_run:
            return "dry-run", self._dry_run_message()
        self._suspend_repairs()
        surged = self._surge()
        self._phase("rolling")
        # Without a surge or a suspend of repairs (each waits for its operation), nothing
        # changed since preflight's list: the first pass decides on it.
        fresh = not surged and not self.repairs_suspended
        outcome = self._rolling(instances if fresh else None)
        if outcome is Outcome.FAILED:
            f = self.run_state.failure
            raise _Stop("failed", f.message if f else "the rollout failed", f)
        self._restore()
        done = self.run_state.count(Status.DONE)
        removed = self.run_state.count(Status.REMOVED)
        extra = f"; {removed} removed by someone else" if removed else ""
        skipped = self._skip_summary()
        if outcome is Outcome.PAUSED:
            left = len(self._pending())
            return "paused", (f"paused after {done} reimage{'s' if done != 1 else ''} (stop-after "
                              f"{self.s.stop_after}) of scale set {self.s.scale_set_name} in "
                              f"{_duration(self.clock.now() - self.start)}; {left} "
                              f"instance{'s' if left != 1 else ''} not started{extra}")
        return "succeeded", (f"reimaged {done} instance{'s' if done != 1 else ''} of scale set "
                             f"{self.s.scale_set_name} in {_duration(self.clock.now() - self.start)}"
                             f"{extra}{'; skipped ' + skipped if skipped else ''}")

    # --- preflight ---------------------------------------------------------------------------

    def _preflight(self) -> tuple[Instance, ...]:
        try:
            pre = preflight(self.s, self.port, self.clock, self._emit, self._preflight_wait)
        except PreflightStop as stop:
            if stop.scale_set is not None:
                self._record_scale_set(stop.scale_set)
            raise _Stop(stop.result, stop.message) from None
        self._record_scale_set(pre.scale_set)
        self.plan, self.run_state, self.plan_report = pre.plan, pre.run, dict(pre.report)
        self.first = {i.id: i for i in pre.instances}
        self.last_seen = {i.id: (i.provisioning, i.power, i.health) for i in pre.instances}
        self.last_ready = pre.ready
        self.repairs = pre.repairs
        return pre.instances

    def _record_scale_set(self, scale_set: ScaleSet) -> None:
        self.scale_set = scale_set
        self.capacity = dict.fromkeys(("before", "during", "after"), scale_set.capacity)

    def _preflight_wait(self, message: str, ready: int, seconds: float | None = None) -> bool:
        """Preflight waits for initializing health (a poll) or a throttled read (`seconds`):
        the heartbeat tells how many are ready."""
        self.last_ready = ready
        self._wait_event(message)
        return self._sleep(self.s.poll_interval_seconds if seconds is None else seconds)

    def _dry_run_message(self) -> str:
        p = self.plan_report
        n = len(self._pending())
        surge = (f"surge capacity {self.capacity['before']} -> {p['surgeTo']}" if p["surgeTo"]
                 else "no surge")
        stop_after = self.plan.stop_after
        if stop_after is not None and stop_after < n:
            order = p["order"]
            what = (f"would reimage {stop_after} of {n} instances ({short(order[:stop_after])}), "
                    f"then pause (stop-after {self.s.stop_after}) before "
                    f"{short(order[stop_after:])}")
        else:
            what = f"would reimage {n} instance{'s' if n != 1 else ''}"
        upgrades = self._old_models() if self.s.apply_latest_model else []
        upgrade = (f"; first upgrade {short(upgrades)} to the latest model" if upgrades else "")
        skipped = self._skip_summary()
        if self._repairs_to_suspend():
            upgrade += "; would suspend automatic repairs for the run"
        return (f"dry run: {what}, at most {p['maxInFlight']} at a time with at least "
                f"{p['rMin']} of N0={p['n0']} ready, {surge}{upgrade}"
                f"{'; skip ' + skipped if skipped else ''}; nothing was changed")

    def _old_models(self) -> list[str]:
        """Instances to reimage that Azure says are not on the scale set's latest model."""
        return [tid for tid in self._pending()
                if self.run_state.tracks[tid].last.latest_model_applied is False]

    def _warn_max_failed(self) -> None:
        """Failed instances stay out of service: as many as the budget allows out block it."""
        budget, tolerated = self.run_state.budget, self.plan.max_failed
        if tolerated and tolerated >= budget.unavailable + budget.surge:
            self.warnings.append(
                f"max-failed {self.s.max_failed} lets {tolerated} instance"
                f"{'s' if tolerated != 1 else ''} fail, but failed instances stay out of service "
                f"and max-unavailable {budget.unavailable} plus max-surge {budget.surge} allow "
                f"only {budget.unavailable + budget.surge} out: failures can block the run")

    def _warn_old_models(self) -> None:
        old = self._old_models()
        if old and not self.s.apply_latest_model:
            many = len(old) != 1
            self.warnings.append(
                f"instance{'s' if many else ''} {short(old)} {'are' if many else 'is'} not on the "
                f"scale set's latest model, and a reimage keeps an instance's model: set "
                f"apply-latest-model: true to bring {'them' if many else 'it'} to it in the "
                f"same run")

    # --- automatic repairs -------------------------------------------------------------------
    # Azure repairs an instance unhealthy for its grace period (30 minutes by default) after its
    # last state change: it could replace, reimage or restart one still coming back from its
    # reimage. So the run suspends them before its first write and resumes them at its end.

    def _repairs_to_suspend(self) -> bool:
        return self.s.suspend_automatic_repairs and self.repairs == "Running"

    def _warn_repairs(self) -> None:
        where = f"scale set {self.s.scale_set_name}"
        if self.repairs == "Running" and not self.s.suspend_automatic_repairs:
            self.warnings.append(f"automatic repairs are running on {where} and "
                                 f"{self.s.setting('suspend_automatic_repairs', 'false')} leaves "
                                 f"them on: a repair may replace an instance during the run")
        elif self.repairs == "":
            self.warnings.append(f"automatic repairs are enabled on {where} but Azure does not say "
                                 f"whether they run, so the run leaves them as they are: a "
                                 f"repair may replace an instance during the run")

    def _suspend_repairs(self) -> None:
        """Suspend the set's running automatic repairs, before any other write. Not allowed
        to: refused, having changed nothing."""
        if not self._repairs_to_suspend():
            return
        try:  # read again: someone may have suspended them since preflight, and theirs stay so
            self.repairs = self.port.automatic_repairs_state() or self.repairs
        except AzureError:
            pass  # preflight's reading stands
        if not self._repairs_to_suspend():
            return
        where = f"scale set {self.s.scale_set_name} in resource group {self.s.resource_group}"
        try:
            op = self._paced(lambda: self.port.begin_set_automatic_repairs("Suspend"),
                             "suspend automatic repairs")
        except (Forbidden, AuthenticationFailed):
            raise _Stop("refused", f"{where}: not allowed to suspend its automatic repairs "
                                   f"(this identity lacks {REPAIRS_ACTION}); grant that action, or "
                                   f"set {self.s.setting('suspend_automatic_repairs', 'false')} to "
                                   f"run with them on; nothing was changed") from None
        except AzureError as err:
            if err.status is None or err.status >= 500:
                # No answer, or a server error past the SDK's retries: they may be suspended
                # now, by this request. The run's end resumes them, as the run found them.
                self.repairs_suspended = True
                said = (f"{where}: cannot suspend its automatic repairs ({err}); the request's "
                        f"outcome is unknown, so they are resumed as the run found them; no "
                        f"instance was touched")
                raise _Stop("failed", said, Failure(None, err.code or "RequestFailed", said)) from None
            raise _Stop("refused", f"{where}: cannot suspend its automatic repairs ({err}); "
                                   f"nothing was changed") from None
        self.repairs_suspended = True  # accepted: from now on the run's end resumes them
        self._wait_event("automatic repairs suspended for the run")
        status, _ = self._await(op, "suspending automatic repairs")
        if status.state is not OperationState.SUCCEEDED:
            self.repairs_suspended = False
            raise _Stop("refused", f"{where}: suspending its automatic repairs ended "
                                   f"{status.state.value} ({status.error_code}: "
                                   f"{status.error_message}); nothing was changed")

    def _resume_repairs(self) -> None:
        """Resume the repairs this run suspended, whatever its result. A cancelled run makes one
        quick attempt, so the process still ends within seconds."""
        try:
            if self.cancelled.is_set():
                self.port.begin_set_automatic_repairs("Resume", quick=True)
            else:
                self._paced(lambda: self.port.begin_set_automatic_repairs("Resume"),
                            "resume automatic repairs")
        except (AzureError, _Stop) as err:
            self.warnings.append(
                f"automatic repairs of scale set {self.s.scale_set_name} stay suspended: resuming "
                f"them failed ({err}); resume them with `az vmss set-orchestration-service-state "
                f"--service-name AutomaticRepairs --action Resume -g {self.s.resource_group} "
                f"-n {self.s.scale_set_name}`")
            return
        self.repairs_resumed = True
        self._wait_event("automatic repairs resumed")

    # --- surge and restore -------------------------------------------------------------------

    def _surge(self) -> bool:
        budget = self.run_state.budget
        if not budget.surge:
            return False
        self._phase("surge")
        # Capacity is absolute: raised from what it is now, not from preflight's reading, so an
        # instance others added or removed meanwhile is not undone (or doubled) by ours; and the
        # instances there now are known, so others' earlier additions are never taken as ours.
        known = {_identity(i) for i in self.first.values()}
        # Read again until they answer (a throttled read waits its Retry-After): a guess from
        # preflight's capacity could scale in someone else's instances.
        try:
            current = self._read(self.port.get_scale_set, "reading the capacity").capacity
            known |= {_identity(i) for i in self._read(self.port.list_instances,
                                                       "listing the instances")}
        except AzureError as err:
            raise _Stop("failed", f"cannot raise the capacity: {err}",
                        Failure(None, err.code or "RequestFailed", str(err))) from None
        target = current + budget.surge
        self._emit("capacity", data={"from": current, "to": target})
        try:
            op = self._paced(lambda: self.port.begin_set_capacity(target), "raise the capacity")
        except (Forbidden, AuthenticationFailed, Locked) as err:  # a lock on the set: not allowed
            raise _Stop("failed" if self.wrote else "refused",
                        f"cannot raise the capacity: {err}") from None
        except AzureError as err:
            if err.status is not None and 400 <= err.status < 500 and err.status != 429:
                # Refused outright (a quota): Azure changed nothing.
                raise self._surge_failed(current, target, known, err.code or "RequestFailed",
                                         str(err)) from None
            raise _Stop("failed", f"cannot raise the capacity: {err}",  # throttled, or unknown
                        Failure(None, err.code or "RequestFailed", str(err))) from None
        self.wrote = True
        self.capacity["during"] = self.capacity["after"] = target
        status, _ = self._await(op, f"raising the capacity to {target}")
        if status.state is not OperationState.SUCCEEDED:
            code = status.error_code or status.state.value
            raise self._surge_failed(current, target, known, code, f"{code}: {status.error_message}")
        # Ours are the instances there once Azure has deleted the extras of an overprovisioned
        # scale-out that were not there before, by id and timeCreated (Azure reuses ids, in no
        # order). Others' additions after our change are newer: ours are the oldest.
        _, instances = self._await_capacity(f"raising the capacity to {target}")
        new = sorted((i for i in instances if _identity(i) not in known), key=_created_order)
        self.surge = {_identity(i) for i in new[:budget.surge]}
        self.run_state = replace(self.run_state, surge_ids=frozenset(i for i, _ in self.surge))
        return True

    def _surge_failed(self, current: int, target: int, known: set, code: str, said: str) -> _Stop:
        """The surge's capacity change failed, before any reimage. The instances it left (an
        AllocationFailed scale-out keeps its failed ones) are deleted and the capacity written
        back, so the run ends having changed nothing: a refusal (exit 2), like a lock's."""
        failed = (f"scale set {self.s.scale_set_name}: raising the capacity from {current} to "
                  f"{target} for the surge failed ({said})")
        failure = Failure(None, code, said)
        try:
            left = sorted((i.id for i in self.port.list_instances() if _identity(i) not in known),
                          key=id_key)
            if left:
                self._await_succeeded(lambda: self.port.begin_delete_instances(left),
                                      f"deleting the instances it left ({', '.join(left)})")
            if self.port.get_scale_set().capacity != current:
                self._await_succeeded(lambda: self.port.begin_set_capacity(current),
                                      f"setting the capacity back to {current}")
            self.capacity["after"], _ = self._await_capacity(f"setting the capacity back to {current}")
        except AzureError as err:
            return _Stop("failed", f"{failed}, and putting the capacity back failed too ({err}): "
                                   f"set it back to {current} yourself", failure)
        return _Stop("refused", f"{failed}; the capacity is back at {current} and no instance was "
                                f"reimaged: {_scale_out_advice(code, said)}", failure)

    def _restore(self) -> None:
        before = self.capacity["before"]
        if not self.surge and self.capacity["during"] == before:
            return
        self._phase("restore")
        try:
            # Only the surge's own instances: an id that a later instance took is not ours.
            listed = self._read(self.port.list_instances, "listing the instances to restore")
            ours = sorted((i.id for i in listed if _identity(i) in self.surge), key=id_key)
            if ours:
                self._await_succeeded(lambda: self.port.begin_delete_instances(ours),
                                      f"deleting surge instances {', '.join(ours)}")
                # Deleting instances lowers the capacity by as many (Azure's delete API).
                self.capacity["after"] = self.capacity["during"] - len(ours)
            self.run_state = replace(self.run_state, surge_ids=frozenset())
            # Anything above `before` now was added by someone else, and a scale-in would
            # delete theirs: only a surge whose instances were never identified is undone by
            # capacity.
            if not self.surge and self._read(self.port.get_scale_set,
                                             "reading the capacity").capacity > before:
                self._await_succeeded(lambda: self.port.begin_set_capacity(before),
                                      f"setting the capacity back to {before}")
                self.capacity["after"] = before
            now_capacity, _ = self._await_capacity(f"setting the capacity back to {before}")
        except AzureError as err:
            raise self._restore_failed(str(err))
        except _Stop as stop:  # an operation of the restore not seen to its end
            if stop.result == "failed":
                self._reread_capacity()
            raise
        self._emit("capacity", data={"from": self.capacity["during"], "to": now_capacity})
        self.capacity["after"] = now_capacity

    def _read(self, read: Callable[[], T], what: str, deadline: float | None = None) -> T:
        """A read of the surge or restore, asked again while it fails (each poll after a 5xx,
        after its Retry-After when throttled), up to `deadline` (default: timeout-minutes from
        now); then its error stands."""
        if deadline is None:
            deadline = self.clock.now() + self.plan.timeout_seconds
        while True:
            try:
                return read()
            except AzureError as err:
                now = self.clock.now()
                if now >= deadline:
                    raise AzureError(f"{what}: {err}", code=err.code, status=err.status) from None
                pause = err.retry_after if isinstance(err, Throttled) else self.s.poll_interval_seconds
            if not self._sleep_until(min(now + pause, deadline), heartbeat=True):
                raise _Stop("cancelled", f"cancelled while {what}")

    def _reread_capacity(self) -> None:
        """After a restore that failed: a delete whose status could not be read may have ended,
        so the report says what the set has, when Azure answers."""
        try:
            self.capacity["after"] = self.port.get_scale_set().capacity
        except AzureError:
            pass  # the last capacity known stands

    def _restore_failed(self, what: str) -> _Stop:
        self._reread_capacity()
        msg = (f"every instance was reimaged, but restoring the capacity failed: {what}; "
               f"capacity is {self.capacity['after']}, it was {self.capacity['before']}")
        return _Stop("failed", msg, Failure(None, "RestoreFailed", msg))

    def _await_succeeded(self, start: Callable[[], Operation], what: str) -> None:
        """Start a scale-set operation of the surge or restore and follow it to its end; one
        that cannot start or fails is an AzureError saying `what`."""
        try:
            op = self._paced(start, what)
        except AzureError as err:
            raise AzureError(f"{what}: {err}", code=err.code, status=err.status) from None
        status, _ = self._await(op, what)
        if status.state is not OperationState.SUCCEEDED:
            raise AzureError(f"{what} ended {status.state.value} ({status.error_code})",
                             code=status.error_code)

    def _await(self, op: Operation, what: str):
        """Follow one scale-set operation to its end: each check is a pass (its status, then one
        list), so the new instances are seen as they appear. A throttled status or list is
        waited out before the next read, so the operation's own poll is the first read Azure
        sees after it. Bounded by timeout-minutes."""
        deadline = self.clock.now() + self.plan.timeout_seconds
        while True:
            if not self._sleep(self.s.poll_interval_seconds):
                raise _Stop("cancelled", f"cancelled while {what}")
            try:
                status = op.status()
                instances = self.port.list_instances()
            except AzureError as err:
                if self.clock.now() >= deadline:
                    raise _Stop("failed", f"{what}: {err}",
                                Failure(None, err.code or "RequestFailed", str(err))) from None
                if isinstance(err, Throttled):
                    until = min(self.clock.now() + err.retry_after, deadline)
                    self._wait_event(f"{what}: {err}; asking again in "
                                     f"{_duration(until - self.clock.now())}")
                    if not self._sleep_until(until, heartbeat=True):
                        raise _Stop("cancelled", f"cancelled while {what}")
                continue
            self._observe_states(instances)
            if status.finished:
                return status, instances
            if self.clock.now() >= deadline:
                raise _Stop("failed", f"{what} did not finish within "
                                      f"{self.s.timeout_minutes} minutes",
                            Failure(None, "Timeout", f"{what} did not finish"))

    def _await_capacity(self, what: str) -> tuple[int, tuple[Instance, ...]]:
        """The capacity and the instances once the set holds as many instances as its capacity.
        A scale-set operation ends before that: Azure deletes the extra instances of an
        overprovisioned scale-out itself, after it succeeded, and deleted instances stay listed
        while they go. Checked at once, then every poll; bounded by timeout-minutes."""
        deadline = self.clock.now() + self.plan.timeout_seconds
        while True:
            try:
                # Each read asked again on its own while it fails (a throttled one after its
                # Retry-After): a check needs both, and asking both again after either failed
                # could meet a refusal every time.
                capacity = self._read(lambda: self.port.get_scale_set().capacity,
                                      "reading the capacity", deadline)
                instances = self._read(self.port.list_instances, "listing the instances",
                                       deadline)
            except AzureError as err:
                raise _Stop("failed", f"{what}: {err}",
                            Failure(None, err.code or "RequestFailed", str(err))) from None
            else:
                self._observe_states(instances)
                count = sum(1 for i in instances if not i.standby)  # standby VMs are not capacity
                if count == capacity:
                    return capacity, instances
                if self.clock.now() >= deadline:
                    raise _Stop("failed", f"{what}: the set still has {count} instances for a "
                                          f"capacity of {capacity} after {self.s.timeout_minutes} "
                                          f"minutes", Failure(None, "Timeout", f"{what} did not settle"))
                self._wait_event(f"{what}: {count} instances for a capacity of {capacity}; waiting "
                                 f"until Azure has removed the extra ones")
            if not self._sleep(self.s.poll_interval_seconds):
                raise _Stop("cancelled", f"cancelled while {what}")

    # --- rolling passes ---------------------------------------------------------------------

    def _rolling(self, first: tuple[Instance, ...] | None) -> Outcome:
        poll = float(self.s.poll_interval_seconds)
        list_failing_since: float | None = None
        listed_at: float | None = None
        list_reads = 1  # what the last list cost in reads (its pages): against statuses
        while True:
            if self.cancelled.is_set():
                raise self._cancel()
            pass_start = self.clock.now()
            asked = to_ask(self.run_state, self.plan, pass_start, listed_at, poll, list_reads)
            statuses = self._statuses(asked)
            if first is None and not needs_list(self.run_state, statuses, self.plan, pass_start,
                                                listed_at, asked):
                # Every slot busy and every operation still running: a list could only say
                # "wait", so this pass ends at the statuses (one read each, not every page).
                if not self._sleep_until(pass_start + poll, heartbeat=True,
                                         early_from=listed_at + poll * EARLY_GAP):
                    raise self._cancel()
                continue
            try:
                if first is not None:
                    instances, first = first, None
                else:
                    if not self._sleep_until(self.lists_not_before, heartbeat=True):
                        raise self._cancel()
                    reads = self.port.counts.reads
                    instances = self.port.list_instances()
                    list_reads = max(1, self.port.counts.reads - reads)
                    self._pace_lists(self.port.reads_left, list_reads)
                instances = self._with_instance_views(instances)
            except AzureError as err:
                list_failing_since = list_failing_since or pass_start
                if pass_start - list_failing_since >= self.plan.timeout_seconds:
                    said = (f"cannot list the instances of scale set {self.s.scale_set_name} "
                            f"for {self.s.timeout_minutes} minutes: {err}")
                    raise _Stop("failed", said,
                                Failure(None, err.code or "ListFailed", said)) from None
                until = pass_start + poll
                if isinstance(err, Throttled):
                    # Azure's Retry-After, cut to the first deadline (the list's own included),
                    # and never less than a poll.
                    deadline = min(_next_deadline(self.run_state, self.plan),
                                   list_failing_since + self.plan.timeout_seconds)
                    until = max(min(pass_start + err.retry_after, deadline), until)
                    self._wait_event(f"Azure throttled the list of instances (Retry-After "
                                     f"{err.retry_after:.0f} s); listing again in "
                                     f"{_duration(until - pass_start)}")
                else:
                    self._wait_event(f"cannot list the instances ({err}); trying again")
                if not self._sleep_until(until, heartbeat=True):
                    raise self._cancel()
                continue
            list_failing_since = None
            listed_at = self.clock.now()
            obs = Observation(listed_at, instances)
            self._observe_states(instances)
            d = decide(obs, statuses, self.run_state, self.plan, self.clock.now())
            if d.start and self.gate is not None:  # each new start needs the gate's 2xx now
                said = self._ask_gate()
                if said is not None:
                    d = decide(obs, statuses, self.run_state, self.plan, self.clock.now(), said)
            self._apply(d)
            for tid in d.post:  # ready for min-ready-seconds: its command says when it is done
                self.ops[tid] = self._command(POST, self.s.post_ready_command, tid)
                self.ops[tid].add_done_callback(self._operation_finished)
                self.run_state = record_post_started(self.run_state, tid, self.clock.now())
            self._log_command_output()
            if d.outcome is not None:
                return d.outcome
            held = False  # a start waits for the write pacing or a throttle's Retry-After
            for tid in d.start:
                if self.cancelled.is_set():
                    raise self._cancel()
                held = self.clock.now() < self.writes_not_before
                if held or not self._start(tid):
                    break
            if d.waiting:  # after this pass's starts: it says why no more start now
                self._wait_event(d.waiting)
            wake = pass_start + poll
            if d.next_check is not None:
                wake = min(wake, max(d.next_check, self.clock.now()))
            if held:
                wake = min(wake, self.writes_not_before)
            if self.run_state.failure is not None and not self.run_state.in_flight():
                continue  # a start just failed with nothing else in flight: finish now
            # A finished operation ends the sleep (SDK pollers call back), but never sooner than
            # half a poll after the last list: operations ending together share one list, and
            # lists stay at most two per poll interval.
            if not self._sleep_until(wake, heartbeat=True, early_from=listed_at + poll * EARLY_GAP):
                raise self._cancel()

    def _command(self, which: str, command: str, tid: str) -> Command:
        inst = self.run_state.tracks[tid].last or self.first.get(tid)
        env = hook_environment(tid, inst.name if inst else tid, inst.zone if inst else None,
                               self.s.resource_group, self.s.scale_set_name)
        self._emit("output", tid, f"{which}: started")
        return self.run_command(which, command, env, self.plan.timeout_seconds)

    def _commands(self) -> list[Command]:
        """The commands of this run (running or done), by way of the operations that hold them."""
        firsts = [op.first if isinstance(op, ThenReimage) else op for op in self.ops.values()]
        return [op for op in firsts if isinstance(op, Command)]

    def _log_command_output(self) -> None:
        for tid, op in self.ops.items():
            command = op.first if isinstance(op, ThenReimage) else op
            if isinstance(command, Command):
                for line in command.take_output():
                    self._emit("output", tid, f"{command.which}: {line}")

    def _ask_gate(self) -> str | None:
        """gate-url's answer (None: 2xx), logged when it changes."""
        try:
            said = ask_until_cancelled(self.gate, self.cancelled)
        except GateCancelled:
            raise self._cancel() from None
        if said != self.gate_said:
            self.gate_said = said
            self._emit("gate", message=f"gate-url {said}: no new reimage starts" if said
                       else "gate-url answered 2xx: reimages may start")
        return said

    def _with_instance_views(self, instances: tuple[Instance, ...]) -> tuple[Instance, ...]:
        """Where the list left vmHealth out, the in-flight instances' own instance views (one
        read each, only theirs, and only once the list no longer shows them updating: until
        their reimage has ended, health tells nothing) give their states, so that "done"
        still waits for healthy."""
        in_flight = set(self.run_state.in_flight())
        wanted = [i.id for i in instances if not i.health_listed and i.id in in_flight and not i.busy]
        if not wanted:
            return instances
        views = {v.id: v for v in self.port.instance_views(wanted)}
        return tuple(replace(i, provisioning=v.provisioning or i.provisioning, power=v.power,
                             health=v.health, health_listed=True, health_time=v.health_time,
                             provisioning_time=v.provisioning_time or i.provisioning_time)
                     if (v := views.get(i.id)) else i for i in instances)

    def _statuses(self, ask: tuple[str, ...]) -> dict[str, OperationStatus]:
        """The status of each operation in `ask`; one that cannot be read is asked next pass
        (one whose poll Azure throttles is said once, with its Retry-After)."""
        statuses = {}
        for tid in ask:
            try:
                statuses[tid] = self.ops[tid].status()
            except Throttled as err:
                if tid not in self.throttled_polls:
                    self.throttled_polls.add(tid)
                    self._wait_event(f"instance {tid}, its reimage: {err}; asking again in "
                                     f"{_duration(err.retry_after)}")
            except AzureError:
                pass
            else:
                self.throttled_polls.discard(tid)
                self._say_refused_after(tid)
        return statuses

    def _say_refused_after(self, tid: str) -> None:
        """A reimage asked after its upgrade or pre-reimage-command that Azure refuses for now
        (409, 429) is asked again at each status until the instance's timeout: said once each
        time Azure's answer changes."""
        op = self.ops[tid]
        refused = op.refused if isinstance(op, ThenReimage) else None
        said = f"instance {tid}: Azure refused the reimage after {op.after} for now ({refused}); " \
               f"asking again each pass" if refused is not None else None
        if said != self.refusals_said.get(tid):
            self.refusals_said[tid] = said
            if said is not None:
                self._wait_event(said)

    def _start(self, tid: str) -> bool:
        """Ask Azure to reimage one instance; False when no further start should follow."""
        now = self.clock.now()
        last = self.run_state.tracks[tid].last
        upgrade = self.s.apply_latest_model and last is not None and last.latest_model_applied is False
        def begin() -> Operation:
            if upgrade:  # to the latest model first, in the same time out of service
                return upgrade_then_reimage(self.port, tid, all_disks=self.s.reimage_all)
            return self.port.begin_reimage(tid, all_disks=self.s.reimage_all)
        try:
            if self.s.pre_reimage_command:  # out of the budget now; Azure is asked once it is done
                op = ThenReimage(self._command(PRE, self.s.pre_reimage_command, tid), begin, f"its {PRE}")
            else:
                op = begin()
        except NotFound:
            self.run_state = record_gone(self.run_state, tid, now, self.plan)
            self._emit("removed", tid, "deleted by someone else before its reimage")
            return True
        except Locked as err:
            # A resource lock (a Flexible set's instance protection): never touched, like a
            # protected instance; it keeps serving. Asking again would not help.
            self.run_state = record_locked(self.run_state, tid, err.code, str(err))
            self._emit("skipped", tid, LOCKED)
            return True
        except (Forbidden, AuthenticationFailed) as err:
            if not self.wrote:
                raise _Stop("refused", f"instance {tid}: not allowed to reimage it ({err}); "
                                       f"nothing was changed") from None
            self.run_state = record_start_failed(self.run_state, tid, now, err.code, str(err),
                                                 outcome_unknown=False)
            self._emit_failed(tid)
            return False
        except Throttled as err:
            # Not accepted: nothing started. No write goes out before its Retry-After has
            # passed, or the first deadline (this instance's refusal timeout among them).
            if self._refused(tid, now, err):
                return False
            self.writes_not_before = min(now + err.retry_after,
                                         _next_deadline(self.run_state, self.plan))
            self._wait_event(f"instance {tid}: Azure throttled the reimage request "
                             f"(Retry-After {err.retry_after:.0f} s); no reimage request for "
                             f"{_duration(self.writes_not_before - now)}")
            return False
        except AzureError as err:
            if isinstance(err, Conflict) or err.status == 409:
                # Not accepted (busy or throttled): nothing started; a later pass asks again.
                if self._refused(tid, now, err):
                    return False
                self._wait_event(f"instance {tid}: Azure refused the reimage for now ({err}); "
                                 f"trying again on the next pass")
                # The rest of this pass's order counted it out of service (its zone gave one):
                # the next pass decides again, on a new list.
                return False
            unknown = err.status is None or err.status >= 500
            self.run_state = record_start_failed(self.run_state, tid, now, err.code, str(err),
                                                 outcome_unknown=unknown,
                                                 max_failed=self.plan.max_failed)
            self._emit_failed(tid)
            return False
        self.wrote = True
        self.ops[tid] = op
        op.add_done_callback(self._operation_finished)
        self.run_state = record_started(self.run_state, tid, now, model_upgraded=upgrade,
                                        watched=not (upgrade or self.s.pre_reimage_command))
        self._emit("started", tid, "upgrading to the latest model, then reimaging" if upgrade else "")
        self._pace_writes()
        return True

    def _refused(self, tid: str, now: float, err: AzureError) -> bool:
        """Record a reimage request Azure did not accept; True when that failed the instance
        (refused for timeout-minutes), which is then said."""
        self.run_state = record_refused(self.run_state, tid, now, err.code, str(err),
                                        timeout_seconds=self.plan.timeout_seconds,
                                        max_failed=self.plan.max_failed)
        if self.run_state.tracks[tid].status is not Status.FAILED:
            return False
        self._emit_failed(tid)
        return True

    def _pace_writes(self) -> None:
        """After an accepted write: hold the next one while Azure's write budget runs low."""
        pause = write_pause(self.port.writes_left)
        if pause:
            self.writes_not_before = self.clock.now() + pause
            self._wait_event(f"pacing writes: Azure says {self.port.writes_left} left in a write "
                             f"budget; the next write waits {pause:.0f} s")

    def _pace_lists(self, reads_left: int | None, pages: int) -> None:
        """After a list: hold the next one while Azure's read budget holds fewer than its pages."""
        pause = list_pause(reads_left, pages)
        self.lists_not_before = self.clock.now() + pause
        if pause:
            self._wait_event(f"pacing lists: Azure says {reads_left} left in a read budget and a "
                             f"list takes {pages}; the next list waits {pause:.0f} s")

    def _paced(self, call: Callable[[], Operation], what: str) -> Operation:
        """A write outside the rolling passes (a capacity change, a delete): sent once the
        pacing allows, and after a 429 asked again once its Retry-After has passed, for up to
        timeout-minutes (then the 429 is raised). The waits are cancel-aware."""
        deadline = self.clock.now() + self.plan.timeout_seconds
        while True:
            held = self.clock.now() < self.writes_not_before
            if held and not self._sleep_until(self.writes_not_before, heartbeat=True):
                raise self._cancel()
            try:
                op = call()
            except Throttled as err:
                now = self.clock.now()
                if now >= deadline:
                    raise
                self.writes_not_before = min(now + err.retry_after, deadline)
                self._wait_event(f"Azure throttled the request to {what} (Retry-After "
                                 f"{err.retry_after:.0f} s); asking again in "
                                 f"{_duration(self.writes_not_before - now)}")
                continue
            self._pace_writes()
            return op

    def _apply(self, d: Decision) -> None:
        old = self.run_state
        self.run_state = d.run
        self.last_ready = d.ready
        for tid in d.changed:
            t = d.run.tracks[tid]
            if t.status is Status.DONE:
                self._emit("done", tid)
            elif t.status is Status.FAILED:
                self._emit_failed(tid)
            elif t.status is Status.REMOVED:
                self._emit("removed", tid, "deleted by someone else")
            elif t.status is Status.SKIPPED:
                self._emit("skipped", tid, t.reason or "")
            elif t.status is Status.PENDING:  # its reimage was preempted: asked once more
                self._wait_event(t.error_message or "")
        if d.run.budget.n0 != old.budget.n0:
            self._wait_event(f"N0 is now {d.run.budget.n0} (R_min {d.run.budget.r_min}) after a "
                             f"removal")

    def _observe_states(self, instances) -> None:
        """A `state` event for each instance whose states changed since the last list."""
        for inst in instances:
            seen = (inst.provisioning, inst.power, inst.health)  # what `states` shows, cheaply
            if self.last_seen.get(inst.id) != seen:
                if inst.id in self.last_seen:
                    self._emit("state", inst.id, data=states(inst))
                self.last_seen[inst.id] = seen

    def _cancel(self) -> _Stop:
        in_flight = sorted(self.run_state.in_flight(), key=id_key) if self.run_state else []
        pending = len(self._pending())
        return _Stop("cancelled", f"cancelled: no new reimage starts; "
                                  f"{len(in_flight)} in flight"
                                  f"{' (' + short(in_flight) + ')' if in_flight else ''}, "
                                  f"{pending} not started")

    # --- time ----------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> bool:
        return self._sleep_until(self.clock.now() + seconds, heartbeat=True)

    def _operation_finished(self) -> None:
        """Called from an SDK poller's thread: end the current sleep, so the next pass (its
        statuses, then a list) follows at once instead of a poll interval later."""
        self.progress.set()
        self.clock.wake()

    def _sleep_until(self, until: float, *, heartbeat: bool, early_from: float | None = None) -> bool:
        """Sleep in short slices so a cancel is seen at once; False when cancelled. With
        `early_from`, returns (True) as soon as one of our operations has finished and that
        instant has come."""
        while True:
            if self.cancelled.is_set():
                return False
            now = self.clock.now()
            early = early_from is not None and self.progress.is_set()
            if early and now >= early_from:
                self.progress.clear()
                return True
            if heartbeat and now - self.last_heartbeat >= HEARTBEAT_SECONDS:
                self._heartbeat(now)
            if now >= until:
                return True
            step = min(until - now, SLEEP_SLICE)
            if early:
                step = min(step, early_from - now)
            if heartbeat:
                step = min(step, max(self.last_heartbeat + HEARTBEAT_SECONDS - now, 0.001))
            self.clock.sleep(step)

    def _heartbeat(self, now: float) -> None:
        rs = self.run_state
        self.last_heartbeat = now
        if rs is None:  # still in preflight: no plan, no R_min yet
            self._emit("heartbeat", data={"done": 0, "in_flight": 0, "pending": 0,
                                          "ready": self.last_ready})
            return
        self._emit("heartbeat", data={
            "done": rs.count(Status.DONE), "in_flight": rs.count(Status.IN_FLIGHT),
            "pending": rs.count(Status.PENDING), "ready": self.last_ready,
            "r_min": rs.budget.r_min})

    # --- events and report -------------------------------------------------------------------

    def _emit(self, kind: str, instance_id: str | None = None, message: str = "",
              data: dict | None = None) -> None:
        self.listener.event(Event(kind, self.clock.now(), instance_id, message, data or {}))

    def _phase(self, name: str) -> None:
        self._emit("phase", message=name)

    def _wait_event(self, message: str) -> None:
        if message != self.last_waiting:
            self.last_waiting = message
            self._emit("waiting", message=message)

    def _emit_failed(self, tid: str) -> None:
        t = self.run_state.tracks[tid]
        self._emit("failed", tid, t.error_message or "",
                   data={"code": t.error_code, "states": states(t.last) if t.last else None})

    def _pending(self) -> list[str]:
        if self.run_state is None:
            return []
        return [t.id for t in self.run_state.tracks.values() if t.status is Status.PENDING]

    def _skip_summary(self) -> str:
        if self.run_state is None:
            return ""
        by_reason: dict[str, list[str]] = {}
        for t in self.run_state.tracks.values():
            if t.status is Status.SKIPPED:
                by_reason.setdefault(t.reason or "skipped", []).append(t.id)
        return "; ".join(f"{len(ids)} outside instance-ids" if reason == OUT_OF_SCOPE
                         else f"{short(ids)} ({reason})" for reason, ids in by_reason.items())

    def _report(self, result: str, message: str, failure: Failure | None) -> Report:
        rs = self.run_state
        if failure is None and rs is not None and result == "failed":
            failure = rs.failure
        rows = []
        if rs is not None:
            for tid, t in sorted(rs.tracks.items(), key=lambda kv: id_key(kv[0])):
                rows.append(InstanceRow.of(t, self.first.get(tid) or t.last))
        return Report.finished(self.s, self.scale_set, start=self.start, end=self.clock.now(),
                               result=result, message=message, failure=failure,
                               plan=self.plan_report, capacity=self.capacity,
                               requests=self.port.counts, warnings=self.warnings, instances=rows,
                               reimaged_since=self.plan.reimaged_since if self.plan else None,
                               automatic_repairs=None if self.repairs is None else {
                                   "state": self.repairs or None,
                                   "suspended": self.repairs_suspended,
                                   "resumed": self.repairs_resumed})


def _identity(instance: Instance) -> tuple:
    """An instance as distinct from a later one that reuses its id."""
    return instance.id, instance.time_created


def _created_order(instance: Instance) -> tuple:
    created = instance.time_created
    return (created is None, created.timestamp() if created else 0.0, id_key(instance.id))


def _scale_out_advice(code: str, said: str) -> str:
    """What to do about a scale-out Azure refused or could not carry out."""
    if "allocation" in code.lower():
        advice = "Azure has no room for more of this VM size there now; run again later"
    elif "quota" in said.lower():
        advice = "request more quota for this VM size's family in the region"
    else:
        advice = "fix what Azure said"
    return f"{advice}, or run with max-surge 0 to reimage without a surge"


def write_pause(writes_left: int | None) -> float:
    """Seconds the next write waits after one whose answer said `writes_left` requests are left
    in a write budget (None: Azure said nothing)."""
    if writes_left is None or writes_left >= WRITE_RESERVE:
        return 0.0
    return WRITE_REFILL_SECONDS if writes_left > 0 else WRITE_EMPTY_SECONDS


def list_pause(reads_left: int | None, pages: int) -> float:
    """Seconds the next list of `pages` pages waits after one whose last answer said
    `reads_left` requests are left in a read budget (None: Azure said nothing)."""
    if reads_left is None or reads_left >= pages:
        return 0.0
    return 60.0 * math.ceil((pages - reads_left) / READ_REFILL_PER_MINUTE)


def _next_deadline(run: RunState, plan: Plan) -> float:
    """The first instant a timeout-minutes rule can end the run: an in-flight instance's, a
    refused instance's or the blocked clock's (inf when none runs)."""
    clocks = [run.tracks[tid].started for tid in run.in_flight()]
    clocks += [run.tracks[tid].refused_since for tid in run.refused]
    clocks.append(run.blocked_since)
    return min((c for c in clocks if c is not None), default=math.inf) + plan.timeout_seconds


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
