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

import functools
import heapq
from dataclasses import dataclass, field, replace
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
LOCKED = "locked"  # skip reason: a resource lock refused the reimage (409 ScopeLocked)
STANDBY = "in standby pool"
_NOT_SERVING = ("deallocated", "deallocating", "stopped", "stopping")  # skip_reason's power states


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
class _Census:
    """What one list says about the budget, given which instances are ours in flight."""

    instances: tuple[Instance, ...]  # the list it was counted from (compared by identity)
    ours: frozenset[str]
    source: HealthSource
    seen: dict[str, Instance]
    ready: int
    zone_out: dict[str, int]
    unready: frozenset[str]  # not ready and not ours: what spends the budget


@dataclass(frozen=True)
class _Index:
    """A tracks mapping by status, built once per mapping (it has a thousand entries)."""

    by_status: dict[Status, list[str]]  # ids, in the mapping's order
    watch: tuple[str, ...]  # in flight, or pending and refused: an unchanged list changes only these

    @staticmethod
    def of(tracks: Mapping[str, Track]) -> "_Index":
        by_status: dict[Status, list[str]] = {}
        watch = []
        for t in tracks.values():
            by_status.setdefault(t.status, []).append(t.id)
            if t.status is Status.IN_FLIGHT or (t.status is Status.PENDING
                                                 and t.refused_since is not None):
                watch.append(t.id)
        return _Index(by_status, tuple(watch))


@dataclass(frozen=True)
class RunState:
    tracks: Mapping[str, Track]  # never mutated: each decision builds a new mapping
    budget: ResolvedBudget  # N0 and R_min follow removals
    surge_ids: frozenset[str] = frozenset()
    blocked_since: float | None = None
    failure: Failure | None = None
    # The last decision's list and its count (derived data, not state): when the next list is
    # the very same object, a pass costs what the in-flight instances cost, not the whole set.
    census: _Census | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def index(self) -> _Index:
        return _Index.of(self.tracks)

    def count(self, status: Status) -> int:
        return len(self.index.by_status.get(status, ()))

    def in_flight(self) -> list[str]:
        return list(self.index.by_status.get(Status.IN_FLIGHT, ()))


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


@functools.lru_cache(maxsize=1 << 16)  # the same ids are ordered on every pass
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
    if inst.standby:
        return STANDBY
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
    source = plan.health_source
    # Against the last decision's list: the instances whose objects differ (the in-process port
    # hands out the same object for an unchanged instance, and the same tuple for an unchanged
    # list). Every other track already holds its instance, so only in-flight and refused ones
    # can change, with time or an operation's status. None: compare everything.
    # (tests/engine/test_decide.py checks this path against the full one.)
    moved = _moved(run.census, observation.instances)
    if moved is None:
        seen = observation.by_id()
        todo = run.tracks.items()
    else:
        seen = run.census.seen
        if moved:
            seen = {**seen, **{i.id: i for i in moved}}
        ids = dict.fromkeys(run.index.watch)
        ids.update(dict.fromkeys(i.id for i in moved if i.id in run.tracks))
        todo = [(tid, run.tracks[tid]) for tid in ids]
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

    for tid, track in todo:
        inst = seen.get(tid)
        # `is` first: the in-process port hands out the same object for an unchanged instance
        t = (track if inst is None or inst is track.last or inst == track.last
             else replace(track, last=inst))
        if t is track and inst is not None:
            if track.status not in ACTIVE:
                continue  # finished or skipped, unchanged: the common case, kept cheap
            if (track.status is Status.PENDING and track.refused_since is None
                    and not inst.protected and not inst.standby
                    and inst.power not in _NOT_SERVING):
                continue  # waiting its turn, unchanged, nothing to skip it for (skip_reason)
        if inst is None or (inst.provisioning == "deleting" and track.status in ACTIVE):
            # Gone from the list, or on its way out: deleted by someone else (whose delete
            # cancels our reimage: removed, not failed). Finished records stay as they are.
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
            # A refused instance is asked again; `record_refused` fails it when Azure still
            # refuses it `timeout-minutes` after the first time (time it spent unasked, behind
            # the budget or slow passes, is not held against it).
        if t is not track:
            updates[tid] = t

    tracks = {**run.tracks, **updates} if updates else run.tracks
    changed = tuple(tid for tid, t in updates.items() if t.status is not run.tracks[tid].status)
    surge_ids = frozenset(i for i in run.surge_ids if i in seen)
    # The index depends only on each track's status and refusal, which `changed` covers here.
    index = run.index if not changed else _Index.of(tracks)
    in_flight = [tracks[i] for i in index.by_status.get(Status.IN_FLIGHT, ())]
    pending = index.by_status.get(Status.PENDING, [])  # ids: a thousand are not looked up
    ready_test = _ready_test(source)
    ours = frozenset(t.id for t in in_flight)
    if moved is None or run.census.source is not source:
        census = _count(observation.instances, seen, ours, source, ready_test)
    else:
        census = _recount(run.census, observation.instances, seen, moved, ours, ready_test)
    ready_count, zone_out, unready_names = census.ready, census.zone_out, list(census.unready)

    def answer(outcome: Outcome | None, waiting: str = "", start: tuple[str, ...] = (),
               blocked_since: float | None = None) -> Decision:
        new = RunState(tracks, budget, surge_ids, blocked_since, failure, census)
        new.__dict__["index"] = index  # the cached_property's slot: `index` is of `tracks`
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
    start: list[str] = []
    present = [seen[i] for i in pending] if slots > 0 else []
    if slots > 0:  # with the cap full nothing below can start: a thousand pending cost nothing
        unready = sorted((i for i in present if not ready_test(i)),
                         key=lambda i: (id_key(_zone(i)), _in_zone_key(i)))
        for inst in unready:
            if len(start) >= slots:
                break
            start.append(inst.id)
    waiting = ""
    if len(start) < slots:
        ready_candidates = [i for i in present if ready_test(i)]
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

    # The refusal clock runs only while the instance is asked and refused pass after pass; one
    # not asked this pass (budget, cap) starts afresh when it is asked again.
    unasked = [i for i in pending if tracks[i].refused_since is not None and i not in start]
    if unasked:
        tracks = {**tracks, **{i: replace(tracks[i], refused_since=None) for i in unasked}}

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


def _moved(census: _Census | None, instances: tuple[Instance, ...]) -> list[Instance] | None:
    """The instances of `instances` that are not the very objects of the census's list at the
    same place; None when there is no census or an instance came, went or moved."""
    if census is None:
        return None
    old = census.instances
    if old is instances:
        return []
    if len(old) != len(instances):
        return None
    moved = []
    for a, b in zip(old, instances):
        if a is not b:
            if a.id != b.id:
                return None
            moved.append(b)
    return moved


def _count(instances: tuple[Instance, ...], seen: dict[str, Instance], ours: frozenset[str],
           source: HealthSource, ready_test) -> _Census:
    """Ready instances count against R_min; this run's in-flight ones are out whatever the
    list shows; stopped and deallocated ones are not in service and not counted per zone."""
    ready = 0
    zone_out: dict[str, int] = {}
    unready: set[str] = set()
    for inst in instances:
        r, zone, is_unready = _share(inst, inst.id in ours, ready_test)
        ready += r
        if zone is not None:
            zone_out[zone] = zone_out.get(zone, 0) + 1
        if is_unready:
            unready.add(inst.id)
    return _Census(instances, ours, source, seen, ready, zone_out, frozenset(unready))


def _share(inst: Instance, ours: bool, ready_test) -> tuple[int, str | None, bool]:
    """One instance's part of the count: (ready, zone it is out of service in, spends budget)."""
    if ours:
        return 0, _zone(inst), False
    if inst.standby:  # parked in a standby pool: serves nothing, whatever its states say
        return 0, None, False
    if ready_test(inst):
        return 1, None, False
    if inst.in_service_candidate:
        return 0, _zone(inst), True
    return 0, None, False


def _recount(old: _Census, instances: tuple[Instance, ...], seen: dict[str, Instance],
             moved: list[Instance], ours: frozenset[str], ready_test) -> _Census:
    """`_count` from the last count: only the moved instances and those that became (or
    stopped being) ours are counted again."""
    touched = {i.id for i in moved} | (ours ^ old.ours)
    if not touched:
        return old if old.instances is instances else replace(old, instances=instances, seen=seen)
    ready, zone_out, unready = old.ready, dict(old.zone_out), set(old.unready)
    for tid in touched:
        for inst, mine, sign in ((old.seen.get(tid), tid in old.ours, -1),
                                 (seen.get(tid), tid in ours, 1)):
            if inst is None:
                continue
            r, zone, is_unready = _share(inst, mine, ready_test)
            ready += sign * r
            if zone is not None:
                zone_out[zone] = zone_out.get(zone, 0) + sign
                if not zone_out[zone]:
                    del zone_out[zone]
            if is_unready:
                (unready.add if sign > 0 else unready.discard)(tid)
    return _Census(instances, ours, old.source, seen, ready, zone_out, frozenset(unready))


def _ready_test(source: HealthSource):
    """`health.is_ready` for one health source as a single expression: it runs for every
    instance of the set on every pass (tests/engine/test_decide.py checks they agree)."""
    if source is HealthSource.NONE:
        return lambda i: i.provisioning == "succeeded" and i.power == "running"
    return lambda i: i.provisioning == "succeeded" and i.power == "running" and i.health == "healthy"


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


# --- whether a pass needs the list ---------------------------------------------------------------

LIST_AT_LEAST_EVERY = 300.0  # seconds: a long wait still refreshes states and the ready count


def needs_list(run: RunState, operations: Mapping[str, OperationStatus], plan: Plan, now: float,
               listed_at: float | None) -> bool:
    """Whether this pass must list the set, or may stop at the in-flight operations' statuses
    (one read each instead of every page of the set).

    A list can change what the rules do only when a reimage could start (a free in-flight slot
    and an instance waiting, in a run that has not failed), when one of ours has finished or
    waits to be seen ready, when a start has not been observed yet, or when a timeout is due.
    Otherwise the answer would be "wait", so the list is skipped, except once every
    `LIST_AT_LEAST_EVERY` seconds. `listed_at` is when the last list was taken (None: never)."""
    if listed_at is None or now - listed_at >= LIST_AT_LEAST_EVERY:
        return True
    by_status = run.index.by_status
    in_flight = by_status.get(Status.IN_FLIGHT, ())
    if not in_flight:
        return True  # no operation to ask: only a list tells anything
    for tid in in_flight:
        t = run.tracks[tid]
        status = operations.get(tid)
        if (t.op_state is not OperationState.IN_PROGRESS  # succeeded: to be seen ready
                or (status is not None and status.finished)
                or t.started is None or t.started >= listed_at  # its start not seen yet
                or now - t.started >= plan.timeout_seconds):
            return True
    for tid in run.index.watch:
        t = run.tracks[tid]
        if (t.status is Status.PENDING and t.refused_since is not None
                and now - t.refused_since >= plan.timeout_seconds):
            return True
    pending = by_status.get(Status.PENDING)
    return run.failure is None and bool(pending) and len(in_flight) < run.budget.max_in_flight


# --- what the engine records after acting: also pure -------------------------------------------


def record_started(run: RunState, tid: str, now: float) -> RunState:
    t = replace(run.tracks[tid], status=Status.IN_FLIGHT, started=now, op_state=OperationState.IN_PROGRESS,
                refused_since=None)
    return replace(run, tracks={**run.tracks, tid: t}, blocked_since=None)


def record_refused(run: RunState, tid: str, now: float, code: str | None, message: str, *,
                   timeout_seconds: float | None = None) -> RunState:
    """Azure did not accept the request (409 busy, 429): still pending, tried again later; once
    it is refused again `timeout_seconds` after the first refusal, the run fails naming it."""
    old = run.tracks[tid]
    t = replace(old, refused_since=old.refused_since if old.refused_since is not None else now,
                error_code=code or "Conflict", error_message=message)
    if timeout_seconds is not None and now - t.refused_since >= timeout_seconds:
        why = (f"instance {tid}: Azure refused the reimage request for "
               f"{_minutes(timeout_seconds)} ({t.error_code}: {message})"
               + (f"; last states {describe(old.last)}" if old.last else ""))
        t = _fail(t, now, t.error_code or "Conflict", why)
        failure = run.failure or Failure(tid, t.error_code or "Conflict", why,
                                         states(old.last) if old.last else None)
        return replace(run, tracks={**run.tracks, tid: t}, failure=failure)
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


def _names(ids: list[str], limit: int = 10) -> str:
    ids = sorted(set(ids), key=id_key)
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
