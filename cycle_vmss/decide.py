"""The rolling rules as one pure function: what one observation of the set means for the run.

`decide(observation, operations, run, plan, now) -> Decision` never sleeps and never calls Azure:
the engine observes (status of in-flight reimages first, then one list of the set), calls it, and
acts on the answer (starts the named reimages, or finishes). Everything is frozen data, so the
rules are tested with hand-built observations and replayed in virtual time.

Choices where SPEC section 4 leaves room (also in the README's rules section):
- Ready means SPEC section 3's score; an instance of this run counts as out of service from the
  moment its reimage is accepted until it is done (operation succeeded, then observed ready for
  `min-ready-seconds`), whatever the list shows in between.
- "Out of service" per zone counts the set's in-service instances that are not ready plus this
  run's in-flight ones; stopped and deallocated instances are not counted (they are not in N0).
- Unready in-scope instances are started first and cost no budget (they serve nothing), only a
  slot of the in-flight cap.
- An instance that became protected, stopped or deallocated before its turn is skipped then.
- A 409 (busy) or 429 on the reimage request means Azure did not accept it: the instance stays
  pending and is tried again on a later pass; if it is still refused `timeout-minutes` after the
  first refusal, the run fails naming it. Any other error whose outcome is unknown (5xx after
  the SDK's retries, a lost connection) fails the run and the instance is never asked again, so
  no instance is ever reimaged twice.
- Blocked: nothing of this run is in flight, an instance waits, and the budget forbids taking it
  out because of unready instances. Blocked for `timeout-minutes` fails the run.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from enum import Enum
from typing import Mapping

from .budget import ResolvedBudget
from .compute import Instance, Observation, OperationState, OperationStatus
from .health import describe, is_ready, states
from .settings import HealthSource


class Status(str, Enum):
    PENDING = "not-started"
    IN_FLIGHT = "in-flight"
    DONE = "reimaged"
    FAILED = "failed"
    REMOVED = "removed"
    SKIPPED = "skipped"


ACTIVE = (Status.PENDING, Status.IN_FLIGHT)


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
    refused_since: float | None = None  # first 409/429 on the reimage request
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


@dataclass(frozen=True)
class RunState:
    tracks: Mapping[str, Track]  # never mutated: each decision builds a new mapping
    budget: ResolvedBudget  # N0 and R_min follow removals
    surge_ids: frozenset[str] = frozenset()
    blocked_since: float | None = None
    failure: Failure | None = None

    def count(self, status: Status) -> int:
        return sum(1 for t in self.tracks.values() if t.status is status)

    def in_flight(self) -> list[str]:
        return [t.id for t in self.tracks.values() if t.status is Status.IN_FLIGHT]


class Outcome(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Decision:
    run: RunState
    start: tuple[str, ...] = ()  # reimage these now, in this order
    waiting: str = ""  # why nothing (more) starts now; "" when nothing waits
    outcome: Outcome | None = None  # the rolling phase is over
    changed: tuple[str, ...] = ()  # tracks whose status changed in this decision
    ready: int = 0  # ready instances counted against R_min
    next_check: float | None = None  # a min-ready window ends then: observe no later


def id_key(value: str | None) -> tuple:
    """Ids (and zone names) compare numerically when numeric: "2" < "10"."""
    value = value or ""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _zone(instance: Instance) -> str:
    return instance.zone or ""


def _in_zone_key(instance: Instance) -> tuple:
    return (instance.fault_domain if instance.fault_domain is not None else -1, id_key(instance.id))


def spread_order(candidates: list[Instance], zone_out: dict[str, int], window: int | None = None,
                 limit: int | None = None) -> list[Instance]:
    """Ready candidates in the order the rules take them: each next one from the zone with the
    fewest instances out of service (ties by zone name), within a zone by fault domain, then id.

    Taking one puts it out of service in its zone. With `window`, the projection for the plan:
    at most `window` are out at once and the oldest comes back first. With `limit`, only the
    first `limit` (a pass starts only a few, and a thousand-instance set is sorted no more)."""
    zone_out = dict(zone_out)
    by_zone: dict[str, list[Instance]] = {}
    for inst in candidates:
        by_zone.setdefault(_zone(inst), []).append(inst)
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
        z = min(groups, key=lambda name: (zone_out.get(name, 0), id_key(name)))
        inst = groups[z].pop()
        if not groups[z]:
            del groups[z]
        zone_out[z] = zone_out.get(z, 0) + 1
        taken.append(inst)
    return taken


def plan_order(instances: tuple[Instance, ...], reimage_ids: set[str], source: HealthSource,
               window: int) -> list[str]:
    """The order the run expects to take its instances in, as if each came back before the
    window moved on: unready first, then spread over zones."""
    unready = [i for i in instances if i.id in reimage_ids and not is_ready(i, source)]
    ready = [i for i in instances if i.id in reimage_ids and is_ready(i, source)]
    zone_out: dict[str, int] = {}
    for inst in instances:
        if inst.in_service_candidate and not is_ready(inst, source):
            zone_out[_zone(inst)] = zone_out.get(_zone(inst), 0) + 1
    first = sorted(unready, key=lambda i: (id_key(_zone(i)), _in_zone_key(i)))
    return [i.id for i in first] + [i.id for i in spread_order(ready, zone_out, window)]


def skip_reason(inst: Instance) -> str | None:
    """Why an instance in scope is never touched, or None."""
    if inst.protected:
        return "protected from scale-set actions"
    if inst.power in ("deallocated", "deallocating"):
        return "deallocated"
    if inst.power in ("stopped", "stopping"):
        return "stopped"
    return None


def _fail(track: Track, now: float, code: str, message: str) -> Track:
    return replace(track, status=Status.FAILED, ended=now, error_code=code, error_message=message)


def decide(observation: Observation, operations: Mapping[str, OperationStatus], run: RunState,
           plan: Plan, now: float) -> Decision:
    """One pass of the rules. `operations` holds the status of each in-flight reimage, read
    before `observation` was listed (so a ready instance in it is a *later* observation)."""
    seen = observation.by_id()
    source = plan.health_source
    updates: dict[str, Track] = {}
    budget = run.budget
    failure = run.failure
    next_check: float | None = None

    def fail(track: Track, code: str, message: str) -> Track:
        nonlocal failure
        t = _fail(track, now, code, message)
        if failure is None:
            failure = Failure(track.id, code, message, states(t.last) if t.last else None)
        return t

    for tid, track in run.tracks.items():
        inst = seen.get(tid)
        t = track if inst is None or inst == track.last else replace(track, last=inst)
        if t is track and track.status not in ACTIVE and inst is not None:
            continue  # finished or skipped, unchanged: the common case, kept cheap
        if inst is None:
            # Gone from the list: deleted by someone else. Finished records stay as they are.
            if track.status in ACTIVE or track.status is Status.SKIPPED:
                t = replace(t, status=Status.REMOVED, ended=now)
                if track.in_n0:
                    budget = budget.with_n0(budget.n0 - 1, ignore_availability=plan.ignore_availability)
        elif track.status is Status.IN_FLIGHT:
            t = _advance_in_flight(t, inst, operations.get(tid), plan, observation.time, now)
            if t.status is Status.FAILED and failure is None:
                failure = Failure(tid, t.error_code or "Failed", t.error_message or "", states(inst))
            elif t.status is Status.IN_FLIGHT and t.ready_since is not None:
                end = t.ready_since + plan.min_ready_seconds
                next_check = end if next_check is None else min(next_check, end)
        elif track.status is Status.PENDING:
            reason = skip_reason(inst)
            if reason:
                t = replace(t, status=Status.SKIPPED, reason=reason)
            elif (track.refused_since is not None
                  and now - track.refused_since >= plan.timeout_seconds):
                t = fail(t, track.error_code or "Conflict",
                         f"instance {tid}: Azure refused the reimage request for "
                         f"{_minutes(plan.timeout_seconds)} ({track.error_code}: "
                         f"{track.error_message}); last states {describe(inst)}")
        if t is not track:
            updates[tid] = t

    tracks = {**run.tracks, **updates} if updates else run.tracks
    changed = tuple(tid for tid, t in updates.items() if t.status is not run.tracks[tid].status)
    surge_ids = frozenset(i for i in run.surge_ids if i in seen)
    in_flight = [t for t in tracks.values() if t.status is Status.IN_FLIGHT]
    pending = [t for t in tracks.values() if t.status is Status.PENDING]

    # Ready instances count against R_min; this run's in-flight ones are out whatever the list
    # shows; stopped and deallocated ones are not in service and not counted per zone.
    ready_count = 0
    zone_out: dict[str, int] = {}
    unready_names: list[str] = []  # not ready and not ours: what spends the budget
    for inst in observation.instances:
        t = tracks.get(inst.id)
        ours = t is not None and t.status is Status.IN_FLIGHT
        ready = not ours and is_ready(inst, source)
        ready_count += ready
        if ours or (inst.in_service_candidate and not ready):
            zone_out[_zone(inst)] = zone_out.get(_zone(inst), 0) + 1
            if not ours:
                unready_names.append(inst.id)

    def answer(outcome: Outcome | None, waiting: str = "", start: tuple[str, ...] = (),
               blocked_since: float | None = None) -> Decision:
        new = RunState(tracks, budget, surge_ids, blocked_since, failure)
        return Decision(new, start, waiting, outcome, changed, ready_count, next_check)

    if failure is not None:
        if in_flight:
            return answer(None, f"the run failed ({failure.instance_id}: {failure.code}); no new "
                                f"reimage starts; watching {len(in_flight)} in flight: "
                                f"{_names([t.id for t in in_flight])}")
        return answer(Outcome.FAILED)
    if not pending:
        if in_flight:
            return answer(None, f"all started; {len(in_flight)} in flight: "
                                f"{_names([t.id for t in in_flight])}")
        return answer(Outcome.SUCCEEDED)

    slots = budget.max_in_flight - len(in_flight)
    present = [seen[t.id] for t in pending]
    unready = sorted((i for i in present if not is_ready(i, source)),
                     key=lambda i: (id_key(_zone(i)), _in_zone_key(i)))
    start: list[str] = []
    for inst in unready:
        if len(start) >= slots:
            break
        start.append(inst.id)
    waiting = ""
    if len(start) < slots:
        ready_candidates = [i for i in present if is_ready(i, source)]
        for inst in spread_order(ready_candidates, zone_out, limit=slots - len(start)):
            if len(start) >= slots:
                break
            if ready_count - 1 < budget.r_min:
                waiting = (f"budget: {ready_count} ready, R_min {budget.r_min}: taking out "
                           f"{inst.id} would leave {ready_count - 1} ready; not ready: "
                           f"{_names(unready_names + [t.id for t in in_flight] + start)}")
                break
            start.append(inst.id)
            ready_count -= 1
    if len(start) >= slots and len(start) < len(pending) and not waiting:
        waiting = (f"in-flight cap: {len(in_flight) + len(start)} of {budget.max_in_flight} "
                   f"reimages in flight")

    blocked_since = None
    if not start and not in_flight:
        # Nothing of ours is out, yet the next one may not go: other unready instances hold
        # the budget. Only then does the blocked clock run.
        blocked_since = run.blocked_since if run.blocked_since is not None else now
        if now - blocked_since >= plan.timeout_seconds:
            head = spread_order([i for i in present if is_ready(i, source)], zone_out, limit=1)[0]
            failure = Failure(head.id, "Blocked",
                              f"instance {head.id} could not start for "
                              f"{_minutes(plan.timeout_seconds)}: {ready_count} ready, R_min "
                              f"{budget.r_min}; unready instances {_names(unready_names) or '(none)'} "
                              f"keep the budget spent", states(head))
            return answer(Outcome.FAILED)
        waiting = (f"blocked for {_minutes(now - blocked_since)} (fails after "
                   f"{_minutes(plan.timeout_seconds)}): {waiting}")
    return answer(None, waiting, tuple(start), blocked_since)


def _advance_in_flight(t: Track, inst: Instance, status: OperationStatus | None, plan: Plan,
                       seen_at: float, now: float) -> Track:
    if status is not None and status.finished and t.op_state in (None, OperationState.IN_PROGRESS):
        t = replace(t, op_state=status.state, op_end=seen_at)
        if status.state is not OperationState.SUCCEEDED:
            code = status.error_code or status.state.value
            return _fail(t, now, code, f"instance {t.id}: reimage {status.state.value.lower()} "
                                       f"({code}: {status.error_message or 'no message'}); "
                                       f"last states {describe(inst)}")
    if t.op_state is OperationState.SUCCEEDED:
        if is_ready(inst, plan.health_source):
            since = t.ready_since if t.ready_since is not None else seen_at
            t = replace(t, ready_since=since)
            if seen_at - since >= plan.min_ready_seconds:
                return replace(t, status=Status.DONE, done=seen_at)
        elif t.ready_since is not None:
            t = replace(t, ready_since=None)  # it must stay ready for the whole window
    if t.started is not None and now - t.started >= plan.timeout_seconds:
        op = t.op_state.value if t.op_state else "InProgress"
        return _fail(t, now, "Timeout" if op != "Succeeded" else "NotReady",
                     f"instance {t.id}: not done within {_minutes(plan.timeout_seconds)} of its "
                     f"start (operation {op}); last states {describe(inst)}")
    return t


# --- what the engine records after acting: also pure -------------------------------------------


def record_started(run: RunState, tid: str, now: float) -> RunState:
    t = replace(run.tracks[tid], status=Status.IN_FLIGHT, started=now, op_state=OperationState.IN_PROGRESS,
                refused_since=None)
    return replace(run, tracks={**run.tracks, tid: t}, blocked_since=None)


def record_refused(run: RunState, tid: str, now: float, code: str | None, message: str) -> RunState:
    """Azure did not accept the request (409 busy, 429): still pending, tried again later."""
    old = run.tracks[tid]
    t = replace(old, refused_since=old.refused_since if old.refused_since is not None else now,
                error_code=code or "Conflict", error_message=message)
    return replace(run, tracks={**run.tracks, tid: t})


def record_start_failed(run: RunState, tid: str, now: float, code: str | None, message: str,
                        *, outcome_unknown: bool) -> RunState:
    """The request failed. When its outcome is unknown the instance may be reimaging: it is
    never asked again, and the run fails."""
    old = run.tracks[tid]
    why = (f"instance {tid}: reimage request failed and its outcome is unknown, so it is not "
           f"sent again ({code or 'error'}: {message})" if outcome_unknown else
           f"instance {tid}: Azure refused the reimage ({code or 'error'}: {message})")
    t = _fail(old, now, code or "RequestFailed", why)
    failure = run.failure or Failure(tid, t.error_code or "RequestFailed", why,
                                     states(old.last) if old.last else None)
    return replace(run, tracks={**run.tracks, tid: t}, failure=failure)


def record_gone(run: RunState, tid: str, now: float, plan: Plan) -> RunState:
    """404 on the reimage request: someone else deleted it since the last list."""
    old = run.tracks[tid]
    budget = run.budget.with_n0(run.budget.n0 - 1, ignore_availability=plan.ignore_availability) \
        if old.in_n0 else run.budget
    t = replace(old, status=Status.REMOVED, ended=now)
    return replace(run, tracks={**run.tracks, tid: t}, budget=budget)


def _names(ids: list[str], limit: int = 10) -> str:
    ids = sorted(set(ids), key=id_key)
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
