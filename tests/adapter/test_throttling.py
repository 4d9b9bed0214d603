"""Throttling through the real SDK over HTTPS: no SDK call sleeps long (a long Retry-After comes
back as `Throttled` for the engine to wait out), a throttled status poll is asked again after
its Retry-After in the poller's thread (its operation's `status()` raises `Throttled` meanwhile),
and what Azure says is left of its write budgets."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import AzureError

from cycle_vmss.compute import LIST_RESUME_SECONDS, OperationState, Throttled

from .conftest import arm_requests, make_port, wait


def test_a_long_retry_after_comes_back_as_throttled_at_once(simulate):
    sim = simulate({"faults": {"throttle_reads_every": 1, "retry_after_seconds": 1200}})
    port = make_port(sim)

    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        port.list_instances()

    assert time.monotonic() - started < 1  # azure-core's defaults would sleep 1200 s, 3 times
    assert (caught.value.status, caught.value.retry_after) == (429, 1200)
    assert "429 OperationNotAllowed" in str(caught.value)
    assert [r["status"] for r in arm_requests(sim)] == [429]
    assert (port.counts.reads, port.counts.throttled) == (1, 1)


def test_a_throttled_reimage_request_starts_nothing_and_is_not_repeated(simulate):
    sim = simulate({"faults": {"throttle_writes_every": 1, "retry_after_seconds": 600}})
    port = make_port(sim)

    with pytest.raises(Throttled) as caught:
        port.begin_reimage("0")

    assert caught.value.retry_after == 600
    assert [(r["method"], r["status"]) for r in arm_requests(sim)] == [("POST", 429)]
    assert sim.history()["instances"]["0"]["reimages"] == []


def test_server_errors_are_retried_twice_within_about_a_second(simulate):
    sim = simulate({"faults": {"server_error_rate": 1.0}})
    port = make_port(sim)

    started = time.monotonic()
    with pytest.raises(Exception):
        port.get_scale_set()

    assert time.monotonic() - started < 2.5
    assert [r["status"] for r in arm_requests(sim)] == [500, 500, 500]


def test_a_throttled_status_read_is_not_asked_again_before_its_retry_after(simulate):
    # Every other read is throttled for 2 s: a reimage's status, read only when asked, says so
    # (Throttled) and is not read again until the 2 s have passed; then it is not failed by it.
    sim = simulate({"faults": {"throttle_reads_every": 2, "retry_after_seconds": 2}})
    port = make_port(sim)

    op = port.begin_reimage("0")

    said = []
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "operation did not finish"
        try:
            if op.status().finished:
                break
        except Throttled as throttled:
            said.append(throttled)
        time.sleep(0.1)
    assert op.status().state is OperationState.SUCCEEDED  # not failed by a 429
    assert said and all(0 <= t.retry_after <= 2 for t in said)
    assert str(said[0]) == "Azure throttled the status poll (Retry-After 2 s)"
    polls = [r for r in arm_requests(sim) if "/operations/" in r["path"]]
    throttled = [i for i, r in enumerate(polls) if r["status"] == 429]
    assert throttled and throttled[-1] < len(polls) - 1
    for i in throttled:
        assert polls[i + 1]["time"] - polls[i]["time"] >= 1.95  # Retry-After: 2
    assert port.counts.throttled == len(throttled)


def test_closing_the_port_ends_a_poller_asleep_in_a_long_retry_after(simulate):
    # A capacity change is followed by its own poller (a reimage is only asked): asleep in a
    # 1200 s Retry-After, it ends when the port closes.
    sim = simulate({"faults": {"throttle_reads_every": 1, "retry_after_seconds": 1200}})
    port = make_port(sim)
    op = port.begin_set_capacity(3)
    deadline = time.monotonic() + 10
    while True:  # the simulator logs the 429 a moment before the poller has read it
        assert time.monotonic() < deadline, "no throttled poll"
        try:
            op.status()
        except Throttled as throttled:  # still running, its poll waiting 1200 s
            assert 1190 < throttled.retry_after <= 1200
            break
        time.sleep(0.05)

    closed = time.monotonic()
    port.close()
    with pytest.raises(AzureError, match="the run is over"):
        op.poller.wait(5)

    assert op.poller.done() and time.monotonic() - closed < 1


@pytest.mark.parametrize("limits, left", [("azure", 11), ("none", 239)])
def test_writes_left_is_the_fewest_the_answer_to_a_write_names(simulate, limits, left):
    # compute_limits azure: the set's bucket of 12 for its VMs' updates; none: the
    # VMScaleSetActions3Min window of 240 (the queue gauge, VmssQueuedVMOperations;0, is no budget).
    port = make_port(simulate({"compute_limits": limits}))
    assert port.writes_left is None

    wait(port.begin_reimage("0"))

    assert port.writes_left == left


def test_a_list_throttled_part_way_resumes_at_the_throttled_page(simulate):
    # 12 instances, 5 to a page: 3 pages, and Azure throttles every 3rd read for 2 s. Starting
    # the list over after each wait always met the 3rd page's 429, so no list ever finished.
    sim = simulate({"instances": 12, "page_size": 5,
                    "faults": {"throttle_reads_every": 3, "retry_after_seconds": 2}})
    port = make_port(sim)

    with pytest.raises(Throttled):
        port.list_instances()
    time.sleep(2)
    listed = port.list_instances()

    assert [i.id for i in listed] == [str(n) for n in range(12)]
    assert [r["status"] for r in arm_requests(sim)] == [200, 200, 429, 200]  # the 3rd page, again
    assert port.counts.reads == 4


def test_a_list_throttled_long_ago_is_read_again_from_its_first_page(simulate, monkeypatch):
    sim = simulate({"instances": 12, "page_size": 5,
                    "faults": {"throttle_reads_every": 3, "retry_after_seconds": 2}})
    port = make_port(sim)
    with pytest.raises(Throttled):
        port.list_instances()

    later = time.monotonic() + LIST_RESUME_SECONDS + 1  # its first two pages are stale by now
    monkeypatch.setattr(time, "monotonic", lambda: later)
    with pytest.raises(Throttled):  # pages 1 and 2 again, and the 3rd meets the next 429
        port.list_instances()

    assert [r["status"] for r in arm_requests(sim)] == [200, 200, 429, 200, 200, 429]
