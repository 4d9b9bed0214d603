"""The availability budget: `max-unavailable` and `max-surge` resolved against N0.

Small pure functions in the manner of Kubernetes' `ResolveFenceposts`. `N0` is the number of
instances of the whole set in service at the start (not stopped or deallocated; out-of-scope and
protected instances count, they serve). Percentages are of N0: `max-unavailable` rounds down,
`max-surge` rounds up; when both resolve to 0 (10% of 3), `max-unavailable` becomes 1.

    R_min        = max(N0 - max_unavailable, 1)      (ignore-availability: floor 0 instead of 1)
    auto surge   = what it takes for R_min + 1 instances to exist, so one can go out at all
    surge        = max_surge + auto surge            (the effective surge)
    max in flight = max(1, max_unavailable + surge)

Worked cases (tests/engine/test_budget.py parses this table and runs every row):

    | N0 | max-unavailable | max-surge | ignore-avail | unavail | surge (auto) | R_min | in flight |
    |----|-----------------|-----------|--------------|---------|--------------|-------|-----------|
    |  6 | 1               | 0         | no           | 1       | 0            | 5     | 1         |
    | 10 | 25%             | 0         | no           | 2       | 0            | 8     | 2         |
    | 10 | 0               | 25%       | no           | 0       | 3            | 10    | 3         |
    |  3 | 10%             | 10%       | no           | 0       | 1            | 3     | 1         |
    |  3 | 10%             | 0%        | no           | 1       | 0            | 2     | 1         |
    |  1 | 1               | 0         | no           | 1       | 1 (1)        | 1     | 2         |
    |  1 | 1               | 0         | yes          | 1       | 0            | 0     | 1         |
    |  1 | 100%            | 0         | no           | 1       | 1 (1)        | 1     | 2         |
    |  2 | 5               | 0         | no           | 5       | 0            | 1     | 5         |
    |  2 | 100%            | 0         | yes          | 2       | 0            | 0     | 2         |
    |  4 | 0               | 1         | no           | 0       | 1            | 4     | 1         |
    |  1 | 0               | 1         | no           | 0       | 1            | 1     | 1         |
    |  5 | 100%            | 100%      | no           | 5       | 5            | 1     | 10        |
    |1000| 10%             | 5%        | no           | 100     | 50           | 900   | 150       |
    |  0 | 1               | 0         | no           | 1       | 0            | 1     | 1         |

`3, 10%, 10%`: surge rounds up to 1, unavailable down to 0; they do not both resolve to 0, so
the rollout surges by one and takes instances out one at a time. `3, 10%, 0%` resolves both to
0, so unavailable becomes 1. A set of N0 = 0 has nothing in service and nothing to reimage.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Budget


def resolve(value: Budget, n0: int, *, round_up: bool) -> int:
    """A count as written, or a percentage of N0 (rounded up for surge, down for unavailable)."""
    if not value.percent:
        return value.value
    exact = value.value * n0
    return -(-exact // 100) if round_up else exact // 100


def resolve_fenceposts(max_unavailable: Budget, max_surge: Budget, n0: int) -> tuple[int, int]:
    """(unavailable, surge) as configured; when both resolve to 0, unavailable becomes 1."""
    unavailable = resolve(max_unavailable, n0, round_up=False)
    surge = resolve(max_surge, n0, round_up=True)
    if unavailable == 0 and surge == 0:
        unavailable = 1
    return unavailable, surge


def r_min(n0: int, unavailable: int, *, ignore_availability: bool) -> int:
    """The fewest ready instances the run may leave: a ready instance goes out only while at
    least this many *other* instances are ready."""
    return max(n0 - unavailable, 0 if ignore_availability else 1)


def automatic_surge(n0: int, surge: int, rmin: int) -> int:
    """Extra instances needed so that R_min others are ready while one is out.

    Only a set whose in-service count would otherwise be 1 needs it (N0 = 1 and no configured
    surge): taking out its only instance would leave none ready. Once R_min + 1 instances exist
    the rollout can always proceed one at a time."""
    if n0 == 0:
        return 0
    return max(0, rmin + 1 - (n0 + surge))


def max_in_flight(unavailable: int, surge: int) -> int:
    """At most this many reimages at once; `surge` is the effective one (configured + automatic)."""
    return max(1, unavailable + surge)


@dataclass(frozen=True)
class ResolvedBudget:
    n0: int
    unavailable: int
    surge: int  # effective: configured + automatic
    automatic_surge: int
    r_min: int
    max_in_flight: int

    def with_n0(self, n0: int, *, ignore_availability: bool) -> "ResolvedBudget":
        """After an instance was removed by someone else: N0 drops, R_min follows it; the
        resolved counts and the in-flight cap stay as planned."""
        return ResolvedBudget(n0, self.unavailable, self.surge, self.automatic_surge,
                              r_min(n0, self.unavailable, ignore_availability=ignore_availability),
                              self.max_in_flight)


def resolve_budget(n0: int, max_unavailable: Budget, max_surge: Budget, *,
                   ignore_availability: bool) -> ResolvedBudget:
    """Everything the rollout needs from the two budget settings, for a set with N0 in service."""
    unavailable, surge = resolve_fenceposts(max_unavailable, max_surge, n0)
    rmin = r_min(n0, unavailable, ignore_availability=ignore_availability)
    auto = automatic_surge(n0, surge, rmin)
    effective = surge + auto
    return ResolvedBudget(n0, unavailable, effective, auto, rmin, max_in_flight(unavailable, effective))

