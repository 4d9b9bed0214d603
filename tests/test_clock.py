"""`SharedVirtualClock`: several threads on one virtual time, each through its `Participant`."""

from __future__ import annotations

import threading

import pytest

from cycle_vmss.clock import SharedVirtualClock

START = 1_767_225_600.0


def _run(clock: SharedVirtualClock, plans: dict[str, list[float]]) -> list[tuple[float, str]]:
    """One thread per plan, sleeping those seconds in turn; (time woken, name) in the order the
    wakes happened (and (time, name + " done") when a thread leaves)."""
    log: list[tuple[float, str]] = []
    participants = {name: clock.join() for name in plans}  # all joined before any starts
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with participants[name] as me:
                for seconds in plans[name]:
                    me.sleep(seconds)
                    log.append((me.now() - START, name))
                log.append((me.now() - START, f"{name} done"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a participant is stuck"
    assert not errors
    return log


def test_sleepers_wake_at_exact_times_in_order():
    log = _run(SharedVirtualClock(START), {"a": [10, 10, 10], "b": [15, 15], "c": [25]})
    assert log == [(10, "a"), (15, "b"), (20, "a"), (25, "c"), (25, "c done"), (30, "a"),
                   (30, "a done"), (30, "b"), (30, "b done")]


def test_one_that_finishes_early_does_not_hold_the_others():
    log = _run(SharedVirtualClock(START), {"quick": [], "slow": [100, 200]})
    assert log == [(0, "quick done"), (100, "slow"), (300, "slow"), (300, "slow done")]


def test_the_same_runs_give_the_same_record():
    plans = {str(i): [float(i % 3 + 1)] * 20 for i in range(5)}
    assert _run(SharedVirtualClock(START), plans) == _run(SharedVirtualClock(START), plans)


def test_wake_brings_a_sleeper_back_now():
    clock = SharedVirtualClock(START)
    sleeper, waker = clock.join(), clock.join()
    seen: list[float] = []

    def sleep_long() -> None:
        with sleeper:
            sleeper.sleep(3600)
            seen.append(sleeper.now() - START)

    def wake_it() -> None:
        with waker:
            waker.sleep(5)
            sleeper.wake()

    threads = [threading.Thread(target=sleep_long), threading.Thread(target=wake_it)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert seen == [5]


def test_sleep_outside_ones_turn_is_refused():
    clock = SharedVirtualClock(START)
    first, second = clock.join(), clock.join()
    with pytest.raises(RuntimeError, match="not running"):
        second.sleep(1)  # `first` holds the turn until it sleeps or leaves
    first.leave()
    second.sleep(1)
    assert second.now() == START + 1
    second.leave()
