"""gate-url: a real HTTP gate on 127.0.0.1, asked by the engine (in virtual time) before each
pass's starts; its answers follow the virtual clock. No start while it refuses, the run blocked
meanwhile, its answers logged when they change, and a cancel never waits for it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cycle_vmss.clock import VirtualClock
from cycle_vmss.engine import run_rollout
from cycle_vmss.settings import build_settings
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.inprocess import SimulatorComputePort

from .conftest import NAME, RG, Recorder


@contextmanager
def gate_server(status_at, hang: float = 0.0):
    """An HTTP gate answering `status_at(virtual seconds)`; `asked` records (time, status)."""
    asked: list[tuple[float, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            time.sleep(hang)
            status = status_at(server.clock.now() - server.t0)
            asked.append((server.clock.now() - server.t0, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.clock = VirtualClock()
    server.t0 = server.clock.now()
    server.asked = asked
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_gated(server, scenario: dict, cancelled=None, **raw):
    backend = Backend(scenario, server.clock)
    settings = build_settings({"resource_group": RG, "scale_set_name": NAME, "poll_interval_seconds": "10",
                               "gate_url": f"http://127.0.0.1:{server.server_port}/health?token=s3cret",
                               **raw})
    recorder = Recorder()
    report = run_rollout(settings, SimulatorComputePort(backend, RG, NAME), clock=server.clock,
                         listener=recorder, cancelled=cancelled).as_dict()
    return report, backend.history(), recorder


def starts(history) -> list[float]:
    return sorted(r["start"] - history["start"] for rec in history["instances"].values()
                  for r in rec["reimages"])


def test_no_start_while_the_gate_answers_503_then_every_instance_once_it_answers_200():
    with gate_server(lambda t: 503 if t < 120 else 200) as gate:
        report, history, events = run_gated(gate, {"instances": 4, "timings": {"reimage_seconds": 30}})

    assert report["result"] == "succeeded", report["message"]
    first_200 = min(t for t, status in gate.asked if status == 200)
    assert first_200 >= 120 and starts(history)[0] >= first_200
    assert all(len(rec["reimages"]) == 1 for rec in history["instances"].values())
    said = [e.message for e in events.of("gate")]  # logged when the answer changes, not each poll
    assert said == ["gate-url answered HTTP 503 Service Unavailable: no new reimage starts",
                    "gate-url answered 2xx: reimages may start"]
    assert len([s for _, s in gate.asked if s == 503]) > 2
    assert report["settings"]["gateUrl"].endswith("/health?…")  # its token is not in the report


def test_a_gate_that_flaps_mid_run_holds_the_starts_while_it_refuses():
    refusing = (60, 150)
    with gate_server(lambda t: 503 if refusing[0] <= t < refusing[1] else 200) as gate:
        report, history, events = run_gated(gate, {"instances": 6, "timings": {"reimage_seconds": 30}})

    assert report["result"] == "succeeded", report["message"]
    closed = [t for t, status in gate.asked if status == 503]
    assert closed, "the run never met the refusal"
    reopened = min(t for t, status in gate.asked if status == 200 and t > closed[0])
    assert not [t for t in starts(history) if closed[0] <= t < reopened]
    assert len(events.of("gate")) == 3  # open, closed, open


def test_a_gate_that_refuses_for_timeout_minutes_fails_the_run_without_a_reimage():
    with gate_server(lambda t: 503) as gate:
        report, history, _ = run_gated(gate, {"instances": 3}, timeout_minutes="2")

    assert report["result"] == "failed"
    assert report["failure"]["code"] == "GateRefused"
    assert report["message"] == ("gate-url refused every start for 2 min: it answered "
                                 "HTTP 503 Service Unavailable")
    assert starts(history) == []


def test_an_unreachable_gate_is_a_refusal_that_says_so():
    with gate_server(lambda t: 200) as gate:
        port = gate.server_port
    clock_server = type("S", (), {"clock": VirtualClock(), "server_port": port})()
    report, history, _ = run_gated(clock_server, {"instances": 2}, timeout_minutes="1")

    assert report["result"] == "failed" and "could not be reached" in report["message"]
    assert starts(history) == []


def test_a_cancel_does_not_wait_for_a_gate_that_is_slow_to_answer():
    cancelled = threading.Event()
    with gate_server(lambda t: 200, hang=8) as gate:
        threading.Timer(0.5, cancelled.set).start()
        began = time.monotonic()
        report, history, _ = run_gated(gate, {"instances": 3}, cancelled=cancelled)
        took = time.monotonic() - began

    assert report["result"] == "cancelled" and took < 3, took
    assert starts(history) == []
