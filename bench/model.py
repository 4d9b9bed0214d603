"""The benchmark's arithmetic: seeded out-of-service times, the lower bound, the ideal schedule,
and closed forms of the two baseline policies (used where simulating them would cost too much
wall time, and checked against the simulated runs where both exist).

Everything here is a pure function of the durations `d` (seconds each instance is out of
service, in the order instances are started) and the budget `k`.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass

REIMAGE_RANGE = (300.0, 540.0)  # seconds the reimage operation runs
HEALTH_RANGE = (30.0, 120.0)  # seconds from the operation's end until the health probe says healthy


@dataclass(frozen=True)
class Durations:
    """Per instance id, the reimage time and the health delay; `out_of_service` is their sum."""

    seed: int
    reimage: dict[str, float]
    health: dict[str, float]

    def out_of_service(self, instance_id: str) -> float:
        return self.reimage[instance_id] + self.health[instance_id]

    def in_order(self, order: list[str]) -> list[float]:
        return [self.out_of_service(i) for i in order]

    def summary(self) -> dict:
        d = [self.out_of_service(i) for i in self.reimage]
        return {
            "count": len(d), "sum": round(sum(d), 3), "min": round(min(d), 3),
            "max": round(max(d), 3), "mean": round(statistics.fmean(d), 3),
            "model": f"reimage uniform{list(REIMAGE_RANGE)} s + health delay uniform{list(HEALTH_RANGE)} s, "
                     f"random.Random(seed).uniform drawn as (reimage, health) for instance ids 0..N-1 in turn",
        }


def draw_durations(n: int, seed: int) -> Durations:
    """Instance ids "0".."n-1"; the first n draws of one seed, so N=10 is a prefix of N=100."""
    rng = random.Random(seed)
    reimage, health = {}, {}
    for i in range(n):
        # not rounded: a duration on a poll boundary would make "seen at that poll" a float race
        reimage[str(i)] = rng.uniform(*REIMAGE_RANGE)
        health[str(i)] = rng.uniform(*HEALTH_RANGE)
    return Durations(seed, reimage, health)


def lower_bound(d: list[float], k: int) -> float:
    """No schedule with k slots beats the total work spread evenly, nor its longest job."""
    return max(sum(d) / k, max(d))


def ideal_makespan(d: list[float], k: int) -> float:
    """A sliding window of k with instant detection: each instance starts, in order, the moment
    a slot frees up (list scheduling on k identical slots)."""
    slots = [0.0] * min(k, len(d))
    heapq.heapify(slots)
    end = 0.0
    for dur in d:
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + dur)
        end = max(end, start + dur)
    return end


def _next_poll(elapsed: float, interval: float) -> float:
    """The first poll at a whole multiple of `interval` that sees something `elapsed` away."""
    return interval * math.ceil(elapsed / interval - 1e-9)


@dataclass(frozen=True)
class PolicyFigures:
    makespan: float
    reads: int
    writes: int
    max_reads_3min: int
    how: str  # "simulated" | "analytic"


def script_analytic(d: list[float], n_instances: int, poll: float = 15.0) -> PolicyFigures:
    """The original PowerShell script's policy in closed form: an initial health check (one
    instance-view GET per instance), then per instance one reimage and, every `poll` seconds
    after it, one instance-view GET per instance until every instance is ready."""
    reads, writes, t = n_instances, 0, 0.0
    poll_times = [0.0]
    for dur in d:
        writes += 1
        polls = max(1, round(_next_poll(dur, poll) / poll))
        poll_times.extend(t + poll * (j + 1) for j in range(polls))
        t += poll * polls
        reads += polls * n_instances
    return PolicyFigures(t, reads, writes, max_in_window(poll_times, 180.0) * n_instances, "analytic")


def batch_analytic(reimage: list[float], d: list[float], k: int, n_instances: int, page_size: int,
                   poll: float = 10.0) -> PolicyFigures:
    """The batch-synchronous policy in closed form: start k reimages, then every `poll` seconds one
    paged list plus one status GET per operation not yet seen finished, until the slowest of the
    batch is observed ready; then the next batch."""
    pages = max(1, math.ceil(n_instances / page_size))
    t, reads, writes = 0.0, 0, 0
    read_times: list[float] = []
    for b in range(0, len(d), k):
        batch_d, batch_r = d[b:b + k], reimage[b:b + k]
        writes += len(batch_d)
        polls = max(1, round(_next_poll(max(batch_d), poll) / poll))
        for j in range(1, polls + 1):
            now = poll * j
            # an operation is polled until the first poll at or after its end
            ops = sum(1 for r in batch_r if now - poll < r - 1e-9 or j == 1)
            read_times.extend([t + now] * (pages + ops))
            reads += pages + ops
        t += poll * polls
    return PolicyFigures(t, reads, writes, max_in_window(read_times, 180.0), "analytic")


def max_in_window(times: list[float], window: float) -> int:
    """Most events in any half-open window [t, t + window)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best

