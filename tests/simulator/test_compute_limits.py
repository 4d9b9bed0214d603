"""`compute_limits: "azure"`: Compute's token buckets per resource and per subscription (Microsoft
Learn, Compute throttling limits), in the backend's virtual time, and their 429 over HTTPS."""

from __future__ import annotations

import pytest
import requests

from cycle_vmss.clock import VirtualClock
from cycle_vmss.simulator.backend import Backend
from cycle_vmss.simulator.errors import ArmError
from cycle_vmss.simulator.faults import TokenBuckets
from cycle_vmss.simulator.scenario import ScenarioError, load_scenario

SUB = "/subscriptions/00000000-0000-4000-8000-000000000001"
SET = SUB + "/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-demo"
VMS = SUB + "/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines"
OPERATION = SUB + "/providers/Microsoft.Compute/locations/eastus/operations/op-1"


def reimage(instance: str) -> tuple[str, str]:
    return "POST", f"{SET}/virtualMachines/{instance}/reimage"


def taken(buckets: TokenBuckets, request: tuple[str, str]) -> str | ArmError:
    try:
        buckets.take(*request)
    except ArmError as error:
        return error
    return "ok"


def test_scale_set_vm_reimages_share_the_sets_bucket_of_12_refilled_4_a_minute():
    clock = VirtualClock()
    buckets = TokenBuckets(clock.now)
    answers = [taken(buckets, reimage(str(i))) for i in range(13)]  # one reimage per instance
    assert answers[:12] == ["ok"] * 12
    throttled = answers[12]
    assert (throttled.status, throttled.code) == (429, "OperationNotAllowed")
    assert throttled.headers["Retry-After"] == "60"  # the next refill, a minute after the start
    assert throttled.headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/UpdateVMScaleSetVMsResource;0,"
        "Microsoft.Compute/UpdateVMScaleSetVMsSubscription;1488")
    assert throttled.body()["error"]["details"][0]["target"] == "UpdateVMScaleSetVMsResource"
    clock.sleep(45)
    assert taken(buckets, reimage("12")).headers["Retry-After"] == "15"
    clock.sleep(15)  # a minute: 4 tokens come back, no more
    answers = [taken(buckets, reimage(str(i))) for i in range(13, 18)]
    assert answers[:4] == ["ok"] * 4 and answers[4].status == 429
    assert buckets.remaining(*reimage("0")) == (  # the subscription's 500 a minute refilled it
        "Microsoft.Compute/UpdateVMScaleSetVMsResource;0,"
        "Microsoft.Compute/UpdateVMScaleSetVMsSubscription;1496")
    clock.sleep(3600)  # refills stop at the capacity
    assert buckets.remaining(*reimage("0")).startswith("Microsoft.Compute/UpdateVMScaleSetVMsResource;12,")


def test_each_policy_has_its_own_buckets_and_a_flexible_vm_is_its_own_resource():
    buckets = TokenBuckets(VirtualClock().now)
    for _ in range(12):
        buckets.take(*reimage("0"))
    assert buckets.remaining("GET", f"{SET}/virtualMachines") == (  # the VM list: High Cost Get
        "Microsoft.Compute/HighCostGetVMScaleSetResource;30,"
        "Microsoft.Compute/HighCostGetVMScaleSetSubscription;1080")
    assert buckets.remaining("GET", SET) == (
        "Microsoft.Compute/LowCostGetVMScaleSetResource;36,"
        "Microsoft.Compute/LowCostGetVMScaleSetSubscription;2400")
    # The scale set's own reimage takes only the subscription bucket of its Update policy.
    assert buckets.remaining("POST", f"{SET}/reimage") == "Microsoft.Compute/UpdateVMScaleSetSubscription;1500"
    assert buckets.remaining("GET", OPERATION) == "Microsoft.Compute/GetOperationSubscription;15000"
    for vm in ("vmss-demo_a", "vmss-demo_b"):  # one VM's bucket does not touch another's
        for _ in range(12):
            buckets.take("POST", f"{VMS}/{vm}/reimage")
    assert buckets.remaining("POST", f"{VMS}/vmss-demo_c/reimage") == (
        "Microsoft.Compute/UpdateVMResource;12,Microsoft.Compute/UpdateVMSubscription;1476")
    assert buckets.remaining("GET", "/subscriptions") is None  # not Compute's


def test_the_subscription_bucket_throttles_across_resources():
    buckets = TokenBuckets(VirtualClock().now)
    for i in range(1500):
        buckets.take("POST", f"{VMS}/vm-{i // 12}/reimage")
    error = taken(buckets, ("POST", f"{VMS}/vm-new/reimage"))
    assert error.status == 429
    assert error.headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/UpdateVMResource;12,Microsoft.Compute/UpdateVMSubscription;0")


def test_compute_limits_is_a_scenario_key_off_by_default():
    assert load_scenario({}).compute_limits == "none"
    assert load_scenario({"compute_limits": "azure"}).compute_limits == "azure"
    with pytest.raises(ScenarioError, match="compute_limits"):
        load_scenario({"compute_limits": "strict"})
    backend = Backend({"instances": 1}, VirtualClock())
    for _ in range(40):  # without the key, no bucket throttles
        backend.faults.admit("write", *reimage("0"))
    assert backend.throttled == 0


def test_a_drained_bucket_answers_429_with_its_retry_after_over_https(simulator, secret_credential):
    sim = simulator({"instances": 1, "compute_limits": "azure"})
    token = secret_credential(sim).get_token("https://management.azure.com/.default").token
    url = f"{sim.info['arm_endpoint']}{SET.lstrip('/')}/virtualMachines"
    answers = [requests.get(url, params={"api-version": "2026-04-01"},
                            headers={"Authorization": f"Bearer {token}"},
                            verify=sim.info["ca_bundle"], timeout=10) for _ in range(31)]
    assert [a.status_code for a in answers] == [200] * 30 + [429]
    assert answers[0].headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/HighCostGetVMScaleSetResource;29,"
        "Microsoft.Compute/HighCostGetVMScaleSetSubscription;1079")
    assert 1 <= int(answers[30].headers["Retry-After"]) <= 60
    assert answers[30].json()["error"]["details"][0]["code"] == "TooManyRequests"
    assert sim.backend.throttled == 1
