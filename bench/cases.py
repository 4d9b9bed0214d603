"""One benchmark case: the engine, then the two baselines, on the same durations and order.

Virtual-time cases run the real engine (`run_rollout`) over `SimulatorComputePort` against a
`Backend` on a `VirtualClock`; the fleet case runs several at once, one thread each, against the
sets of one `Subscription` on a `SharedVirtualClock`; the HTTPS case runs `runner.execute` (the
real adapter, the SDK, azure-identity) against `running_simulator` in real time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import asdict, dataclass

from cycle_vmss.clock import SharedVirtualClock, VirtualClock
from cycle_vmss.events import Event
from cycle_vmss.settings import Budget, HealthSource, Settings, parse_budget
from . import baselines, model, requests_log

RESOURCE_GROUP = "rg-bench"
SCALE_SET = "vmss-bench"
PAGE_SIZE = 100


def scenario_dict(durations: model.Durations, *, page_size: int = PAGE_SIZE) -> dict:
    """A zoned set whose instance i is out of service exactly d_i after its reimage starts:
    the operation runs reimage_i (boot 0) and the health probe turns healthy health_i later."""
    return {
        "resource_group": RESOURCE_GROUP, "scale_set_name": SCALE_SET, "page_size": page_size,
        "instances": [
            {"id": i, "timings": {"reimage_seconds": durations.reimage[i], "boot_seconds": 0,
                                  "health_seconds": durations.health[i]}}
            for i in durations.reimage
        ],
    }


def _new_backend(durations: model.Durations, clock):
    from cycle_vmss.simulator.backend import Backend
    from cycle_vmss.simulator.scenario import load_scenario
    return Backend(load_scenario(scenario_dict(durations)), clock)


def _op_times(history: dict) -> dict[str, tuple[float, float | None]]:
    """Reimage operation id -> (accepted at, final at), from the backend's own record."""
    times: dict[str, tuple[float, float | None]] = {}
    for record in history.get("instances", {}).values():
        for reimage in record.get("reimages", []):
            end = reimage.get("end")
            times[reimage["op"]] = (float(reimage["start"]), None if end is None else float(end))
    return times


class _Recorder:
    """Keeps `started` order and `done` times (the engine's view of when an instance was done)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, float]] = []
        self.done: dict[str, float] = {}
        self.failed: list[str] = []

    def event(self, event: Event) -> None:
        if event.kind == "started" and event.instance_id is not None:
            self.started.append((event.instance_id, event.time))
        elif event.kind == "done" and event.instance_id is not None:
            self.done[event.instance_id] = event.time
        elif event.kind == "failed" and event.instance_id is not None:
            self.failed.append(event.instance_id)


@contextlib.contextmanager
def timed_decide():
    """Times every call of the engine's decision function (patched where the engine looks it
    up, restored afterwards). Yields {"calls", "seconds"}."""
    from cycle_vmss import decide as decide_module
    from cycle_vmss import engine as engine_module
    stats = {"calls": 0, "seconds": 0.0}
    original = decide_module.decide

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            stats["seconds"] += time.perf_counter() - started
            stats["calls"] += 1

    patched = [m for m in (decide_module, engine_module) if getattr(m, "decide", None) is original]
    for m in patched:
        m.decide = timed
    try:
        yield stats
    finally:
        for m in patched:
            m.decide = original


@dataclass
class EngineRun:
    makespan: float
    duration: float
    order: list[str]
    result: str
    message: str
    requests: requests_log.RequestFigures
    economy: requests_log.Economy
    report_requests: dict
    wall: float
    decide_calls: int
    decide_seconds: float
    max_not_ready: int | None
    oos_max_error: float | None  # largest |simulated not-ready interval - d_i|


def _settings(backend, max_unavailable: str, poll: int, **extra) -> Settings:
    return Settings(resource_group=RESOURCE_GROUP,
                    scale_set_name=backend.scenario.scale_set_name,
                    subscription_id=backend.scenario.subscription_id,
                    max_unavailable=parse_budget(max_unavailable) or Budget(1),
                    poll_interval_seconds=poll, health_source=HealthSource.EXTENSION, **extra)


def planned_order(durations: model.Durations, max_unavailable: str, poll: int) -> list[str]:
    """The engine's planned order, from a dry run (no write call, no virtual time to speak of)."""
    from cycle_vmss.engine import run_rollout
    from cycle_vmss.simulator.inprocess import SimulatorComputePort
    clock = VirtualClock()
    backend = _new_backend(durations, clock)
    port = SimulatorComputePort(backend, RESOURCE_GROUP, SCALE_SET)
    report = run_rollout(_settings(backend, max_unavailable, poll, dry_run=True), port, clock=clock)
    return list((report.plan or {}).get("order") or durations.reimage)


def run_engine(durations: model.Durations, max_unavailable: str, poll: int) -> EngineRun:
    from cycle_vmss.engine import run_rollout
    from cycle_vmss.simulator.inprocess import SimulatorComputePort

    clock = VirtualClock()
    backend = _new_backend(durations, clock)
    port = SimulatorComputePort(backend, RESOURCE_GROUP, SCALE_SET)
    settings = _settings(backend, max_unavailable, poll)
    recorder = _Recorder()
    t0 = clock.now()
    wall0 = time.perf_counter()
    with timed_decide() as stats:
        report = run_rollout(settings, port, clock=clock, listener=recorder)
    wall = time.perf_counter() - wall0
    log = backend.requests()
    first_start = min((t for _, t in recorder.started), default=t0)
    history = backend.history()
    return EngineRun(
        makespan=max(recorder.done.values(), default=t0) - t0,
        duration=report.duration_seconds,
        order=[i for i, _ in recorder.started],
        result=report.result, message=report.message,
        requests=requests_log.figures(log),
        economy=requests_log.economy(log, len(durations.reimage), PAGE_SIZE, _op_times(history), first_start,
                                     poll=poll),
        report_requests=asdict(report.requests),
        wall=wall, decide_calls=stats["calls"], decide_seconds=stats["seconds"],
        max_not_ready=history.get("max_not_ready"),
        oos_max_error=_oos_error(history, durations),
    )


def _oos_error(history: dict, durations: model.Durations) -> float | None:
    """How far the simulator's not-ready intervals are from the d_i it was given."""
    worst = None
    for i, record in history.get("instances", {}).items():
        if i not in durations.reimage:
            continue
        total = sum(end - start for start, end in record["not_ready"] if end is not None)
        err = abs(total - durations.out_of_service(i))
        worst = err if worst is None else max(worst, err)
    return worst


@dataclass
class PolicyRun:
    makespan: float
    requests: requests_log.RequestFigures
    wall: float
    how: str = "simulated"


def run_batch(durations: model.Durations, order: list[str], k: int, poll: int) -> PolicyRun:
    from cycle_vmss.simulator.inprocess import SimulatorComputePort
    clock = VirtualClock()
    backend = _new_backend(durations, clock)
    port = SimulatorComputePort(backend, RESOURCE_GROUP, SCALE_SET)
    wall0 = time.perf_counter()
    run = baselines.run_batch(port, clock, order, k, poll)
    wall = time.perf_counter() - wall0
    return PolicyRun(run.makespan, requests_log.figures(backend.requests()), wall)


def run_script(durations: model.Durations, order: list[str]) -> PolicyRun:
    clock = VirtualClock()
    backend = _new_backend(durations, clock)
    wall0 = time.perf_counter()
    run = baselines.run_script(backend, RESOURCE_GROUP, SCALE_SET, backend.scenario.subscription_id,
                               clock, order, list(durations.reimage))
    wall = time.perf_counter() - wall0
    return PolicyRun(run.makespan, requests_log.figures(backend.requests()), wall)


def analytic_as_run(fig: model.PolicyFigures) -> PolicyRun:
    return PolicyRun(fig.makespan, requests_log.RequestFigures(
        reads=fig.reads, writes=fig.writes, max_reads_3min=fig.max_reads_3min), 0.0, fig.how)


# --- the real-time case over HTTPS --------------------------------------------------------------

@dataclass
class HttpsRun:
    instances: int
    max_unavailable: str
    k: int
    reimage_seconds: float
    poll: int
    wall: float
    makespan: float
    ideal: float
    result: str
    message: str
    requests: requests_log.RequestFigures
    report_requests: dict
    economy: requests_log.Economy
    order: list[str]


@contextlib.contextmanager
def _environment(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_https(instances: int, reimage_seconds: float, max_unavailable: str, poll: int, k: int) -> HttpsRun:
    from cycle_vmss.runner import execute
    from cycle_vmss.simulator.server import running_simulator

    scenario = {
        "resource_group": RESOURCE_GROUP, "scale_set_name": SCALE_SET, "instances": instances,
        "timings": {"reimage_seconds": reimage_seconds, "boot_seconds": 0, "health_seconds": 0},
    }
    with running_simulator(scenario) as sim:
        env = sim.env()
        settings = Settings(resource_group=RESOURCE_GROUP, scale_set_name=SCALE_SET,
                            subscription_id=env.get("AZURE_SUBSCRIPTION_ID"),
                            max_unavailable=parse_budget(max_unavailable) or Budget(1),
                            poll_interval_seconds=poll, health_source=HealthSource.EXTENSION)
        recorder = _Recorder()
        with _environment(env):
            wall0 = time.perf_counter()
            t0 = time.time()
            report = execute(settings, listener=recorder, cancelled=threading.Event())
            wall = time.perf_counter() - wall0
        log = sim.backend.requests()
        first_start = min((t for _, t in recorder.started), default=t0)
        op_times = _op_times(sim.backend.history())
    order = [i for i, _ in recorder.started]
    return HttpsRun(
        instances=instances, max_unavailable=max_unavailable, k=k, reimage_seconds=reimage_seconds,
        poll=poll, wall=wall, makespan=max(recorder.done.values(), default=t0) - t0,
        ideal=model.ideal_makespan([float(reimage_seconds)] * instances, k),
        result=report.result, message=report.message,
        requests=requests_log.figures(log), report_requests=asdict(report.requests),
        economy=requests_log.economy(log, instances, PAGE_SIZE, op_times, first_start, poll=poll,
                                     sdk_poller=True),
        order=order,
    )



# --- the fleet: rollouts on several scale sets of one subscription at once ------------------------

@dataclass
class FleetSetRun:
    scale_set: str
    seed: int
    result: str
    message: str
    makespan: float
    requests: requests_log.RequestFigures
    throttled_by: dict[str, int]  # 429s by the bucket their body names (faults.TokenBuckets)
    report_requests: dict


@dataclass
class FleetRun:
    compute_limits: str
    sets: list[FleetSetRun]
    wall: float
    # subscription-level bucket -> the fewest tokens it was left with (compute_limits "azure")
    lowest_subscription_tokens: dict[str, int]

    @property
    def makespan(self) -> float:
        return max(s.makespan for s in self.sets)


def fleet_set_name(index: int) -> str:
    return f"{SCALE_SET}-{index:02d}"


def run_fleet(durations: list[model.Durations], max_unavailable: str, poll: int,
              compute_limits: str) -> FleetRun:
    """One rollout per set, all started at the same virtual instant, each in its own thread
    with its own port; the sets share the subscription (and, with compute_limits "azure", its
    Compute buckets) and one virtual time."""
    from cycle_vmss.engine import run_rollout
    from cycle_vmss.simulator.inprocess import SimulatorComputePort
    from cycle_vmss.simulator.subscription import Subscription

    scenario = {"compute_limits": compute_limits, "scale_sets": [
        {**scenario_dict(d), "scale_set_name": fleet_set_name(j)} for j, d in enumerate(durations)]}
    clock = SharedVirtualClock()
    subscription = Subscription(scenario, clock)
    t0 = clock.now()
    outcomes: dict[int, tuple] = {}

    def roll(j: int, participant) -> None:
        backend = subscription.backends[j]
        recorder = _Recorder()
        with participant:
            try:
                port = SimulatorComputePort(backend, RESOURCE_GROUP, backend.scenario.scale_set_name,
                                            clock=participant)
                report = run_rollout(_settings(backend, max_unavailable, poll), port,
                                     clock=participant, listener=recorder)
                outcomes[j] = (report.result, report.message, recorder, asdict(report.requests))
            except Exception as exc:  # noqa: BLE001 - a crash is a figure of the run, not the bench's end
                outcomes[j] = ("crashed", f"{type(exc).__name__}: {exc}", recorder, {})

    threads = [threading.Thread(target=roll, args=(j, clock.join()), name=fleet_set_name(j))
               for j in range(len(durations))]
    wall0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    sets = []
    for j, backend in enumerate(subscription.backends):
        result, message, recorder, report_requests = outcomes[j]
        sets.append(FleetSetRun(
            scale_set=backend.scenario.scale_set_name, seed=durations[j].seed, result=result,
            message=message, makespan=max(recorder.done.values(), default=t0) - t0,
            requests=requests_log.figures(backend.requests()),
            throttled_by=dict(sorted(backend.faults.throttled_by.items())),
            report_requests=report_requests))
    lowest = {} if compute_limits != "azure" else {
        name: tokens for (name, _), tokens in sorted(subscription.token_buckets.lowest.items())
        if name.endswith("Subscription")}
    return FleetRun(compute_limits, sets, wall, lowest)
