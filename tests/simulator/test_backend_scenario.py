"""The scenario format of SPEC section 6: defaults, the example files, and one-line errors."""

import json
from pathlib import Path

import pytest

from cycle_vmss.simulator.scenario import (
    InstanceSpec, ScenarioError, Timings, load_scenario,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_defaults_are_the_spec_defaults():
    s = load_scenario(None)
    assert (s.resource_group, s.scale_set_name, s.location) == ("rg-demo", "vmss-demo", "eastus")
    assert (s.orchestration_mode, s.upgrade_mode, s.health_extension) == ("Uniform", "Manual", True)
    assert (s.page_size, s.token_lifetime_seconds) == (100, 3600)
    assert s.timings == Timings(3, 1, 1, 3, 1)
    assert s.zones == ("1", "2", "3")
    assert (s.faults.throttle_reads_every, s.faults.throttle_writes_every) == (0, 0)
    assert (s.faults.retry_after_seconds, s.faults.server_error_rate, s.faults.seed) == (1, 0.0, 1)
    assert s.events == () and s.rolling_upgrade_in_progress is False
    assert [i.id for i in s.instances] == ["0", "1", "2", "3", "4", "5"]
    assert [i.zone for i in s.instances] == ["1", "2", "3", "1", "2", "3"]
    assert [i.fault_domain for i in s.instances] == [0, 0, 0, 1, 1, 1]


def test_identities_have_deterministic_defaults_and_can_be_set():
    a, b = load_scenario(None), load_scenario({})
    for key in ("subscription_id", "tenant_id", "client_id", "client_secret", "github_oidc_token"):
        assert getattr(a, key) == getattr(b, key) and getattr(a, key)
    s = load_scenario({"tenant_id": "t", "client_id": "c", "client_secret": "s",
                       "github_oidc_token": "g", "subscription_id": "sub"})
    assert (s.tenant_id, s.client_id, s.client_secret, s.github_oidc_token, s.subscription_id) == (
        "t", "c", "s", "g", "sub")


def test_instance_objects_take_their_own_settings_and_inherit_timings():
    s = load_scenario({
        "timings": {"reimage_seconds": 8},
        "zones": [],
        "instances": [{"id": 7, "power": "deallocated", "health": "unknown",
                       "protect_from_scale_set_actions": True, "on_reimage": "fail",
                       "error_code": "Boom", "timings": {"boot_seconds": 5}},
                      {}],
    })
    first, second = s.instances
    assert first == InstanceSpec("7", None, 0, "deallocated", "unknown", True, "fail", "Boom",
                                 Timings(8, 5, 1, 3, 1))
    assert (second.id, second.zone, second.fault_domain, second.timings.reimage_seconds) == ("1", None, 1, 8)


@pytest.mark.parametrize("name", ["scenario-demo.json", "scenario-faults.json"])
def test_example_files_load(name):
    path = EXAMPLES / name
    assert load_scenario(path) == load_scenario(json.loads(path.read_text()))


def test_demo_example_is_the_spec_example():
    s = load_scenario(EXAMPLES / "scenario-demo.json")
    assert len(s.instances) == 6 and len(s.events) == 3
    assert s.events[0].instance == "2" and s.events[0].health == "unhealthy"
    assert s.events[0].for_seconds == 10 and s.events[1].delete_instance == "3"
    assert s.events[2].add_instances == 1


@pytest.mark.parametrize("data, fragment", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"timings": {"reimage_secs": 1}}, "unknown key 'timings.reimage_secs'"),
    ({"faults": {"throttle": 1}}, "unknown key 'faults.throttle'"),
    ({"instances": [{}, {"zones": ["1"]}]}, "unknown key 'instances[1].zones'"),
    ({"instances": [{"timings": {"x": 1}}]}, "unknown key 'instances[0].timings.x'"),
    ({"events": [{"at_seconds": 1, "add_instances": 1, "when": 2}]}, "unknown key 'events[0].when'"),
])
def test_unknown_keys_are_named(data, fragment):
    with pytest.raises(ScenarioError, match=r"^scenario: " + __import__("re").escape(fragment)):
        load_scenario(data)


@pytest.mark.parametrize("data, fragment", [
    ({"instances": [{"power": "off"}]}, 'instances[0].power = "off" is not accepted; expected one of running, stopped, deallocated'),
    ({"instances": [{"on_reimage": "explode"}]}, "instances[0].on_reimage"),
    ({"instances": -1}, "instances = -1"),
    ({"instances": "six"}, "instances = \"six\""),
    ({"orchestration_mode": "uniform"}, "orchestration_mode"),
    ({"page_size": 0}, "page_size = 0 is not accepted; expected an integer >= 1"),
    ({"health_extension": "yes"}, "health_extension = \"yes\""),
    ({"timings": {"boot_seconds": -1}}, "timings.boot_seconds = -1"),
    ({"faults": {"server_error_rate": 2}}, "faults.server_error_rate = 2"),
    ({"zones": "1,2"}, "zones"),
    ({"instances": [{"id": "1"}, {"id": "1"}]}, "the id '1' twice"),
    ({"events": [{"add_instances": 1}]}, "events[0] has no 'at_seconds'"),
    ({"events": [{"at_seconds": 1, "add_instances": 1, "delete_instance": "0"}]}, "exactly one of"),
    ({"events": [{"at_seconds": 1, "health": "unhealthy"}]}, "names no 'instance'"),
    ({"events": [{"at_seconds": 1, "add_instances": 0}]}, "events[0].add_instances = 0"),
    ({"denied_actions": "Microsoft.Compute/x/action"}, "denied_actions = \"Microsoft.Compute/x/action\""),
    ({"denied_actions": [1.5]}, "denied_actions[0]"),
    ({"os_upgrade_in_progress": "yes"}, "os_upgrade_in_progress = \"yes\""),
])
def test_bad_values_are_one_line_naming_the_key(data, fragment):
    with pytest.raises(ScenarioError) as info:
        load_scenario(data)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_files_that_cannot_be_read_or_parsed(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ScenarioError, match="bad.json is not valid JSON"):
        load_scenario(bad)
