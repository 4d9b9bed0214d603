"""The budget table and a thousand-instance rollout, run by the engine in virtual time and
checked against the simulator's own record of what happened."""

from __future__ import annotations

import random
import time

import pytest

from bench.model import ideal_makespan
from cycle_vmss.budget import resolve_budget
from cycle_vmss.settings import parse_budget

from .conftest import assert_budget_kept, rollout
from .test_budget import ROWS


def ready_never_below(run, floor: int) -> None:
    """Replays the simulator's not-ready intervals: from the first reimage on, at least `floor`
    instances were ready at every instant (instances that existed then)."""
    h = run.history
    first = min(t["time"] for t in h["takeouts"])
    last = max(r["end"] for i in h["instances"].values() for r in i["reimages"])
    moments = sorted({first, last} | {t for i in h["instances"].values() for iv in i["not_ready"]
                                      for t in iv if t is not None and first <= t <= last})
    for t in moments:
        alive = [i for i in h["instances"].values()
                 if (i["created"] is None or i["created"] <= t) and (i["deleted"] is None or i["deleted"] > t)]
        unready = sum(1 for i in alive for a, b in i["not_ready"] if a <= t and (b is None or b > t))
        assert len(alive) - unready >= floor, (t - h["start"], len(alive), unready)


@pytest.mark.parametrize("n0, mu, ms, ignore, unavail, surge, auto, rmin, flight",
                         [r for r in ROWS if 1 <= r[0] <= 50],
                         ids=[f"N0={r[0]},mu={r[1]},ms={r[2]}{',ignore' if r[3] else ''}"
                              for r in ROWS if 1 <= r[0] <= 50])
def test_budget_table_rows_hold_in_a_real_rollout(n0, mu, ms, ignore, unavail, surge, auto, rmin, flight):
    run = rollout({"instances": n0}, max_unavailable=mu, max_surge=ms,
                  ignore_availability=str(ignore).lower())
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    plan = r["plan"]
    assert (plan["maxUnavailable"], plan["maxSurge"], plan["automaticSurge"], plan["rMin"],
            plan["maxInFlight"]) == (unavail, surge, auto, rmin, flight)
    h = run.history
    assert h["max_reimages_in_flight"] <= flight
    assert_budget_kept(run, rmin)
    ready_never_below(run, rmin)
    caps = [c["capacity"] for c in h["capacity"]]
    assert caps == ([n0, n0 + surge, n0] if surge else [n0])
    assert all(len(h["instances"][str(i)]["reimages"]) == 1 for i in range(n0))


def thousand(seed: int = 7) -> tuple[dict, dict[str, float]]:
    rng = random.Random(seed)
    instances, out = [], {}
    for i in range(1000):
        t = {"reimage_seconds": round(rng.uniform(240, 480), 3), "boot_seconds": round(rng.uniform(20, 60), 3),
             "health_seconds": round(rng.uniform(10, 90), 3)}
        instances.append({"id": str(i), "zone": str(i % 3 + 1), "fault_domain": i // 3 % 5, "timings": t})
        out[str(i)] = sum(t.values())
    return {"instances": instances, "page_size": 100}, out


POLL = 30  # seconds; the simulator builds every listed instance's ARM body, so passes cost wall time


def run_thousand(poll: int = POLL):
    scenario, durations = thousand()
    wall = time.perf_counter()
    run = rollout(scenario, max_unavailable="10%", max_surge="5%", poll_interval_seconds=str(poll))
    wall = time.perf_counter() - wall
    return run, durations, wall


def figures(run, durations) -> dict:
    order = [e.instance_id for e in run.events.of("started")]
    first_start = run.events.of("started")[0].time
    makespan = max(e.time for e in run.events.of("done")) - first_start
    lists = {q["time"] for q in run.backend.requests() if q["path"].endswith("/virtualMachines")}
    return {"makespan": makespan, "ideal": ideal_makespan([durations[i] for i in order], 150),
            "passes": len(lists), "run": run.clock.now() - run.start, **run.report["requests"]}


@pytest.mark.slow  # ~5-10 s of wall time, most of it the simulator building 120 000 ARM bodies
def test_a_thousand_instances_in_virtual_time():
    run, durations, wall = run_thousand()
    r = run.report
    assert r["result"] == "succeeded", r["message"]
    b = resolve_budget(1000, parse_budget("10%"), parse_budget("5%"), ignore_availability=False)
    assert (r["plan"]["rMin"], r["plan"]["maxInFlight"]) == (b.r_min, b.max_in_flight) == (900, 150)
    h = run.history
    assert h["max_reimages_in_flight"] == 150  # the window was used, and never exceeded
    assert h["max_not_ready"] <= 150
    assert_budget_kept(run, b.r_min)
    ready_never_below(run, b.r_min)
    assert all(len(h["instances"][str(i)]["reimages"]) == 1 for i in range(1000))
    assert [c["capacity"] for c in h["capacity"]] == [1000, 1050, 1000]
    assert r["capacity"] == {"before": 1000, "during": 1050, "after": 1000}
    f = figures(run, durations)
    # Against a sliding window of 150 with instant detection over the same order: each link of
    # the chain of about N/k instances may be seen up to one poll late.
    assert f["makespan"] <= f["ideal"] + (1000 // 150 + 2) * POLL, f
    # Economy: one (11-page) list per pass, passes only at the poll cadence.
    assert f["passes"] <= f["run"] / POLL + 3, f
    assert wall < 30, wall
