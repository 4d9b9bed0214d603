"""The budget arithmetic: every row of the worked-cases table in `cycle_vmss.budget`'s doc
comment is parsed and run, so the table a reader trusts is the table that is tested."""

from __future__ import annotations

import re

import pytest

from cycle_vmss import budget
from cycle_vmss.budget import resolve, resolve_budget, resolve_fenceposts
from cycle_vmss.settings import Budget, parse_budget


def _table_rows() -> list[tuple]:
    rows = []
    for line in budget.__doc__.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[0].isdigit():
            continue
        n0, mu, ms, ignore, unavail, surge, rmin, flight = cells
        m = re.fullmatch(r"(\d+)(?: \((\d+)\))?", surge)
        rows.append((int(n0), mu, ms, ignore == "yes", int(unavail), int(m.group(1)),
                     int(m.group(2) or 0), int(rmin), int(flight)))
    return rows


ROWS = _table_rows()


def test_the_table_is_there():
    assert len(ROWS) >= 12


@pytest.mark.parametrize("n0, mu, ms, ignore, unavail, surge, auto, rmin, flight", ROWS,
                         ids=[f"N0={r[0]},mu={r[1]},ms={r[2]}{',ignore' if r[3] else ''}" for r in ROWS])
def test_worked_case(n0, mu, ms, ignore, unavail, surge, auto, rmin, flight):
    b = resolve_budget(n0, parse_budget(mu), parse_budget(ms), ignore_availability=ignore)
    assert (b.unavailable, b.surge, b.automatic_surge, b.r_min, b.max_in_flight) == \
        (unavail, surge, auto, rmin, flight)


def test_percent_rounding_directions():
    assert resolve(Budget(25, True), 10, round_up=False) == 2  # 2.5 down
    assert resolve(Budget(25, True), 10, round_up=True) == 3  # 2.5 up
    assert resolve(Budget(100, True), 7, round_up=False) == 7
    assert resolve(Budget(0, True), 7, round_up=True) == 0
    assert resolve(Budget(3), 1000, round_up=False) == 3  # counts are taken as written


def test_both_resolving_to_zero_gives_one_unavailable_like_kubernetes():
    assert resolve_fenceposts(Budget(10, True), Budget(0), 3) == (1, 0)
    assert resolve_fenceposts(Budget(10, True), Budget(10, True), 3) == (0, 1)


def test_a_removal_lowers_n0_and_r_min_but_not_the_cap():
    b = resolve_budget(6, Budget(1), Budget(0), ignore_availability=False)
    after = b.with_n0(5, ignore_availability=False)
    assert (after.n0, after.r_min, after.max_in_flight) == (5, 4, 1)
    assert b.with_n0(1, ignore_availability=False).r_min == 1
    assert b.with_n0(1, ignore_availability=True).r_min == 0
