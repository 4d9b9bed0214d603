"""A reimage through the real adapter is followed by no poller: its operation is read only when
the engine asks (the engine's list follows it), over HTTPS through the SDK."""

from __future__ import annotations

import time

from cycle_vmss.compute import OperationState

from .conftest import arm_requests, make_port, wait


def status_reads(sim) -> list[dict]:
    return [r for r in arm_requests(sim) if r["method"] == "GET" and "/operations/" in r["path"]]


def test_a_reimage_is_not_read_until_asked_and_then_once(simulate):
    sim = simulate()
    port = make_port(sim)
    op = port.begin_reimage("0")
    time.sleep(1.5)  # the reimage (0.4 s, boot 0.2 s) has ended; a poller would have read 4 times
    assert status_reads(sim) == []
    reads = port.counts.reads
    assert op.status().state is OperationState.SUCCEEDED
    assert port.counts.reads - reads == 2  # its status, then azure-core's final GET (Location)
    assert len(status_reads(sim)) == 2
    assert op.status().state is OperationState.SUCCEEDED  # kept: not read again
    assert len(status_reads(sim)) == 2


def test_a_failed_reimage_asked_says_azures_error(simulate):
    sim = simulate({"instances": [{"id": "0", "on_reimage": "fail",
                                   "error_code": "VMExtensionProvisioningError"}]})
    status = wait(make_port(sim).begin_reimage("0"))
    assert status.state is OperationState.FAILED
    assert status.error_code == "VMExtensionProvisioningError"
    assert "customScript" in status.error_message
