"""Randomized fault runs in virtual time: the real engine over `SimulatorComputePort` against the
simulator's `Backend` on a `VirtualClock`, for random sets (1 to 60 instances, zoned or not),
budgets and surges (counts and percentages), timings and faults; after every run the five
invariants of issue 6 and the zone rule of issue 17 are checked from the simulator's own record
(`invariants.check`).

Run more examples while hunting: HYPOTHESIS_PROFILE=explore (see conftest.py). Every failure
found is kept below as an `@example`, with the fix it led to.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import example, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cycle_vmss.clock import VirtualClock
from cycle_vmss.compute import OperationState, OperationStatus
from cycle_vmss.engine import run_rollout
from cycle_vmss.hooks import FAILED_CODES, PRE, Command
from cycle_vmss.settings import build_settings
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort

from .invariants import Case, check

RG, NAME = "rg-demo", "vmss-demo"
TRAITS = ("stopped", "deallocated", "protected", "fail", "never-healthy", "flap", "preempted",
          "unhealthy", "unknown", "slow")
STATS: Counter = Counter()  # what the examples covered, checked and printed after the property
TALLIED_TRAITS = ("fail", "never-healthy", "flap", "preempted", "stopped", "deallocated", "protected",
                  "unhealthy", "unknown")


def _budget(draw, n: int, *, surge: bool) -> str:
    if draw(st.booleans()):
        return f"{draw(st.integers(0, 50 if surge else 100))}%"
    return str(draw(st.integers(0, 3 if surge else n + 1)))


@st.composite
def cases(draw) -> Case:
    n = draw(st.integers(1, 60))
    base, step = draw(st.sampled_from([(0, 1), (0, 1), (0, 1), (3, 2), (10, 7)]))
    ids = [str(base + i * step) for i in range(n)]
    zones = ["1", "2", "3"] if draw(st.booleans()) else []
    uneven = draw(st.booleans())  # a zone drawn per instance, not round-robin
    extension = draw(st.sampled_from([True, True, True, False]))
    timings = {"reimage_seconds": draw(st.integers(1, 60)), "boot_seconds": draw(st.integers(0, 20)),
               "health_seconds": draw(st.integers(0, 20)), "create_seconds": draw(st.integers(1, 60)),
               "delete_seconds": draw(st.integers(1, 20)),
               "stale_health_seconds": draw(st.sampled_from([0, 0, 5, 30, 120]))}
    specials = dict(draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(TRAITS)), max_size=6)))
    instances = []
    for i, iid in enumerate(ids):
        spec: dict = {"id": iid}
        if zones:
            spec["zone"] = draw(st.sampled_from(zones)) if uneven else zones[i % 3]
        trait = specials.get(iid)
        if trait in ("stopped", "deallocated"):
            spec["power"] = trait
        elif trait == "protected":
            spec["protect_from_scale_set_actions"] = True
        elif trait in ("fail", "never-healthy", "flap", "preempted"):
            spec["on_reimage"] = trait
        elif trait in ("unhealthy", "unknown"):
            spec["health"] = trait
        elif trait == "slow":
            spec["timings"] = {"reimage_seconds": draw(st.integers(60, 900))}
        instances.append(spec)

    events = []
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, 900))
        kind = draw(st.sampled_from(["health", "health", "delete", "add", "preempt"]))
        if kind == "health":
            event = {"at_seconds": at, "instance": draw(st.sampled_from(ids)),
                     "health": draw(st.sampled_from(["unhealthy", "unknown", "initializing"]))}
            lasting = draw(st.sampled_from([None, 5, 30, 120, 600]))
            if lasting is not None:
                event["for_seconds"] = lasting
        elif kind == "delete":
            event = {"at_seconds": at, "delete_instance": draw(st.sampled_from(ids))}
        elif kind == "preempt":
            event = {"at_seconds": at, "preempt_operation": draw(st.sampled_from(ids))}
        else:
            event = {"at_seconds": at, "add_instances": draw(st.integers(1, 2))}
        events.append(event)

    faults = {"seed": draw(st.integers(0, 2 ** 16)),
              # Azure's Retry-After runs from seconds to 20 minutes; a long one is waited in the
              # engine (virtual time), never inside an SDK call.
              "retry_after_seconds": draw(st.one_of(st.integers(1, 30), st.integers(1, 30),
                                                    st.integers(1, 30), st.sampled_from([60, 300, 1200]))),
              "throttle_reads_every": draw(st.sampled_from([0, 0, 3, 7, 20])),
              "throttle_writes_every": draw(st.sampled_from([0, 0, 2, 3, 5])),
              "server_error_rate": draw(st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.1]))}
    conflict = draw(st.sampled_from(["none", "count", "ids"]))
    if conflict == "count":
        faults["conflict_first_reimage"] = draw(st.integers(1, 5))
    elif conflict == "ids":
        faults["conflict_first_reimage"] = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4))
    page_size = draw(st.sampled_from([100, 100, 7, 25]))
    scenario = {"instances": instances, "zones": zones, "health_extension": extension,
                "timings": timings, "events": events, "faults": faults, "page_size": page_size,
                "overprovision": draw(st.booleans()), "reuse_instance_ids": draw(st.booleans()),
                "compute_limits": draw(st.sampled_from(["none", "none", "azure"]))}
    if draw(st.integers(0, 2)) == 0:
        scenario["automatic_repairs"] = {"grace_minutes": draw(st.sampled_from([1, 5, 10, 30])),
                                         "action": draw(st.sampled_from(["Replace", "Reimage", "Restart"]))}

    raw = {"resource_group": RG, "scale_set_name": NAME,
           "max_unavailable": _budget(draw, n, surge=False), "max_surge": _budget(draw, n, surge=True),
           "timeout_minutes": str(draw(st.integers(1, 30))),
           "poll_interval_seconds": str(draw(st.integers(1, 60))),
           "min_ready_seconds": str(draw(st.sampled_from([0, 0, 5, 30, 120]))),
           "health_source": draw(st.sampled_from(["auto", "extension"])) if extension else "none",
           "ignore_initial_health": draw(st.sampled_from(["false", "true"])),
           "ignore_availability": draw(st.sampled_from(["false", "false", "false", "true"])),
           "reimage_all": draw(st.sampled_from(["false", "true"])),
           "max_failed": draw(st.sampled_from(["0", "0", "1", "3", "10%"]))}
    if raw["max_unavailable"] == "0" and raw["max_surge"] == "0":
        raw["max_surge"] = "1"  # both written 0 is bad input (the bad-input table covers it)
    gate = None
    if draw(st.integers(0, 3)) == 0:  # gate-url refuses for a while, once or twice
        gate = tuple(sorted((at, at + draw(st.integers(5, 400)))
                            for at in draw(st.lists(st.integers(0, 900), min_size=1, max_size=2))))
    commands = None
    if draw(st.integers(0, 3)) == 0:  # pre-reimage-command and/or post-ready-command
        commands = {"pre": draw(st.booleans()), "post": draw(st.booleans()),
                    "seconds": draw(st.sampled_from([0, 5, 60, 300])),
                    "fail": frozenset(draw(st.lists(st.sampled_from(ids), max_size=2)))}
        commands["pre"] = commands["pre"] or not commands["post"]
        for which in ("pre", "post"):
            if commands[which]:
                raw[f"{which}_{'reimage' if which == 'pre' else 'ready'}_command"] = f"{which} (virtual)"
    if draw(st.integers(0, 3)) == 0:
        raw["instance_ids"] = " ".join(draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n, unique=True)))
    return Case(scenario, raw, gate, commands)


class ScheduledGate:
    """gate-url in virtual time: 503 inside the case's intervals, else 200; each answer kept."""

    def __init__(self, clock: VirtualClock, closed: tuple[tuple[int, int], ...]) -> None:
        self.clock, self.t0, self.closed = clock, clock.now(), closed
        self.answers: list[tuple[float, bool]] = []  # (time, open)

    def ask(self) -> str | None:
        now = self.clock.now()
        is_open = not any(a <= now - self.t0 < b for a, b in self.closed)
        self.answers.append((now, is_open))
        return None if is_open else "answered HTTP 503 Service Unavailable"


class VirtualCommand(Command):
    """pre-reimage-command or post-ready-command in virtual time: it takes the case's seconds,
    then exits 0, or 1 for the case's failing instances."""

    def __init__(self, clock: VirtualClock, which: str, instance_id: str, case: Case) -> None:
        self.clock, self.which, self.instance_id = clock, which, instance_id
        self.started = clock.now()
        self.ends = self.started + case.commands["seconds"]
        self.fails = instance_id in case.commands["fail"]

    def status(self) -> OperationStatus:
        if self.clock.now() < self.ends:
            return OperationStatus(OperationState.IN_PROGRESS)
        if self.fails:
            return OperationStatus(OperationState.FAILED, FAILED_CODES[self.which],
                                   f"{self.which} exited 1; last lines: (none)")
        return OperationStatus(OperationState.SUCCEEDED)

    def add_done_callback(self, callback) -> None:
        pass  # its end is learnt from status()


def run_case(case: Case):
    clock = VirtualClock()
    backend = Backend(case.scenario, clock)
    settings = build_settings(case.raw)
    port = SimulatorComputePort(backend, RG, NAME)
    gate = ScheduledGate(clock, case.gate_closed) if case.gate_closed else None
    ran: list[VirtualCommand] = []

    def command(which, _command, env, _timeout):
        ran.append(VirtualCommand(clock, which, env["CYCLE_VMSS_HOOK_INSTANCE_ID"], case))
        return ran[-1]
    report = run_rollout(settings, port, clock=clock, gate=gate, commands=command).as_dict()
    if ran:
        _check_commands(ran, backend)
        STATS["command failures"] += sum(c.fails and c.clock.now() >= c.ends for c in ran)
    # The last pre-command of each instance: the engine took it out then.
    backend.decided = {c.instance_id: c.started for c in ran if c.which == PRE}
    if gate is not None:
        STATS["gate refusals"] += sum(not is_open for _, is_open in gate.answers)
        _check_gate(gate, backend, [c.started for c in ran if c.which == PRE])
    return backend, report


def _check_commands(ran: list[VirtualCommand], backend) -> None:
    """8. An instance whose pre-reimage-command failed was never asked to reimage."""
    history = backend.history()["instances"]
    for command in ran:
        if command.which == PRE and command.fails and command.clock.now() >= command.ends:
            assert not history[command.instance_id]["reimages"], (
                f"invariant 8: instance {command.instance_id} reimaged after its {PRE} failed")


def _check_gate(gate: ScheduledGate, backend, pre_starts: list[float]) -> None:
    """7. No instance was started (its reimage asked, or its pre-reimage-command begun: its
    reimage then follows the command, gate or not) unless the gate's last answer was a 2xx."""
    starts = pre_starts or [r["time"] for r in backend.requests() if r["method"] == "POST"
                            and r["path"].endswith(("/reimage", "/reimageall"))]
    for start in starts:
        asked = [is_open for t, is_open in gate.answers if t <= start]
        assert asked and asked[-1], f"invariant 7: a start at {start:.0f} while the gate refused"


def _tally(case: Case, backend, report: dict) -> None:
    STATS["examples"] += 1
    STATS[f"result {report['result']}"] += 1
    STATS["instances"] += len(case.scenario["instances"])
    STATS["throttled (429)"] += backend.throttled
    STATS["server errors (5xx)"] += backend.server_errors
    STATS["409 on a first reimage"] += backend.conflicts
    STATS["stale health"] += bool(case.scenario["timings"].get("stale_health_seconds"))
    faults = case.scenario.get("faults", {})
    every = faults.get("throttle_reads_every") or faults.get("throttle_writes_every")
    if every and faults.get("retry_after_seconds", 1) >= 60:
        STATS["long Retry-After (429)"] += backend.throttled
    elif not every and case.scenario.get("compute_limits") == "azure":
        STATS["token buckets (429)"] += backend.throttled
    specials = Counter(s.get("on_reimage") or s.get("power") or s.get("health")
                       or ("protected" if s.get("protect_from_scale_set_actions") else None)
                       for s in case.scenario["instances"])
    for trait in TALLIED_TRAITS:
        STATS[f"instances {trait}"] += specials[trait]
    history = backend.history()
    STATS["instances overprovisioned"] += sum(r.get("deleted_by") == "overprovision"
                                              for r in history["instances"].values())
    STATS["ids reused"] += sum("#" in key for key in history["instances"])
    for event in history["events"]:
        kind = next(k for k in ("health", "delete_instance", "add_instances", "preempt_operation")
                    if k in event).split("_")[0]
        STATS[f"events {kind}"] += 1
    STATS["reimages preempted"] += sum(r["status"] == "Canceled" for i in history["instances"].values()
                                       for r in i["reimages"])
    STATS["repairs"] += len(history["repairs"]["done"])
    STATS["failures tolerated"] += (report.get("failure") or {}).get("code") == "InstancesFailed"


FAST = {"reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0, "create_seconds": 1, "delete_seconds": 1}
BASE = {"resource_group": RG, "scale_set_name": NAME}


def found(instances: list[dict], raw: dict, *, gate_closed=None, commands=None, **scenario) -> Case:
    """A case as the draws make it, with their quiet defaults (no faults, no zones, one-second
    timings and polls, a one-minute timeout) except what is given: for a found failure kept as
    an `@example`, written as what sets it apart."""
    return Case(
        scenario={"instances": instances, "zones": [], "health_extension": True,
                  "timings": {**FAST, "stale_health_seconds": 0}, "events": [],
                  "faults": {"seed": 0, "retry_after_seconds": 1, "throttle_reads_every": 0,
                             "throttle_writes_every": 0, "server_error_rate": 0.0},
                  "page_size": 100, "overprovision": False, "reuse_instance_ids": False,
                  "compute_limits": "none",
                  "automatic_repairs": {"grace_minutes": 1, "action": "Replace"}, **scenario},
        raw={**BASE, "max_unavailable": "1", "max_surge": "0", "timeout_minutes": "1",
             "poll_interval_seconds": "1", "min_ready_seconds": "0", "health_source": "auto",
             "ignore_initial_health": "false", "ignore_availability": "false",
             "reimage_all": "false", "max_failed": "0", **raw},
        gate_closed=gate_closed, commands=commands)


# Regression examples: each reproduces a violation the suite found (see the README's table).
@example(Case(  # someone else added instances during a surged run: restore scaled them in
    scenario={"instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "zones": [],
              "health_extension": True, "faults": {},
              "timings": {"reimage_seconds": 10, "boot_seconds": 1, "health_seconds": 1,
                          "create_seconds": 5, "delete_seconds": 1},
              "events": [{"at_seconds": 30, "add_instances": 1}]},
    raw={"resource_group": RG, "scale_set_name": NAME, "max_unavailable": "0", "max_surge": "1",
         "poll_interval_seconds": "10"}))
@example(Case(  # others added an instance while the surge's were created: it was taken as ours
    scenario={"instances": [{"id": "0"}], "zones": [], "health_extension": True, "faults": {},
              "timings": {**FAST, "create_seconds": 1}, "events": [{"at_seconds": 1, "add_instances": 1}]},
    raw={**BASE, "max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "1", "timeout_minutes": "1"}))
@example(Case(  # the surge's capacity came from preflight's stale reading: the PATCH scaled in
    scenario={"instances": [{"id": "0"}, {"id": "1"}], "zones": [], "health_extension": True,
              "faults": {"throttle_reads_every": 3, "retry_after_seconds": 2}, "timings": FAST,
              "events": [{"at_seconds": 0, "instance": "0", "health": "unhealthy"},
                         {"at_seconds": 1, "add_instances": 2}, {"at_seconds": 0, "delete_instance": "0"}]},
    raw={**BASE, "max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "1", "timeout_minutes": "1"}))
@example(Case(  # an instance deleted by someone else during its reimage failed the run (Canceled)
    scenario={"instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "zones": [], "health_extension": True,
              "faults": {}, "timings": {**FAST, "reimage_seconds": 30, "delete_seconds": 10},
              "events": [{"at_seconds": 5, "delete_instance": "0"}]},
    raw={**BASE, "poll_interval_seconds": "2", "timeout_minutes": "5"}))
@example(Case(  # one 409, then slow throttled passes: "refused for 60 s" though asked only once
    scenario={"instances": [{"id": "0", "on_reimage": "never-healthy"}, {"id": "1", "on_reimage": "never-healthy"},
                            {"id": "2"}, {"id": "3", "on_reimage": "fail"},
                            {"id": "4", "timings": {"reimage_seconds": 348}}, {"id": "5"}, {"id": "6"}],
              "zones": [], "health_extension": True, "page_size": 7,
              "timings": {"reimage_seconds": 3, "boot_seconds": 11, "health_seconds": 7,
                          "create_seconds": 23, "delete_seconds": 19},
              "events": [{"at_seconds": 358, "instance": "3", "health": "unknown", "for_seconds": 30},
                         {"at_seconds": 397, "instance": "6", "health": "initializing", "for_seconds": 120},
                         {"at_seconds": 336, "delete_instance": "1"},
                         {"at_seconds": 394, "instance": "4", "health": "unknown", "for_seconds": 600}],
              "faults": {"seed": 65536, "retry_after_seconds": 26, "throttle_reads_every": 7,
                         "throttle_writes_every": 3, "server_error_rate": 0.02, "conflict_first_reimage": 5}},
    raw={**BASE, "max_unavailable": "100%", "max_surge": "28%", "timeout_minutes": "1",
         "poll_interval_seconds": "14", "ignore_availability": "true", "reimage_all": "true",
         "instance_ids": "1 0 4 6 2 5 3"}))
@example(Case(  # overprovisioned: the lowest new ids were taken as the surge, Azure's extras among them
    scenario={"instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "zones": [], "health_extension": True,
              "faults": {}, "timings": FAST, "events": [], "overprovision": True},
    raw={**BASE, "max_unavailable": "1", "max_surge": "2", "poll_interval_seconds": "1"}))
@example(Case(  # the surge's id went to someone else's new instance: restore deleted theirs
    scenario={"instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "zones": [], "health_extension": True,
              "faults": {}, "timings": {**FAST, "reimage_seconds": 30}, "reuse_instance_ids": True,
              "events": [{"at_seconds": 12, "delete_instance": "3"}, {"at_seconds": 14, "add_instances": 1}]},
    raw={**BASE, "max_unavailable": "1", "max_surge": "1", "poll_interval_seconds": "10"}))
@example(Case(  # a reimaged instance deleted by someone else stayed in N0: with max-unavailable 0, blocked
    scenario={"instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "zones": [], "health_extension": False,
              "timings": FAST, "events": [{"at_seconds": 4, "delete_instance": "0"}],
              "faults": {"seed": 0, "throttle_writes_every": 2}},
    raw={**BASE, "max_unavailable": "0", "max_surge": "1", "timeout_minutes": "1",
         "poll_interval_seconds": "1", "health_source": "none"}))
@example(Case(  # a 500 on a read after the surge's delete: restore failed, reporting the old capacity
    scenario={"instances": [{"id": "0", "timings": {"reimage_seconds": 60}}, *({"id": str(i)} for i in range(1, 24))],
              "zones": [], "health_extension": True,
              "timings": {**FAST, "reimage_seconds": 16, "delete_seconds": 13}, "events": [],
              "faults": {"seed": 65536, "server_error_rate": 0.1}, "overprovision": True},
    raw={**BASE, "max_unavailable": "0", "max_surge": "21%", "timeout_minutes": "1",
         "poll_interval_seconds": "15", "instance_ids": "0 1"}))
@example(Case(  # an in-scope instance under Azure's Reimage repair (stopping) was skipped as stopped
    scenario={"instances": [{"id": str(i)} for i in range(6)], "zones": [], "health_extension": True,
              "timings": {**FAST, "boot_seconds": 10, "health_seconds": 20}, "page_size": 100,
              "events": [{"at_seconds": 0, "delete_instance": "0"},
                         {"at_seconds": 1, "instance": "1", "health": "unhealthy"},
                         {"at_seconds": 1, "instance": "2", "health": "unhealthy"}],
              "faults": {"seed": 0}, "automatic_repairs": {"grace_minutes": 1, "action": "Reimage"}},
    raw={**BASE, "poll_interval_seconds": "1", "timeout_minutes": "1"}))
@example(Case(  # zone 2's only instance went while zone 1 still had five to give (issue 17)
    scenario={"instances": [{"id": str(i), "zone": "1"} for i in range(6)] + [{"id": "6", "zone": "2"}],
              "zones": ["1", "2", "3"], "health_extension": True, "faults": {}, "timings": FAST, "events": []},
    raw={**BASE, "max_unavailable": "15%", "max_surge": "1", "poll_interval_seconds": "1", "timeout_minutes": "1"}))
@example(Case(  # a 409 on instance 1 (zone 2): the pass went on as if zone 2 had given it, and
    # took zone 1's last ready instance
    scenario={"instances": [{"id": str(i), "zone": str(i % 3 + 1)} for i in range(22)],
              "zones": ["1", "2", "3"], "health_extension": True, "events": [], "page_size": 100,
              "timings": {**FAST, "reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0},
              "faults": {"seed": 0, "conflict_first_reimage": ["1"]}},
    raw={**BASE, "max_unavailable": "20", "max_surge": "2", "poll_interval_seconds": "1",
         "timeout_minutes": "1"}))
@example(Case(  # zone 2's only instance must wait while zone 1's 0, refused once (409), can go
    scenario={"instances": [{"id": "0", "zone": "1"}, {"id": "1", "zone": "2"},
                            *({"id": str(i), "zone": "1"} for i in range(2, 16))],
              "zones": ["1", "2", "3"], "health_extension": True, "events": [], "page_size": 100,
              "timings": FAST, "faults": {"seed": 0, "conflict_first_reimage": 1},
              "automatic_repairs": {"grace_minutes": 1, "action": "Replace"}},
    raw={**BASE, "max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "1",
         "timeout_minutes": "1", "instance_ids": "0 1"}))
@example(Case(  # instance 0, not yet reimaged, deleted by someone else from 10 s to 12 s: the
    # engine lowered N0 at 10 s, as it saw 0 deleting; the check lowered it only at 12 s
    scenario={"instances": [{"id": "0"}, {"id": "1"}], "zones": [], "health_extension": False,
              "events": [{"at_seconds": 0, "instance": "0", "health": "unhealthy"},
                         {"at_seconds": 10, "delete_instance": "0"}, {"at_seconds": 0, "add_instances": 1}],
              "faults": {"throttle_reads_every": 3, "throttle_writes_every": 2, "retry_after_seconds": 1,
                         "seed": 0},
              "timings": {**FAST, "delete_seconds": 2}},
    raw={**BASE, "max_unavailable": "0", "max_surge": "1", "timeout_minutes": "1",
         "poll_interval_seconds": "6", "health_source": "none"}))
@example(found(  # a 500 on suspending repairs (past the SDK's retries): refused, "nothing was
    # changed", though the suspend may have taken; now failed, and the repairs resumed
    [{"id": str(i), "zone": "1"} for i in range(6)],
    {"max_unavailable": "0", "max_surge": "1", "health_source": "none", "instance_ids": "0"},
    zones=["1", "2", "3"], health_extension=False,
    events=[{"at_seconds": 0, "instance": "0", "health": "unhealthy"},
            {"at_seconds": 0, "instance": "0", "health": "unhealthy"}],
    faults={"seed": 1, "retry_after_seconds": 1, "throttle_reads_every": 0,
            "throttle_writes_every": 2, "server_error_rate": 0.1},
    gate_closed=((0, 5),)))
@example(found(  # the surge's delete succeeded, its status poll throttled past the deadline:
    # the report said the capacity was still the surged one
    [{"id": "0"}, {"id": "1"}],
    {"max_unavailable": "0", "max_surge": "1", "timeout_minutes": "2", "poll_interval_seconds": "13",
     "instance_ids": "0"},
    events=[{"at_seconds": 52, "instance": "1", "health": "initializing", "for_seconds": 600},
            {"at_seconds": 39, "instance": "1", "health": "initializing", "for_seconds": 600}],
    faults={"seed": 6, "retry_after_seconds": 1200, "throttle_reads_every": 20,
            "throttle_writes_every": 5, "server_error_rate": 0.1},
    gate_closed=((0, 11),)))
@example(found(  # a pre-command begun while 0 was unready (free), its reimage asked once 0 was
    # healthy again: judged at the request, not at the decision, invariant 1 failed
    [{"id": "0"}, {"id": "1"}],
    {"max_unavailable": "0", "max_surge": "1", "poll_interval_seconds": "5",
     "health_source": "extension", "pre_reimage_command": "pre (virtual)", "instance_ids": "0"},
    events=[{"at_seconds": 0, "instance": "1", "health": "unhealthy"},
            {"at_seconds": 6, "instance": "0", "health": "initializing", "for_seconds": 5}],
    faults={"seed": 1, "retry_after_seconds": 4, "throttle_reads_every": 0,
            "throttle_writes_every": 3, "server_error_rate": 0.02},
    page_size=25, compute_limits="azure",
    automatic_repairs={"grace_minutes": 5, "action": "Restart"},
    commands={"pre": True, "post": False, "seconds": 5, "fail": frozenset()}))
@example(found(  # the first pass decided on preflight's list, though suspending the repairs had
    # waited a poll since: instance 1 had gone unhealthy, and 0 went out with none ready
    [{"id": "0"}, {"id": "1"}], {"poll_interval_seconds": "2"},
    events=[{"at_seconds": 1, "instance": "1", "health": "unhealthy"}],
    faults={"seed": 0, "retry_after_seconds": 1, "throttle_reads_every": 0,
            "throttle_writes_every": 2, "server_error_rate": 0.0}))
@example(found(  # 0 deleted by someone else, and the surge's new instance given its id: the
    # checker took that new 0 (none of the run's) for one the run could have taken from zone 1
    [{"id": "0", "zone": "1"}, {"id": "1", "zone": "2"}], {"max_unavailable": "0", "max_surge": "3"},
    zones=["1", "2", "3"], reuse_instance_ids=True,
    events=[{"at_seconds": 0, "delete_instance": "0"}]))
@example(found(  # someone else deletes 0 twice, the second time while its first delete ends: the
    # simulator began a second delete of it, and the checker found no instance 0 to charge it to
    [{"id": "0"}, {"id": "1"}], {"max_unavailable": "0", "max_surge": "1"},
    events=[{"at_seconds": 0, "delete_instance": "0"}, {"at_seconds": 1, "delete_instance": "0"}]))
@example(found(  # 0 (a 60 s reimage) timed out at 60 s and max-failed let the run go on: the
    # next reimage started while Azure still ran 0's, 2 in flight against a cap of 1
    [{"id": "0", "zone": "1", "timings": {"reimage_seconds": 60}}, {"id": "1", "zone": "1"},
     {"id": "2", "zone": "1"}], {"max_unavailable": "0", "max_surge": "1", "max_failed": "1"},
    zones=["1", "2", "3"], timings={**FAST, "boot_seconds": 1, "stale_health_seconds": 0},
    events=[{"at_seconds": 1, "instance": "0", "health": "unhealthy"},
            {"at_seconds": 1, "add_instances": 1},
            {"at_seconds": 1, "instance": "0", "health": "unhealthy"}]))
@example(found(  # a list throttled at its last page was resumed 1 s later; 8 went unhealthy
    # between its page and the decision, and the checker judged the pass by the list's last page
    [{"id": str(i), "zone": "1"} for i in range(29)],
    {"max_unavailable": "49%", "poll_interval_seconds": "7"}, zones=["1", "2", "3"], page_size=7,
    timings={**FAST, "reimage_seconds": 2, "stale_health_seconds": 0},
    faults={"seed": 0, "retry_after_seconds": 1, "throttle_reads_every": 20,
            "throttle_writes_every": 0, "server_error_rate": 0.1},
    events=[{"at_seconds": 1, "instance": "0", "health": "unhealthy"},
            {"at_seconds": 8, "instance": "8", "health": "unhealthy"},
            {"at_seconds": 10, "delete_instance": "0"}]))
@given(cases())
def keeps_the_invariants(case: Case):
    note(f"scenario={case.scenario!r}")
    note(f"raw={case.raw!r}, gate_closed={case.gate_closed!r}, commands={case.commands!r}")
    backend, report = run_case(case)
    note(f"result={report['result']}: {report['message']}")
    _tally(case, backend, report)
    check(case, backend, report, getattr(backend, "decided", None))


@pytest.mark.slow  # a thousand runs: 80 to 160 s alone, more beside the rest of the suite
# (the explore profile's 20000 runs take longer than CI's bound: no timeout there)
@pytest.mark.timeout(1200 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else 0)
def test_every_randomized_run_keeps_the_invariants(capsys):
    """The property over the profile's examples (1000 in CI), then what they covered: a suite
    whose draws stopped reaching a fault would pass while testing nothing, so each kind of fault
    and trait must have occurred."""
    STATS.clear()
    keeps_the_invariants()
    with capsys.disabled():
        print("\nrandomized runs: " + ", ".join(f"{k} {v}" for k, v in sorted(STATS.items())))
    assert STATS["examples"] >= hypothesis_settings.default.max_examples
    missing = [kind for kind in ("throttled (429)", "long Retry-After (429)", "token buckets (429)",
                                 "server errors (5xx)", "409 on a first reimage",
                                 "stale health", "events health", "events delete", "events add", "events preempt",
                                 "reimages preempted", "repairs", "instances overprovisioned",
                                 "ids reused", "failures tolerated", "gate refusals", "command failures",
                                 *(f"instances {trait}" for trait in TALLIED_TRAITS))
               if not STATS[kind]]
    assert not missing, f"no randomized run drew: {', '.join(missing)}"
