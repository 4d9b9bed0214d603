"""Several scale sets in one subscription (`scale_sets`) over HTTPS, through azure-identity and
the SDK: each set listed and reimaged apart, operation ids apart, one request log per set."""

from __future__ import annotations

import pytest

from cycle_vmss.simulator.server import running_simulator

from .conftest import FAST, make_port, wait

SETS = [{"resource_group": "rg-a", "scale_set_name": "vmss-a", "instances": 2},
        {"resource_group": "rg-a", "scale_set_name": "vmss-b", "instances": 3},
        {"resource_group": "rg-c", "scale_set_name": "vmss-c", "instances": 1}]


def test_each_set_is_listed_and_reimaged_apart_over_https():
    with running_simulator({"timings": FAST, "scale_sets": SETS}) as sim:
        assert [(s["resource_group"], s["scale_set_name"]) for s in sim.info["scale_sets"]] == [
            ("rg-a", "vmss-a"), ("rg-a", "vmss-b"), ("rg-c", "vmss-c")]
        ports = {s["scale_set_name"]: make_port(sim, resource_group=s["resource_group"],
                                                scale_set_name=s["scale_set_name"]) for s in SETS}
        assert {name: sorted(i.id for i in port.list_instances()) for name, port in ports.items()} \
            == {"vmss-a": ["0", "1"], "vmss-b": ["0", "1", "2"], "vmss-c": ["0"]}
        ops = {name: port.begin_reimage("0") for name, port in ports.items()}
        assert all(wait(op).state.value == "Succeeded" for op in ops.values())
        with pytest.raises(Exception, match="ResourceNotFound"):
            make_port(sim, resource_group="rg-c", scale_set_name="vmss-a").get_scale_set()

        history = sim.subscription.history()
        reimaged = {label: [i for i, r in h["instances"].items() if r["reimages"]]
                    for label, h in history.items()}
        assert reimaged == {"rg-a/vmss-a": ["0"], "rg-a/vmss-b": ["0"], "rg-c/vmss-c": ["0"]}
        op_ids = {label: h["instances"]["0"]["reimages"][0]["op"] for label, h in history.items()}
        assert len(set(op_ids.values())) == 3
        for backend in sim.subscription.backends:  # each set's log holds its own polls only
            label = f"{backend.scenario.resource_group}/{backend.scenario.scale_set_name}"
            polled = {r["path"].rsplit("/", 1)[-1] for r in backend.requests()
                      if "/operations/" in r["path"]}
            assert polled == {op_ids[label]}
        combined = sim.get_json("/_simulator/requests")
        assert len(combined) == sum(len(b.requests()) for b in sim.subscription.backends)
        assert set(sim.get_json("/_simulator/history")) == set(history)


def test_a_one_set_scenario_is_served_as_before():
    with running_simulator({"instances": 2}) as sim:
        assert "scale_sets" not in sim.info
        assert sim.subscription.backends == (sim.backend,)
        assert sim.get_json("/_simulator/history")["instances"].keys() == {"0", "1"}


def test_flexible_sets_in_one_group_are_told_apart_by_filter_and_vm_name():
    sets = [{"scale_set_name": "web", "instances": 3}, {"scale_set_name": "web_api", "instances": 2}]
    with running_simulator({"timings": FAST, "orchestration_mode": "Flexible", "page_size": 2,
                            "resource_group": "rg-f", "scale_sets": sets}) as sim:
        ports = {s["scale_set_name"]: make_port(sim, resource_group="rg-f",
                                                scale_set_name=s["scale_set_name"]) for s in sets}
        for port in ports.values():
            port.get_scale_set()  # preflight's read: the port then speaks Flexible
        # two pages for "web": the next page's $filter lives in its $skiptoken only
        assert {name: sorted(i.id for i in port.list_instances()) for name, port in ports.items()} \
            == {"web": ["web_0", "web_1", "web_2"], "web_api": ["web_api_0", "web_api_1"]}
        # "web_api_1" starts with "web_" too: the longest set name that prefixes it owns it
        assert wait(ports["web_api"].begin_reimage("web_api_1")).state.value == "Succeeded"
        history = sim.history()
        assert [i for i, r in history["rg-f/web_api"]["instances"].items() if r["reimages"]] \
            == ["web_api_1"]
        assert not any(r["reimages"] for r in history["rg-f/web"]["instances"].values())
        assert {r["scale_set"] for r in sim.requests() if "/virtualMachines" in r["path"]} \
            == {"rg-f/web", "rg-f/web_api"}
