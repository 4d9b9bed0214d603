"""Several scale sets in one subscription (`scale_sets`): the scenario's rules, requests routed
to their set, Compute's subscription buckets shared by all sets, and rollouts on several sets at
once in shared virtual time (over HTTPS: tests/adapter/test_subscription_https.py)."""

from __future__ import annotations

import threading

import pytest

from cycle_vmss.clock import SharedVirtualClock, VirtualClock
from cycle_vmss.engine import run_rollout
from cycle_vmss.settings import build_settings
from cycle_vmss.simulator import routes
from cycle_vmss.simulator.errors import ArmError
from cycle_vmss.simulator.inprocess import SimulatorComputePort
from cycle_vmss.simulator.scenario import ScenarioError, load_scenario
from cycle_vmss.simulator.subscription import Subscription

FAST = {"reimage_seconds": 0.4, "boot_seconds": 0.2, "health_seconds": 0.2}
SETS = [{"resource_group": "rg-a", "scale_set_name": "vmss-a", "instances": 2},
        {"resource_group": "rg-a", "scale_set_name": "vmss-b", "instances": 3},
        {"resource_group": "rg-c", "scale_set_name": "vmss-c", "instances": 1}]


# --- the scenario ----------------------------------------------------------------------------

def test_entries_take_the_top_levels_keys_as_defaults_and_share_the_subscriptions():
    scenario = load_scenario({"compute_limits": "azure", "timings": {"boot_seconds": 0},
                              "page_size": 7, "scale_sets": [
                                  {"scale_set_name": "one", "timings": {"reimage_seconds": 9}},
                                  {"scale_set_name": "two", "page_size": 2, "instances": 1}]})
    one, two = scenario.scale_sets
    assert (one.compute_limits, two.compute_limits) == ("azure", "azure")
    assert (one.timings.reimage_seconds, one.timings.boot_seconds) == (9, 0)  # merged key by key
    assert (one.page_size, two.page_size, len(one.instances), len(two.instances)) == (7, 2, 6, 1)
    assert one.faults.seed != two.faults.seed  # each set's ids are its own
    assert scenario.scale_set_name == "one"  # a fleet is its first set to one-set code


@pytest.mark.parametrize("sets, message", [
    ([{"resource_group": "rg-x"}],
     "scenario: scale_sets[0] has no 'scale_set_name'; every scale set needs one"),
    ([{"scale_set_name": "a"}, {"scale_set_name": "A", "resource_group": "RG-DEMO"}],
     "scenario: scale_sets[1] is scale_sets[0] again (resource group 'RG-DEMO', scale set 'A'); "
     "each scale set must be named once"),
    ([{"scale_set_name": "a", "compute_limits": "azure"}],
     "scenario: scale_sets[0].compute_limits is the subscription's; set it once at the top of "
     "the scenario, not in a scale_sets entry"),
    ([{"scale_set_name": "a", "faults": {"seed": 2}}],
     "scenario: scale_sets[0].faults.seed is the subscription's; set it once in the top-level "
     "faults (each set draws from it and its name)"),
    ([{"scale_set_name": "a", "instances": -1}],
     "scenario: scale_sets[0]: instances = -1 is not accepted; expected an integer >= 0"),
    ([], "scenario: scale_sets = [] is not accepted; expected a non-empty list of scale set objects"),
])
def test_bad_entries_are_refused_in_one_line(sets, message):
    with pytest.raises(ScenarioError) as refused:
        load_scenario({"scale_sets": sets})
    assert str(refused.value) == message


# --- the subscription's buckets (virtual time, no HTTP) -----------------------------------------

def _admit(subscription: Subscription, rg: str, name: str, method: str, path: str) -> str:
    try:
        subscription.backend(rg, name).faults.admit("read", method, path)
    except ArmError as error:
        return error.details[0]["target"]
    return "ok"


def test_reads_on_one_set_drain_the_subscription_bucket_the_others_meet():
    clock = VirtualClock()
    subscription = Subscription({"compute_limits": "azure", "scale_sets": SETS}, clock)
    sub = subscription.scenario.subscription_id
    vms = {rg: routes.VMS.format(subscription=sub, rg=rg) for rg in ("rg-a", "rg-c")}
    # A VM list takes the subscription's HighCostGetVM bucket only: 900 tokens (Learn).
    assert [_admit(subscription, "rg-a", "vmss-a", "GET", vms["rg-a"]) for _ in range(900)] \
        == ["ok"] * 900
    assert _admit(subscription, "rg-c", "vmss-c", "GET", vms["rg-c"]) == "HighCostGetVMSubscription"
    assert subscription.backend("rg-c", "vmss-c").faults.throttled_by == {
        "HighCostGetVMSubscription": 1}
    # A resource bucket stays the set's own: set A's 36 instance GETs leave set B's whole.
    get = routes.VM + "/instanceView"
    for name in ("vmss-a", "vmss-b"):
        path = get.format(subscription=sub, rg="rg-a", name=name, instance_id="0")
        answers = [_admit(subscription, "rg-a", name, "GET", path) for _ in range(37)]
        assert answers == ["ok"] * 36 + ["GetVMScaleSetVMsResource"]
    clock.sleep(60)  # a minute refills the subscription's bucket by 300
    assert _admit(subscription, "rg-c", "vmss-c", "GET", vms["rg-c"]) == "ok"


def test_an_operation_id_finds_its_set():
    subscription = Subscription({"timings": FAST, "scale_sets": SETS}, VirtualClock())
    b = subscription.backend("rg-a", "vmss-b")
    op_id = b.reimage("rg-a", "vmss-b", "2")
    path = routes.OPERATION.format(subscription=b.scenario.subscription_id, location="eastus",
                                   op_id=op_id)
    assert subscription.route("GET", path) is b
    vm_path = routes.VMSS.format(subscription=b.scenario.subscription_id, rg="RG-A", name="VMSS-B")
    assert subscription.route("GET", vm_path) is b


# --- rollouts on several sets at once, in shared virtual time ------------------------------

def test_rollouts_on_two_sets_run_at_once_on_a_shared_clock():
    clock = SharedVirtualClock()
    subscription = Subscription({"compute_limits": "azure", "timings": FAST,
                                 "scale_sets": SETS[:2]}, clock)
    reports: dict[str, str] = {}

    def roll(rg: str, name: str, participant) -> None:
        with participant:
            settings = build_settings({"resource_group": rg, "scale_set_name": name,
                                       "poll_interval_seconds": "5"})
            port = SimulatorComputePort(subscription.backend(rg, name), rg, name, clock=participant)
            reports[name] = run_rollout(settings, port, clock=participant).result

    threads = [threading.Thread(target=roll, args=(s["resource_group"], s["scale_set_name"],
                                                   clock.join())) for s in SETS[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert reports == {"vmss-a": "succeeded", "vmss-b": "succeeded"}
    for label, h in subscription.history().items():
        assert all(len(r["reimages"]) == 1 for r in h["instances"].values()), label


def test_an_unfiltered_vm_list_of_a_group_with_several_flexible_sets_is_refused():
    subscription = Subscription({"orchestration_mode": "Flexible", "scale_sets": SETS}, VirtualClock())
    sub = subscription.scenario.subscription_id
    with pytest.raises(ArmError, match="one scale set at a time") as refused:
        subscription.route("GET", routes.VMS.format(subscription=sub, rg="rg-a"))
    assert refused.value.status == 400
    assert subscription.route("GET", routes.VMS.format(subscription=sub, rg="rg-c")) \
        is subscription.backend("rg-c", "vmss-c")  # the group's only set
    named = f"'virtualMachineScaleSet/id' eq '{routes.VMSS.format(subscription=sub, rg='rg-a', name='vmss-b')}'"
    assert subscription.route("GET", routes.VMS.format(subscription=sub, rg="rg-a"), named) \
        is subscription.backend("rg-a", "vmss-b")
