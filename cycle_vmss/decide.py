"""The rolling rules as one pure function: what one observation of the set means for the run.

`decide(observation, operations, run, plan, now) -> Decision` never sleeps and never calls Azure:
the engine observes (the statuses `to_ask` names first, then one list of the set, which shows how
a reimage stands: `listed_status`), calls it, and acts on the answer (starts the named reimages,
or finishes). Everything is frozen data, so the rules are tested with hand-built observations
and replayed in virtual time.

The rules (for users: the rolling rules in docs/how-it-works.md):
- Ready means `health.is_ready`'s score; an instance of this run counts as out of service from the
  moment its reimage is accepted until it is done (operation succeeded, then observed ready for
  `min-ready-seconds`, on health reported after the reimage ended), whatever the list shows in
  between.
- "Out of service" per zone counts the set's in-service instances that are not ready plus this
  run's in-flight ones; stopped and deallocated instances are not counted (they are not in N0).
- Unready in-scope instances are started first and cost no budget (they serve nothing), only a
  slot of the in-flight cap.
- Ready ones never take a zone's last ready instance while another zone can give one
  (`spread_order`), so a zone goes wholly out of service only when nothing else is left.
- An instance that became protected, stopped or deallocated before its turn is skipped then
  (once no operation runs on it: an automatic repair stops an instance for a while); so is one
  whose OS disk is newer than `skip-reimaged-since`.
- An instance on which an operation still runs (provisioning `updating`: say, the reimage a
  cancelled run left behind) is never asked to reimage: it waits, unready, until it settles.
- With `stop-after` N, at most N reimages are ever started; once they are over, the run is
  paused (or succeeded, when nothing was left).
- A 409 (busy) or 429 on the reimage request means Azure did not accept it: the instance stays
  pending and is tried again on a later pass; if it is still refused `timeout-minutes` after the
  first refusal, the run fails naming it. Any other error whose outcome is unknown (5xx after
  the SDK's retries, a lost connection) fails the run and the instance is never asked again, so
  no instance is ever reimaged twice.
- The one exception: a reimage preempted by another operation (ended Canceled or
  OperationPreempted) while the instance lives on goes back to pending, to be started again
  under the same rules; preempted a second time, it fails.
- Blocked: nothing of this run is in flight, an instance waits, and the budget forbids taking it
  out because of unready instances. Blocked for `timeout-minutes` fails the run.
"""

from __future__ import annotations

import functools
import heapq
from dataclasses import dataclass, replace
from enum import Enum
from typing import Collection, Mapping

from .budget import ResolvedBudget
from .compute import Instance, Observation, OperationState, OperationStatus
from .health import describe, is_ready, ready_after_reimage, states
from .settings import HealthSource


class Status(str, Enum):
    PENDING = "not-started"
    IN_FLIGHT = "in-flight"
    DONE = "reimaged"
    FAILED = "failed"
    REMOVED = "removed"
    SKIPPED = "skipped"


ACTIVE = (Status.PENDING, Status.IN_FLIGHT)
OUT_OF_SCOPE = "out of scope"  # skip reason: not named by instance-ids
# The codes of a failed pre-reimage-command or post-ready-command (their messages say it all).
PRE_FAILED, POST_FAILED = "PreReimageCommandFailed", "PostReadyCommandFailed"
HOOK_FAILED = frozenset({PRE_FAILED, POST_FAILED})
LOCKED = "locked"  # skip reason: a resource lock refused the reimage (409 ScopeLocked)
STANDBY = "in standby pool"
REIMAGED_SINCE = "reimaged-since"  # skip reason: its OS disk is newer than skip-reimaged-since


@dataclass(frozen=True)
class Track:
    """This run's record of one instance of the set as it was at the start."""

    id: str
    status: Status = Status.PENDING
    reason: str | None = None  # why skipped
    in_n0: bool = True  # counted in N0 (in service at the start)
    started: float | None = None  # reimage accepted
    op_state: OperationState | None = None
    op_end: float | None = None  # first pass that saw the operation finished
    ready_since: float | None = None  # observed ready since (after the operation succeeded)
    done: float | None = None
    ended: float | None = None  # failed / removed at
    gone: float | None = None  # done or failed, then deleted by someone else: left N0 at
    refused_since: float | None = None  # first 409/429 on the reimage request
    preempted: tuple[str, str] | None = None  # (code, line) of the preemption it was asked again after
    model_upgraded: bool = False  # brought to the latest model before its reimage
    post_started: float | None = None  # its post-ready-command began (it is ready)
    # The list watches its reimage (a reimage alone, with no upgrade or command before it):
    # its end shows as a settled instance on an OS disk newer than `disk_before`, the disk's
    # time when the reimage was asked.
    watched: bool = False
    disk_before: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    last: Instance | None = None  # last observation of it


@dataclass(frozen=True)
class Failure:
    instance_id: str | None
    code: str
    message: str
    states: dict | None = None


@dataclass(frozen=True)
class Plan:
    """What preflight settled; fixed for the run."""

    health_source: HealthSource  # resolved: extension or none
    timeout_seconds: float
    min_ready_seconds: float
    ignore_availability: bool = False
    reimaged_since: float | None = None  # skip-reimaged-since, resolved (Azure's clock)
    stop_after: int | None = None  # stop-after, resolved to a count of reimages
    max_failed: int = 0  # max-failed, resolved: failed instances the run goes on after
    post_ready_command: bool = False  # an instance is done only once its command exited 0


@dataclass(frozen=True)
class RunState:
    tracks: Mapping[str, Track]  # never mutated: each decision builds a new mapping
    budget: ResolvedBudget  # N0 and R_min follow removals
    surge_ids: frozenset[str] = frozenset()
    blocked_since: float | None = None
    failure: Failure | None = None

    @functools.cached_property
    def by_status(self) -> Mapping[Status, tuple[str, ...]]:
        """Track ids by status, in the tracks' order. Derived once per state: a set may have a
        thousand tracks, and the engine asks on every pass."""
        by_status: dict[Status, list[str]] = {}
        for t in self.tracks.values():
            by_status.setdefault(t.status, []).append(t.id)
        return {status: tuple(ids) for status, ids in by_status.items()}

    @functools.cached_property
    def refused(self) -> tuple[str, ...]:
        """Pending ids whose reimage request Azure refused (busy, throttled): asked again."""
        return tuple(tid for tid in self.by_status.get(Status.PENDING, ())
                     if self.tracks[tid].refused_since is not None)

    def count(self, status: Status) -> int:
        return len(self.by_status.get(status, ()))

    def in_flight(self) -> list[str]:
        return list(self.by_status.get(Status.IN_FLIGHT, ()))

    @functools.cached_property
    def started(self) -> int:
        """Reimages this run started (one asked again after a preemption counts once)."""
        return sum(1 for t in self.tracks.values() if t.started is not None)


class Outcome(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PAUSED = "paused"  # stop-after reached with instances left


@dataclass(frozen=True)
class Decision:
    run: RunState
    start: tuple[str, ...] = ()  # reimage these now, in this order
    waiting: str = ""  # why nothing (more) starts now; "" when nothing waits
    outcome: Outcome | None = None  # the rolling phase is over
    changed: tuple[str, ...] = ()  # tracks whose status changed in this decision
    ready: int = 0  # ready instances counted against R_min
    next_check: float | None = None  # a min-ready window ends then: observe no later
    post: tuple[str, ...] = ()  # ready for min-ready-seconds: run their post-ready-command now


@functools.lru_cache(maxsize=1 << 16)  # the same ids are ordered on every pass
def id_key(value: str | None) -> tuple:
    """Ids (and zone names) compare numerically when numeric: "2" < "10"."""
    value = value or ""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _zone(instance: Instance) -> str:
    return instance.zone or ""


def _in_zone_key(instance: Instance) -> tuple:
    return (instance.fault_domain if instance.fault_domain is not None else -1, id_key(instance.id))


def spread_order(candidates: list[Instance], zone_out: Mapping[str, int],
                 zone_ready: Mapping[str, int], window: int | None = None,
                 limit: int | None = None) -> list[Instance]:
    """Ready candidates in the order the rules take them: never a zone's last ready instance
    while another zone can give one; then from the zone with the fewest instances out of
    service, then the one with the most candidates left (so no zone is left to be done all at
    once at the end), then by zone name; within a zone by fault domain, then id.

    Taking one puts it out of service in its zone. With `window`, the projection for the plan:
    at most `window` are out at once and the oldest comes back first. With `limit`, only the
    first `limit` (a pass starts only a few, and a thousand-instance set is sorted no more)."""
    zone_out, zone_ready = dict(zone_out), dict(zone_ready)
    by_zone: dict[str, list[Instance]] = {}
    for inst in candidates:
        by_zone.setdefault(_zone(inst), []).append(inst)
    left = {z: len(members) for z, members in by_zone.items()}
    groups: dict[str, list[Instance]] = {}
    for z, members in by_zone.items():
        head = (sorted(members, key=_in_zone_key) if limit is None
                else heapq.nsmallest(limit, members, key=_in_zone_key))
        groups[z] = head[::-1]  # reversed: pop() takes the head
    taken: list[Instance] = []
    while groups and (limit is None or len(taken) < limit):
        if window is not None and len(taken) >= window:
            back = _zone(taken[len(taken) - window])
            zone_out[back] -= 1
            zone_ready[back] = zone_ready.get(back, 0) + 1
        z = min(groups, key=lambda name: (zone_ready.get(name, 0) <= 1, zone_out.get(name, 0),
                                          -left[name], id_key(name)))
        inst = groups[z].pop()
        if not groups[z]:
            del groups[z]
        zone_out[z] = zone_out.get(z, 0) + 1
        zone_ready[z] = zone_ready.get(z, 0) - 1
        left[z] -= 1
        taken.append(inst)
    return taken


def plan_order(instances: tuple[Instance, ...], reimage_ids: set[str], source: HealthSource,
               window: int) -> list[str]:
    """The order the run expects to take its instances in, as if each came back before the
    window moved on: unready first, then spread over zones."""
    unready = [i for i in instances if i.id in reimage_ids and not is_ready(i, source)]
    ready = [i for i in instances if i.id in reimage_ids and is_ready(i, source)]
    count = _count(instances, frozenset(), source)
    first = sorted(unready, key=lambda i: (id_key(_zone(i)), _in_zone_key(i)))
    return [i.id for i in first] + [i.id for i in spread_order(ready, count.zone_out,
                                                               count.zone_ready, window)]


def skip_reason(inst: Instance, reimaged_since: float | None = None) -> str | None:
    """Why an instance in scope is never touched, or None."""
    if (reimaged_since is not None and inst.os_disk_time is not None
            and inst.os_disk_time >= reimaged_since):
        return REIMAGED_SINCE
    if inst.protected:
        return "protected from scale-set actions"
    if inst.standby:
        return STANDBY
    if inst.power in ("deallocated", "deallocating"):
        return "deallocated"
    if inst.power in ("stopped", "stopping"):
        return "stopped"
    return None


def _fail(track: Track, now: float, code: str, message: str) -> Track:
    return replace(track, status=Status.FAILED, ended=now, error_code=code, error_message=message)


def _beyond_max_failed(failed: Track, tracks: Mapping[str, Track], max_failed: int) -> Failure | None:
    """The run's failure once `failed` has failed, or None while max-failed tolerates it."""
    total = sum(1 for t in tracks.values() if t.status is Status.FAILED)
    if total <= max_failed:
        return None
    message = failed.error_message or ""
    if max_failed:
        message += f"; {total} instances failed, more than max-failed {max_failed}"
    return Failure(failed.id, failed.error_code or "Failed", message,
                   states(failed.last) if failed.last else None)


def _tolerated_failure(run: RunState, plan: Plan) -> Failure:
    """The end of a run whose failures max-failed tolerated: it names each."""
    failed = [run.tracks[tid] for tid in run.by_status[Status.FAILED]]
    done = run.count(Status.DONE)
    named = ", ".join(f"{t.id} ({t.error_code or 'Failed'})" for t in failed[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    return Failure(failed[0].id, "InstancesFailed",
                   f"{len(failed)} instance{'s' if len(failed) != 1 else ''} failed (max-failed "
                   f"{plan.max_failed} let the run go on): {named}{more}; {done} reimaged",
                   states(failed[0].last) if failed[0].last else None)


def decide(observation: Observation, operations: Mapping[str, OperationStatus], run: RunState,
           plan: Plan, now: float, gate: str | None = None) -> Decision:
    """One pass of the rules. `operations` holds the statuses read this pass, before
    `observation` was listed (so a ready instance in it is a *later* observation); where none
    was read, or it still ran, the list's own word on a reimage counts (`listed_status`).
    `gate`: why gate-url refused in this pass (None: it answered 2xx, or there is none)."""
    seen = observation.by_id()
    run, changed, next_check = _observe(run, seen, operations, plan, observation.time, now)
    post = _post_due(run, plan, observation.time)
    # Failed instances stay out of service in the count, whatever the list shows of them.
    out = frozenset(run.in_flight()) | frozenset(run.by_status.get(Status.FAILED, ()))
    count = _count(observation.instances, out, plan.health_source)
    pending = run.by_status.get(Status.PENDING, ())
    stopped = plan.stop_after is not None and run.started >= plan.stop_after
    if run.failure is not None or not pending or stopped:
        outcome, waiting = _finishing(run, plan.stop_after if pending else None)
        if outcome is not None and outcome is not Outcome.FAILED and run.count(Status.FAILED):
            # Failures max-failed tolerated: the rest is done, and the run still fails.
            outcome, run = Outcome.FAILED, replace(run, failure=_tolerated_failure(run, plan))
        return Decision(replace(run, blocked_since=None), (), waiting, outcome, changed,
                        count.ready, next_check, post)
    # A failed instance whose reimage Azure still runs (it timed out, and max-failed let the
    # run go on) keeps its slot of the in-flight cap until the list shows it settled.
    still_running = tuple(tid for tid in run.by_status.get(Status.FAILED, ())
                          if (inst := seen.get(tid)) is not None and inst.busy)
    start, waiting, ready = _choose_starts([seen[i] for i in pending], run, count, plan,
                                           still_running)
    gated = gate is not None and bool(start)
    if gated:  # nothing new starts; the run counts as blocked, in flight or not
        start, ready = (), count.ready
        waiting = f"gate-url {gate}: no new reimage starts"
    run = _forget_unasked_refusals(run, start)
    if (start or run.in_flight()) and not gated:
        return Decision(replace(run, blocked_since=None), start, waiting, None, changed, ready,
                        next_check, post)
    # Nothing of ours is out, yet the next one may not go: other unready instances hold the
    # budget. Only then does the blocked clock run.
    blocked_since = run.blocked_since if run.blocked_since is not None else now
    if now - blocked_since >= plan.timeout_seconds:
        failure = (Failure(None, "GateRefused", f"gate-url refused every start for "
                                                f"{_minutes(plan.timeout_seconds)}: it {gate}")
                   if gated else _blocked_failure([seen[i] for i in pending], run.budget, count, plan,
                                                  still_running))
        # What is in flight (only while gated) is watched to its end first.
        return Decision(replace(run, blocked_since=blocked_since, failure=failure), (), "",
                        None if run.in_flight() else Outcome.FAILED, changed, ready, next_check, post)
    if gated:  # one line while the answer stays the same (the gate's own line said it)
        waiting = (f"blocked by gate-url (fails after {_minutes(plan.timeout_seconds)} of "
                   f"refusal): it {gate}")
    else:
        waiting = (f"blocked for {_minutes(now - blocked_since)} (fails after "
                   f"{_minutes(plan.timeout_seconds)}): {waiting}")
    return Decision(replace(run, blocked_since=blocked_since), (), waiting, None, changed, ready,
                    next_check, post)


# --- the steps of a decision ---------------------------------------------------------------------


def _observe(run: RunState, seen: Mapping[str, Instance], operations: Mapping[str, OperationStatus],
             plan: Plan, seen_at: float, now: float) -> tuple[RunState, tuple[str, ...], float | None]:
    """Every track advanced by this observation: the new state (N0 lowered by removals, the
    first new failure recorded, surge instances that are gone forgotten), the ids whose status
    changed, and when the earliest min-ready window ends."""
    updates: dict[str, Track] = {}
    for tid, track in run.tracks.items():
        inst = seen.get(tid)
        t = _advance(track, inst, _known_status(track, inst, operations.get(tid)), plan, seen_at, now)
        if t is not track:
            updates[tid] = t
    tracks = {**run.tracks, **updates} if updates else run.tracks
    changed = tuple(tid for tid, t in updates.items() if t.status is not run.tracks[tid].status)
    removed = sum(1 for tid, t in updates.items() if t.in_n0 and (
        (tid in changed and t.status is Status.REMOVED) or (t.gone is not None and run.tracks[tid].gone is None)))
    budget = (run.budget.with_n0(run.budget.n0 - removed, ignore_availability=plan.ignore_availability)
              if removed else run.budget)
    failed = [tracks[tid] for tid in changed if tracks[tid].status is Status.FAILED]
    failure = run.failure or (_beyond_max_failed(failed[0], tracks, plan.max_failed)
                              if failed else None)
    observed = RunState(tracks, budget, frozenset(i for i in run.surge_ids if i in seen),
                        run.blocked_since, failure)
    # (An instance whose post-ready-command runs is past its window: its command's end wakes.)
    windows = [tracks[tid].ready_since + plan.min_ready_seconds for tid in observed.in_flight()
               if tracks[tid].ready_since is not None and tracks[tid].post_started is None]
    return observed, changed, min(windows, default=None)


def _advance(track: Track, inst: Instance | None, status: OperationStatus | None, plan: Plan,
             seen_at: float, now: float) -> Track:
    """One track after an observation in which its instance is `inst` (None: not listed)."""
    t = track if inst is None or inst == track.last else replace(track, last=inst)
    if inst is None or (inst.provisioning == "deleting" and track.status in ACTIVE):
        # Gone from the list, or on its way out: deleted by someone else (whose delete cancels
        # our reimage: removed, not failed). Finished records stay as they are.
        if track.status in ACTIVE or track.status is Status.SKIPPED:
            return replace(t, status=Status.REMOVED, ended=now)
        if inst is None and track.status in (Status.DONE, Status.FAILED) and track.gone is None:
            # It still counted in N0 after its reimage: it leaves N0 now.
            return replace(t, gone=now)
        return t
    if track.status is Status.IN_FLIGHT:
        return _advance_in_flight(t, inst, status, plan, seen_at, now)
    if track.status is Status.PENDING:
        # A refused instance is asked again; `record_refused` fails it when Azure still refuses
        # it `timeout-minutes` after the first time (time it spent unasked, behind the budget or
        # slow passes, is not held against it).
        reason = skip_reason(inst, plan.reimaged_since)
        # An operation still runs on it (Azure's repair, the one that preempted our reimage, a
        # cancelled run's reimage): it may be stopping only for now, and its OS disk is not yet
        # what it will be, so it is judged once that operation has ended.
        if reason and not inst.busy:
            return replace(t, status=Status.SKIPPED, reason=reason)
    return t


@dataclass(frozen=True)
class _Count:
    """What one list says about the budget, given which instances are ours in flight."""

    ready: int  # ready instances, counted against R_min
    zone_out: dict[str, int]  # out of service per zone
    zone_ready: dict[str, int]  # ready per zone: a zone's last one waits its turn
    unready: tuple[str, ...]  # not ready and not ours: what spends the budget


def _count(instances: tuple[Instance, ...], ours: frozenset[str], source: HealthSource) -> _Count:
    """Ready instances count against R_min; this run's in-flight ones are out whatever the list
    shows; stopped, deallocated and standby ones are not in service and not counted per zone."""
    ready = 0
    zone_out: dict[str, int] = {}
    zone_ready: dict[str, int] = {}
    unready: list[str] = []
    for inst in instances:
        if inst.id in ours:
            zone_out[_zone(inst)] = zone_out.get(_zone(inst), 0) + 1
        elif inst.standby:  # parked in a standby pool: serves nothing, whatever its states say
            continue
        elif is_ready(inst, source):
            ready += 1
            zone_ready[_zone(inst)] = zone_ready.get(_zone(inst), 0) + 1
        elif inst.in_service_candidate:
            zone_out[_zone(inst)] = zone_out.get(_zone(inst), 0) + 1
            unready.append(inst.id)
    return _Count(ready, zone_out, zone_ready, tuple(unready))


def _finishing(run: RunState, stop_after: int | None) -> tuple[Outcome | None, str]:
    """With the run failed, nothing left to start, or `stop_after` (given while instances are
    left) reimages started: watch what is in flight, then finish."""
    in_flight = run.in_flight()
    if run.failure is not None:
        if in_flight:
            return None, (f"the run failed ({run.failure.instance_id}: {run.failure.code}); no new "
                          f"reimage starts; watching {len(in_flight)} in flight: {_names(in_flight)}")
        return Outcome.FAILED, ""
    if in_flight:
        started = (f"stop-after {stop_after} reached" if stop_after is not None
                   else "all started")
        return None, f"{started}; {len(in_flight)} in flight: {_names(in_flight)}"
    return (Outcome.PAUSED if stop_after is not None else Outcome.SUCCEEDED), ""


def _choose_starts(pending: list[Instance], run: RunState, count: _Count, plan: Plan,
                   still_running: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str, int]:
    """The reimages to start now (unready ones first, at no cost to the budget; then ready ones
    spread over zones while R_min others stay ready), why no more start, and the ready count
    once they are out. None starts on an instance where an operation still runs.
    `still_running`: failed instances whose reimage still runs, each holding a slot."""
    source = plan.health_source
    budget, in_flight = run.budget, run.in_flight() + list(still_running)
    slots = budget.max_in_flight - len(in_flight)
    if plan.stop_after is not None:
        slots = min(slots, plan.stop_after - run.started)
    start: list[str] = []
    ready, waiting = count.ready, ""
    busy = [i.id for i in pending if i.busy]
    if slots > 0:
        unready = sorted((i for i in pending if not is_ready(i, source)
                          and not i.busy),
                         key=lambda i: (id_key(_zone(i)), _in_zone_key(i)))
        start = [i.id for i in unready[:slots]]
    if len(start) < slots:
        candidates = [i for i in pending if is_ready(i, source)]
        for inst in spread_order(candidates, count.zone_out, count.zone_ready,
                                 limit=slots - len(start)):
            if ready - 1 < budget.r_min:
                waiting = (f"budget: {ready} ready, R_min {budget.r_min}: taking out "
                           f"{inst.id} would leave {ready - 1} ready; not ready: "
                           f"{_names(list(count.unready) + in_flight + start)}")
                break
            start.append(inst.id)
            ready -= 1
    if len(start) >= slots and len(start) < len(pending) - len(busy) and not waiting:
        waiting = (f"in-flight cap: {len(in_flight) + len(start)} of {budget.max_in_flight} "
                   f"reimages in flight" + (f" (Azure still runs the reimage of failed "
                                            f"{_names(list(still_running))})" if still_running else ""))
    if busy:
        waiting = "; ".join(filter(None, (f"an operation still runs on {_names(busy)} "
                                          f"(provisioning updating): waiting for it to end",
                                          waiting)))
    return tuple(start), waiting, ready


def _forget_unasked_refusals(run: RunState, start: tuple[str, ...]) -> RunState:
    """The refusal clock runs only while the instance is asked and refused pass after pass; one
    not asked this pass (budget, cap) starts afresh when it is asked again."""
    unasked = [tid for tid in run.refused if tid not in start]
    if not unasked:
        return run
    return replace(run, tracks={**run.tracks, **{tid: replace(run.tracks[tid], refused_since=None)
                                                 for tid in unasked}})


def _blocked_failure(pending: list[Instance], budget: ResolvedBudget, count: _Count,
                     plan: Plan, still_running: tuple[str, ...] = ()) -> Failure:
    """Blocked for `timeout-minutes`: names the instance that would go next and the blockers."""
    if still_running:  # the cap is held by failed instances whose reimage Azure still runs
        head = min(pending, key=lambda i: id_key(i.id))
        return Failure(head.id, "Blocked",
                       f"instance {head.id} could not start for {_minutes(plan.timeout_seconds)}: "
                       f"Azure still runs the reimage of failed {_names(list(still_running))}, "
                       f"which holds the in-flight cap of {budget.max_in_flight}", states(head))
    ready = [i for i in pending if is_ready(i, plan.health_source)]
    if not ready:  # only instances that an operation still holds
        busy = [i.id for i in pending if i.busy]
        head = next(i for i in pending if i.id == min(busy, key=id_key))
        return Failure(head.id, "Blocked",
                       f"an operation still ran on {_names(busy)} (provisioning updating) "
                       f"{_minutes(plan.timeout_seconds)} after the run began waiting for it; "
                       f"not asked to reimage while it runs", states(head))
    head = spread_order(ready, count.zone_out, count.zone_ready, limit=1)[0]
    return Failure(head.id, "Blocked",
                   f"instance {head.id} could not start for {_minutes(plan.timeout_seconds)}: "
                   f"{count.ready} ready, R_min {budget.r_min}; unready instances "
                   f"{_names(list(count.unready)) or '(none)'} keep the budget spent", states(head))


def _advance_in_flight(t: Track, inst: Instance, status: OperationStatus | None, plan: Plan,
                       seen_at: float, now: float) -> Track:
    if status is not None and status.finished and t.op_state in (None, OperationState.IN_PROGRESS):
        t = replace(t, op_state=status.state, op_end=seen_at)
        if status.state is OperationState.PREEMPTED:
            return _preempted(t, status, inst, now)
        if status.state is not OperationState.SUCCEEDED:
            code = status.error_code or status.state.value
            if code in HOOK_FAILED:  # the pre-reimage-command: no reimage was asked
                return _fail(t, now, code, f"instance {t.id}: {status.error_message}")
            return _fail(t, now, code, f"instance {t.id}: reimage {status.state.value.lower()} "
                                       f"({code}: {status.error_message or 'no message'}); "
                                       f"last states {describe(inst)}")
    if t.post_started is not None:  # its post-ready-command runs: its end says done or failed
        if status is not None and status.finished:
            if status.state is OperationState.SUCCEEDED:
                return replace(t, status=Status.DONE, done=seen_at)
            return _fail(t, now, status.error_code or POST_FAILED,
                         f"instance {t.id}: {status.error_message}")
    elif t.op_state is OperationState.SUCCEEDED:
        if ready_after_reimage(inst, plan.health_source):  # a stale `healthy` does not count
            since = t.ready_since if t.ready_since is not None else seen_at
            t = replace(t, ready_since=since)
            if seen_at - since >= plan.min_ready_seconds and not plan.post_ready_command:
                return replace(t, status=Status.DONE, done=seen_at)
        elif t.ready_since is not None:
            t = replace(t, ready_since=None)  # it must stay ready for the whole window
    if t.started is not None and now - t.started >= plan.timeout_seconds:
        op = t.op_state.value if t.op_state else "InProgress"
        stale = (" (that health was reported before the reimage ended)"
                 if t.op_state is OperationState.SUCCEEDED and is_ready(inst, plan.health_source)
                 and not ready_after_reimage(inst, plan.health_source) else "")
        return _fail(t, now, "Timeout" if op != "Succeeded" else "NotReady",
                     f"instance {t.id}: not done within {_minutes(plan.timeout_seconds)} of its "
                     f"start (operation {op}); last states {describe(inst)}{stale}")
    return t


def _post_due(run: RunState, plan: Plan, seen_at: float) -> tuple[str, ...]:
    """In-flight instances ready for min-ready-seconds whose post-ready-command is still to run."""
    if not plan.post_ready_command:
        return ()
    return tuple(tid for tid in run.in_flight()
                 if (t := run.tracks[tid]).post_started is None and t.ready_since is not None
                 and seen_at - t.ready_since >= plan.min_ready_seconds)


def record_post_started(run: RunState, tid: str, now: float) -> RunState:
    return replace(run, tracks={**run.tracks, tid: replace(run.tracks[tid], post_started=now)})


def _preempted(t: Track, status: OperationStatus, inst: Instance, now: float) -> Track:
    """Another operation took the instance over and it lives on: the first time, it is pending
    again (started afresh under the budget, its timeout counted from the new start); the second
    time, it fails."""
    code = status.error_code or status.state.value
    azure_said = f"{code}: {status.error_message or 'no message'}"
    if t.preempted is not None:
        return _fail(t, now, code, f"instance {t.id}: reimage preempted again by another operation "
                                   f"({azure_said}) after it was asked once more; not asked a third "
                                   f"time; last states {describe(inst)}")
    why = f"instance {t.id}: reimage preempted by another operation ({azure_said}); asked once more"
    return replace(t, status=Status.PENDING, started=None, op_state=None, op_end=None,
                   ready_since=None, preempted=(code, why), error_code=code, error_message=why)


# --- what the list says of a reimage, and what only its operation can say ----------------------


def listed_status(track: Track, inst: Instance | None) -> OperationStatus | None:
    """What one list says of a watched reimage's operation: in progress while the instance is
    updating; succeeded once it has settled (provisioning succeeded) on a new OS disk, one
    provisioned after the disk it had when the reimage was asked (a reimage provisions a new
    OS disk from the image; an operation that preempted it, a restart, does not). None when
    only the operation's own status can say: failed (its error), anything else, not listed."""
    if not track.watched or inst is None:
        return None
    if inst.busy:
        return OperationStatus(OperationState.IN_PROGRESS)
    if (inst.provisioning == "succeeded" and inst.os_disk_time is not None
            and track.disk_before is not None and inst.os_disk_time > track.disk_before):
        return OperationStatus(OperationState.SUCCEEDED)
    return None


def _known_status(track: Track, inst: Instance | None,
                  read: OperationStatus | None) -> OperationStatus | None:
    """The operation's status as read this pass or as the list shows it, whichever has
    finished (the read one, with its error, when both have)."""
    if (track.status is not Status.IN_FLIGHT or track.op_state is not OperationState.IN_PROGRESS
            or (read is not None and read.finished)):
        return read  # (once the reimage has ended, a status is its post-ready-command's)
    listed = listed_status(track, inst)
    return listed if listed is not None and (read is None or listed.finished) else read


def to_ask(run: RunState, plan: Plan, now: float, listed_at: float | None, poll: float,
           list_reads: int) -> tuple[str, ...]:
    """The in-flight instances whose operation's status this pass reads (before it lists).

    Any operation but a watched reimage (an upgrade then a reimage, a command) is read every
    pass: the list cannot see where it stands. Watched reimages are all read too while that
    costs fewer reads than a list (`list_reads`, what the last one took): then a pass that
    could only answer "wait" stops at them (`needs_list`). Otherwise the list follows them,
    and one is read only when the last list could not tell how it stands (it failed, it shows
    settled on its old disk: preempted) or when its timeout falls before the next pass (its
    error then comes from Azure)."""
    in_flight = run.in_flight()
    following = [tid for tid in in_flight if run.tracks[tid].watched  # the reimage runs on
                 and run.tracks[tid].op_state is OperationState.IN_PROGRESS]
    cheaper = len(following) < list_reads
    ask = []
    for tid in in_flight:
        t = run.tracks[tid]
        if not t.watched or t.post_started is not None:
            ask.append(tid)
        elif tid in following and (
                cheaper
                or (listed_at is not None and t.started < listed_at
                    and listed_status(t, t.last) is None)
                or now + poll - t.started >= plan.timeout_seconds):
            ask.append(tid)
    return tuple(ask)


# --- whether a pass needs the list ---------------------------------------------------------------

LIST_AT_LEAST_EVERY = 300.0  # seconds: a long wait still refreshes states and the ready count


def needs_list(run: RunState, operations: Mapping[str, OperationStatus], plan: Plan, now: float,
               listed_at: float | None, asked: Collection[str] | None = None) -> bool:
    """Whether this pass must list the set, or may stop at the in-flight operations' statuses
    (one read each instead of every page of the set).

    A list can change what the rules do only when a reimage could start (a free in-flight slot
    and an instance waiting, in a run that has not failed), when one of ours has finished or
    waits to be seen ready, when a start has not been observed yet, or when a timeout is due.
    Otherwise the answer would be "wait", so the list is skipped, except once every
    `LIST_AT_LEAST_EVERY` seconds. `listed_at` is when the last list was taken (None: never);
    `asked`: the operations read this pass (None: all), as `to_ask` chose them."""
    if listed_at is None or now - listed_at >= LIST_AT_LEAST_EVERY:
        return True
    in_flight = run.by_status.get(Status.IN_FLIGHT, ())
    if not in_flight:
        return True  # no operation to ask: only a list tells anything
    for tid in in_flight:
        t = run.tracks[tid]
        status = operations.get(tid)
        if ((asked is not None and tid not in asked)  # the list follows it
                or t.op_state is not OperationState.IN_PROGRESS  # succeeded: to be seen ready
                or (status is not None and status.finished)
                or t.started is None or t.started >= listed_at  # its start not seen yet
                or now - t.started >= plan.timeout_seconds):
            return True
    if any(now - run.tracks[tid].refused_since >= plan.timeout_seconds for tid in run.refused):
        return True
    pending = run.by_status.get(Status.PENDING)
    return run.failure is None and bool(pending) and len(in_flight) < run.budget.max_in_flight


# --- what the engine records after acting: also pure -------------------------------------------


def record_started(run: RunState, tid: str, now: float, *, model_upgraded: bool = False,
                   watched: bool = False) -> RunState:
    """Azure accepted the reimage (`watched`: a reimage alone, which the list can follow)."""
    old = run.tracks[tid]
    t = replace(old, status=Status.IN_FLIGHT, started=now, op_state=OperationState.IN_PROGRESS,
                refused_since=None, model_upgraded=model_upgraded, watched=watched,
                disk_before=old.last.os_disk_time if watched and old.last else None)
    return replace(run, tracks={**run.tracks, tid: t}, blocked_since=None)


def record_refused(run: RunState, tid: str, now: float, code: str | None, message: str, *,
                   timeout_seconds: float | None = None, max_failed: int = 0) -> RunState:
    """Azure did not accept the request (409 busy, 429): still pending, tried again later; once
    it is refused again `timeout_seconds` after the first refusal, the run fails naming it."""
    old = run.tracks[tid]
    t = replace(old, refused_since=old.refused_since if old.refused_since is not None else now,
                error_code=code or "Conflict", error_message=message)
    if timeout_seconds is not None and now - t.refused_since >= timeout_seconds:
        why = (f"instance {tid}: Azure refused the reimage request for "
               f"{_minutes(timeout_seconds)} ({t.error_code}: {message})"
               + (f"; last states {describe(old.last)}" if old.last else ""))
        t = replace(_fail(t, now, t.error_code or "Conflict", why), last=old.last)
        tracks = {**run.tracks, tid: t}
        return replace(run, tracks=tracks,
                       failure=run.failure or _beyond_max_failed(t, tracks, max_failed))
    return replace(run, tracks={**run.tracks, tid: t})


def record_start_failed(run: RunState, tid: str, now: float, code: str | None, message: str,
                        *, outcome_unknown: bool, max_failed: int = 0) -> RunState:
    """The request failed. When its outcome is unknown the instance may be reimaging: it is
    never asked again, and the run fails (max-failed or not: it may be out of service)."""
    old = run.tracks[tid]
    why = (f"instance {tid}: reimage request failed and its outcome is unknown, so it is not "
           f"sent again ({code or 'error'}: {message})" if outcome_unknown else
           f"instance {tid}: Azure refused the reimage ({code or 'error'}: {message})")
    t = _fail(old, now, code or "RequestFailed", why)
    tracks = {**run.tracks, tid: t}
    return replace(run, tracks=tracks, failure=run.failure or _beyond_max_failed(
        t, tracks, 0 if outcome_unknown else max_failed))


def record_locked(run: RunState, tid: str, code: str | None, message: str) -> RunState:
    """409 ScopeLocked on the reimage request: a resource lock protects it. Skipped (still
    serving, still in N0), with what Azure said kept as its error detail."""
    t = replace(run.tracks[tid], status=Status.SKIPPED, reason=LOCKED, refused_since=None,
                error_code=code or "ScopeLocked", error_message=message)
    return replace(run, tracks={**run.tracks, tid: t})


def record_gone(run: RunState, tid: str, now: float, plan: Plan) -> RunState:
    """404 on the reimage request: someone else deleted it since the last list."""
    old = run.tracks[tid]
    budget = run.budget.with_n0(run.budget.n0 - 1, ignore_availability=plan.ignore_availability) \
        if old.in_n0 else run.budget
    t = replace(old, status=Status.REMOVED, ended=now)
    return replace(run, tracks={**run.tracks, tid: t}, budget=budget)


def short(ids: list[str], limit: int = 10) -> str:
    """The first `limit` ids, then how many more."""
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _names(ids: list[str]) -> str:
    return short(sorted(set(ids), key=id_key))


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
