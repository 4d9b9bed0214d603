"""The scenario's request faults: throttling, server errors, rate-limit headers, and the
refused or delayed reimage requests."""

import re

import pytest

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.errors import ArmError
from cycle_vmss.simulator.faults import FaultInjector
from cycle_vmss.simulator.randomness import Randomness
from cycle_vmss.simulator.scenario import load_scenario


def make(faults=None, clock=None):
    settings = load_scenario({"faults": faults or {}}).faults
    return FaultInjector(settings, (clock or VirtualClock()).now, Randomness(settings.seed),
                         instance_key=lambda i: f"vm-{i}")


def outcome(fn, *args):
    try:
        fn(*args)
    except ArmError as error:
        return error
    return "ok"


def test_every_nth_read_and_write_is_throttled_with_retry_after():
    faults = make({"throttle_reads_every": 3, "throttle_writes_every": 2, "retry_after_seconds": 7})
    outcomes = [outcome(faults.admit, "read") for _ in range(7)]
    assert [o if o == "ok" else o.status for o in outcomes] == ["ok", "ok", 429, "ok", "ok", 429, "ok"]
    throttled = outcomes[2]
    assert throttled.code == "OperationNotAllowed" and throttled.headers["Retry-After"] == "7"
    assert throttled.headers["x-ms-ratelimit-remaining-resource"] == "Microsoft.Compute/GetVMScaleSetVM30Min;0"
    assert throttled.body()["error"]["details"] == [{
        "code": "TooManyRequests", "target": "GetVMScaleSetVM30Min",
        "message": '{"operationGroup":"GetVMScaleSetVM30Min","allowedRequestCount":2,"measuredRequestCount":3}'}]
    faults.admit("write")
    assert outcome(faults.admit, "write").status == 429
    assert faults.counts() == {"reads": 7, "writes": 2, "throttled": 3, "server_errors": 0}
    with pytest.raises(ValueError):
        faults.admit("delete")


def test_server_errors_follow_the_seeded_rate():
    def pattern(seed):
        faults = make({"server_error_rate": 0.5, "seed": seed})
        out = []
        for _ in range(40):
            error = outcome(faults.admit, "read")
            if error != "ok":
                assert (error.status, error.code) == (500, "InternalServerError")
            out.append(error != "ok")
        assert faults.server_errors == sum(out)
        return out
    assert pattern(3) == pattern(3)
    assert 5 < sum(pattern(3)) < 35
    assert pattern(3) != pattern(4)


def test_ratelimit_headers_count_the_requests_of_the_last_windows():
    clock = VirtualClock()
    faults = make(clock=clock)
    faults.admit("read")
    headers = faults.ratelimit_headers("read")
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "11999"
    assert headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/GetVMScaleSetVM3Min;999,Microsoft.Compute/GetVMScaleSetVM30Min;4999")
    clock.sleep(181)  # out of the 3-minute window, still in the others
    assert faults.ratelimit_headers("read")["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/GetVMScaleSetVM3Min;1000,Microsoft.Compute/GetVMScaleSetVM30Min;4999")
    writes = faults.ratelimit_headers("write")
    assert writes["x-ms-ratelimit-remaining-subscription-writes"] == "1200"
    assert re.fullmatch(r"(Microsoft\.Compute/\w+;\d+,){2}Microsoft\.Compute/VmssQueuedVMOperations;0",
                        writes["x-ms-ratelimit-remaining-resource"])


@pytest.mark.parametrize("chosen, refused", [(2, ["vm-0", "vm-1"]), (["1", "2"], ["vm-1", "vm-2"])])
def test_the_first_reimage_request_of_chosen_instances_is_refused_once(chosen, refused):
    faults = make({"conflict_first_reimage": chosen})
    answers = {i: outcome(faults.refuse_first_reimage, i) for i in ("vm-0", "vm-1", "vm-2")}
    assert sorted(i for i, a in answers.items() if a != "ok") == refused
    assert all((a.status, a.code) == (409, "Conflict") for a in answers.values() if a != "ok")
    assert all(outcome(faults.refuse_first_reimage, i) == "ok" for i in answers)  # once each
    assert faults.conflicts == 2


def test_the_answer_to_a_chosen_reimage_is_held_back_once():
    faults = make({"reimage_response_delay_seconds": 4.5, "reimage_response_delay_ids": ["1"]})
    assert faults.take_response_delay("vm-0") == 0
    assert faults.take_response_delay("vm-1") == 4.5
    assert faults.take_response_delay("vm-1") == 0
