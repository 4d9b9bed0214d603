"""Virtual-time rollouts: the real engine over `SimulatorComputePort` against the simulator's
`Backend` on a `VirtualClock`. Only the wall clock is replaced; every call goes through the
backend's state machine, and assertions read the backend's own `history()` and request log."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cycle_vmss.clock import VirtualClock
from cycle_vmss.engine import run_rollout
from cycle_vmss.events import Event
from cycle_vmss.settings import build_settings
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort

RG, NAME = "rg-demo", "vmss-demo"


def instance_id(mode: str, scenario_id: str) -> str:
    """The id the product uses for a scenario's instance: its instanceId on a Uniform set, its
    VM name `<set>_<id>` on a Flexible one (the simulator names Flexible VMs so)."""
    return scenario_id if mode == "Uniform" else f"{NAME}_{scenario_id}"


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def ids(self, kind: str) -> list[str]:
        return [e.instance_id for e in self.events if e.kind == kind]


@dataclass
class Rollout:
    report: dict
    backend: Backend
    events: Recorder
    clock: VirtualClock
    start: float
    port: SimulatorComputePort = field(repr=False, default=None)
    mode: str = "Uniform"

    @property
    def history(self) -> dict:
        return self.backend.history()

    def writes(self) -> list[dict]:
        return [r for r in self.backend.requests() if r["method"] != "GET"]

    def reimages(self, scenario_id: str) -> list[dict]:
        return self.history["instances"][self.id(scenario_id)]["reimages"]

    def id(self, scenario_id: str) -> str:
        return instance_id(self.mode, scenario_id)

    def ids(self, *scenario_ids: str) -> list[str]:
        return [self.id(i) for i in scenario_ids]


def rollout(scenario: dict, port_class=SimulatorComputePort, listener=None, cancelled=None,
            mode: str | None = None, commands=None, **raw: str) -> Rollout:
    """Run the engine once: `scenario` for the simulator (on a set of orchestration `mode` when
    given), `raw` settings as a user types them."""
    if mode is not None:
        scenario = {**scenario, "orchestration_mode": mode}
    mode = scenario.get("orchestration_mode", "Uniform")
    clock = VirtualClock()
    backend = Backend(scenario, clock)
    raw.setdefault("resource_group", RG)
    raw.setdefault("scale_set_name", NAME)
    settings = build_settings({k: str(v) for k, v in raw.items()})
    port = port_class(backend, settings.resource_group, settings.scale_set_name)
    recorder = Recorder()
    start = clock.now()

    class Both:
        def event(self, e):
            recorder.event(e)
            if listener is not None:
                listener(e)

    runner = {} if commands is None else {"commands": commands(clock)}  # clock -> CommandRunner
    report = run_rollout(settings, port, clock=clock, listener=Both(), cancelled=cancelled, **runner)
    return Rollout(report.as_dict(), backend, recorder, clock, start, port, mode)


def assert_budget_kept(run: Rollout, r_min: int) -> None:
    """From the simulator's record: every ready instance taken out left >= R_min others ready,
    and no instance was reimaged twice (but once more after a preemption) or by a whole-set
    call."""
    h = run.history
    for takeout in h["takeouts"]:
        if takeout["was_ready"]:
            assert takeout["others_ready"] >= r_min, takeout
    assert h["whole_set_reimages"] == 0
    for instance_id, record in h["instances"].items():
        earlier = [r["status"] for r in record["reimages"][:-1]]
        assert earlier in ([], ["Canceled"]), (instance_id, record["reimages"])


@pytest.fixture
def roll():
    return rollout
