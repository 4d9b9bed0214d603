"""The port's automatic-repairs calls through the real SDK: the state from the set's instance
view, Suspend and Resume through setOrchestrationServiceState, and the cancelled run's quick
Resume, which gives up within seconds when Azure does not answer."""

from __future__ import annotations

import socket
import threading
import time

from azure.core.credentials import AccessToken

from cycle_vmss.azure_adapter import AzureComputePort
from cycle_vmss.compute import AzureError, OperationState

from .conftest import make_port


def test_repairs_are_read_suspended_and_resumed(simulate):
    sim = simulate({"automatic_repairs": {}})
    port = make_port(sim)
    assert port.get_scale_set().automatic_repairs is True
    assert port.automatic_repairs_state() == "Running"
    op = port.begin_set_automatic_repairs("Suspend")
    deadline = time.monotonic() + 10
    while not op.status().finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert op.status().state is OperationState.SUCCEEDED
    assert port.automatic_repairs_state() == "Suspended"
    port.begin_set_automatic_repairs("Resume", quick=True)
    assert port.automatic_repairs_state() == "Running"
    port.close()
    bare = make_port(simulate())
    assert bare.get_scale_set().automatic_repairs is False
    assert bare.automatic_repairs_state() is None


class _Token:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


def test_the_quick_resume_gives_up_within_two_seconds_when_azure_does_not_answer():
    silent = socket.socket()  # accepts connections and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = AzureComputePort(_Token(), "00000000-0000-4000-8000-000000000001", "rg", "vmss",
                                arm_endpoint=f"https://127.0.0.1:{silent.getsockname()[1]}")
        raised: list[Exception] = []

        def resume() -> None:
            try:
                port.begin_set_automatic_repairs("Resume", quick=True)
            except Exception as err:  # noqa: BLE001 - what it raised is asserted below
                raised.append(err)

        started = time.monotonic()
        attempt = threading.Thread(target=resume, daemon=True)  # a hang fails, not blocks, the test
        attempt.start()
        attempt.join(10)
        elapsed = time.monotonic() - started
        port.close()
    finally:
        silent.close()
    assert elapsed < 2, f"took {elapsed:.1f} s"
    assert len(raised) == 1 and isinstance(raised[0], AzureError)
