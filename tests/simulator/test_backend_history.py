"""The simulator's own record of availability: exact intervals, max_not_ready, takeouts."""

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend

RG, NAME = "rg-demo", "vmss-demo"


def make(scenario=None):
    clock = VirtualClock()
    return Backend(scenario, clock), clock


def test_intervals_are_exact_even_when_observed_late():
    backend, clock = make()
    backend.reimage(RG, NAME, "0")
    clock.sleep(3600)  # nobody looks for an hour
    history = backend.history()
    t0 = backend.start
    assert history["instances"]["0"]["not_ready"] == [[t0, t0 + 5]]
    assert history["instances"]["0"]["reimages"][0]["start"] == t0
    assert history["instances"]["0"]["reimages"][0]["end"] == t0 + 4
    assert history["instances"]["0"]["reimages"][0]["status"] == "Succeeded"
    assert history["instances"]["1"] == {"not_ready": [], "reimages": [], "manual_upgrades": [],
                                         "created": None, "deleted": None, "zone": "2"}


def test_one_at_a_time_keeps_max_not_ready_at_one():
    backend, clock = make({"instances": 4})
    for instance_id in "0123":
        backend.reimage(RG, NAME, instance_id)
        clock.sleep(5)  # exactly when the previous one is healthy again
    history = backend.history()
    t0 = backend.start
    assert [history["instances"][i]["not_ready"] for i in "0123"] == [
        [[t0 + 5 * k, t0 + 5 * k + 5]] for k in range(4)]
    assert history["max_not_ready"] == 1 and history["max_reimages_in_flight"] == 1
    assert history["whole_set_reimages"] == 0
    assert [(t["instance"], t["was_ready"], t["others_ready"]) for t in history["takeouts"]] == [
        ("0", True, 3), ("1", True, 3), ("2", True, 3), ("3", True, 3)]


def test_overlapping_reimages_count_together():
    backend, clock = make({"instances": 4})
    backend.reimage(RG, NAME, "0")
    clock.sleep(4.5)  # 0 is running again but still initializing: not ready
    backend.reimage(RG, NAME, "1")
    clock.sleep(20)
    history = backend.history()
    assert history["max_not_ready"] == 2
    assert history["max_reimages_in_flight"] == 1  # 0's operation had already succeeded
    assert history["takeouts"][1] == {"time": backend.start + 4.5, "instance": "1",
                                      "was_ready": True, "others_ready": 2}


def test_unready_instances_at_start_are_open_intervals_and_count():
    backend, _ = make({"instances": [{"health": "unhealthy"}, {"power": "deallocated"}, {}]})
    history = backend.history()
    assert history["instances"]["0"]["not_ready"] == [[backend.start, None]]
    assert history["instances"]["1"]["not_ready"] == [[backend.start, None]]
    assert history["max_not_ready"] == 2
    backend.reimage(RG, NAME, "0")
    assert backend.history()["takeouts"] == [
        {"time": backend.start, "instance": "0", "was_ready": False, "others_ready": 1}]


def test_a_deleted_instance_stops_counting_when_it_is_gone():
    backend, clock = make({"instances": 3})
    backend.delete_instances(RG, NAME, ["2"])
    clock.sleep(1)
    backend.reimage(RG, NAME, "0")
    clock.sleep(10)
    history = backend.history()
    assert history["instances"]["2"]["not_ready"] == [[backend.start, backend.start + 1]]
    assert history["instances"]["2"]["deleted"] == backend.start + 1
    assert history["max_not_ready"] == 1  # the deletion had finished when 0 went out
    assert history["capacity"] == [{"time": backend.start, "capacity": 3},
                                   {"time": backend.start, "capacity": 2}]


def test_transitions_at_the_same_instant_do_not_inflate_max_not_ready():
    # 1 becomes healthy at exactly the instant 2 is taken out by a timed health event.
    backend, clock = make({"instances": 3, "timings": {"health_seconds": 0},
                           "events": [{"at_seconds": 4, "instance": "2", "health": "unhealthy"}]})
    backend.reimage(RG, NAME, "1")
    clock.sleep(10)
    assert backend.history()["max_not_ready"] == 1
