"""The simulator's ARM Compute API through the real azure-mgmt-compute client over HTTPS."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute.models import Sku, VirtualMachineScaleSetUpdate

ARM_SCOPE = "https://management.azure.com/.default"


def _codes(view) -> tuple[str, str, str | None]:
    """(provisioning, power, health) as the instance view shows them."""
    codes = {s.code.split("/")[0]: s.code.split("/")[1] for s in view.statuses}
    health = view.vm_health.status.code.split("/")[1] if view.vm_health else None
    return codes.get("ProvisioningState"), codes.get("PowerState"), health


def _names(sim) -> tuple[str, str]:
    return sim.info["resource_group"], sim.info["scale_set_name"]


def _vmss_url(sim, suffix: str = "") -> str:
    info = sim.info
    return (f"{info['arm_endpoint']}subscriptions/{info['subscription_id']}/resourceGroups/"
            f"{info['resource_group']}/providers/Microsoft.Compute/virtualMachineScaleSets/"
            f"{info['scale_set_name']}{suffix}")


def _bearer(secret_credential, sim) -> dict:
    return {"Authorization": f"Bearer {secret_credential(sim).get_token(ARM_SCOPE).token}"}


def test_list_follows_absolute_next_links_across_pages(simulator, compute_client, secret_credential):
    sim = simulator({"instances": 5, "page_size": 2})
    client = compute_client(sim)

    vms = list(client.virtual_machine_scale_set_vms.list(*_names(sim), expand="instanceView"))

    assert [vm.instance_id for vm in vms] == ["0", "1", "2", "3", "4"]
    list_calls = [r for r in sim.requests() if r["path"].endswith("/virtualMachines")]
    assert len(list_calls) == 3
    page = requests.get(_vmss_url(sim, "/virtualMachines"), verify=sim.info["ca_bundle"],
                        params={"api-version": "2026-04-01", "$expand": "instanceView"},
                        headers=_bearer(secret_credential, sim), timeout=10).json()
    assert len(page["value"]) == 2
    # As Compute writes it: absolute, api-version and an opaque $skiptoken that carries $expand
    next_url, query = page["nextLink"].split("?")
    assert next_url == _vmss_url(sim, "/virtualMachines")
    assert [k for k, _ in parse_qsl(query)] == ["api-version", "$skiptoken"]
    second = requests.get(page["nextLink"], verify=sim.info["ca_bundle"],
                          headers=_bearer(secret_credential, sim), timeout=10).json()
    assert [vm["instanceId"] for vm in second["value"]] == ["2", "3"]
    assert all("instanceView" in vm["properties"] for vm in second["value"])


def test_instance_views_carry_the_recorded_keys_and_vm_health_only_with_the_extension(
        simulator, compute_client):
    with_extension = simulator({"instances": 2, "health_extension": True})
    without = simulator({"instances": 2, "health_extension": False})

    vm = next(iter(compute_client(with_extension).virtual_machine_scale_set_vms.list(
        *_names(with_extension), expand="instanceView")))
    view = compute_client(with_extension).virtual_machine_scale_set_vms.get_instance_view(
        *_names(with_extension), "1")
    bare = compute_client(without).virtual_machine_scale_set_vms.get_instance_view(
        *_names(without), "1")

    assert _codes(vm.instance_view) == ("succeeded", "running", "healthy")
    assert _codes(view) == ("succeeded", "running", "healthy")
    assert view.vm_health.status.code == "HealthState/healthy"
    assert view.platform_fault_domain is not None and view.platform_update_domain is not None
    assert view.computer_name and view.os_name
    assert [s.code for s in bare.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert all(s.level == "Info" and s.display_status for s in bare.statuses)
    assert bare.vm_health is None


def test_reimage_goes_through_azures_state_sequence(simulator, compute_client):
    sim = simulator({"instances": 2, "timings": {"reimage_seconds": 0.6, "boot_seconds": 0.3,
                                                 "health_seconds": 0.3}})
    vms = compute_client(sim).virtual_machine_scale_set_vms

    poller = vms.begin_reimage(*_names(sim), "1", polling_interval=0.05)
    assert poller.status() == "InProgress"
    seen: list[tuple] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = _codes(vms.get_instance_view(*_names(sim), "1"))
        if not seen or seen[-1] != state:
            seen.append(state)
        if poller.done() and state == ("succeeded", "running", "healthy"):
            break
        time.sleep(0.03)
    poller.result()

    assert poller.status() == "Succeeded"
    assert seen == [
        ("updating", "stopping", None),
        ("updating", "stopped", None),
        ("updating", "starting", None),
        ("succeeded", "running", "initializing"),
        ("succeeded", "running", "healthy"),
    ]
    assert _codes(vms.get_instance_view(*_names(sim), "0")) == ("succeeded", "running", "healthy")


def test_a_failing_reimage_raises_with_the_scenarios_error_code(simulator, compute_client, fast_timings):
    sim = simulator({"timings": fast_timings, "instances": [
        {"id": "0"}, {"id": "7", "on_reimage": "fail", "error_code": "OSProvisioningTimedOut"}]})

    poller = compute_client(sim).virtual_machine_scale_set_vms.begin_reimage(*_names(sim), "7")
    with pytest.raises(HttpResponseError) as raised:
        poller.result()

    assert raised.value.error.code == "OSProvisioningTimedOut"
    assert poller.status() == "Failed"


def test_a_second_reimage_of_a_busy_instance_is_a_409_conflict(simulator, compute_client):
    sim = simulator({"instances": 2, "timings": {"reimage_seconds": 5}})
    vms = compute_client(sim).virtual_machine_scale_set_vms

    vms.begin_reimage(*_names(sim), "0")
    with pytest.raises(ResourceExistsError) as raised:
        vms.begin_reimage(*_names(sim), "0")

    assert raised.value.status_code == 409
    assert raised.value.error.code == "Conflict"
    reimages = [r["status"] for r in sim.requests() if r["path"].endswith("/0/reimage")]
    assert reimages == [202, 409]


def test_reimage_accepts_an_empty_json_body_and_answers_202_with_operation_urls(
        simulator, secret_credential):
    sim = simulator({"instances": 1})

    answer = requests.post(_vmss_url(sim, "/virtualMachines/0/reimageall"),
                           params={"api-version": "2026-04-01"}, data=b"",
                           headers={**_bearer(secret_credential, sim), "Content-Type": "application/json"},
                           verify=sim.info["ca_bundle"], timeout=10)

    assert answer.status_code == 202 and answer.content == b""
    operation = answer.headers["Azure-AsyncOperation"]
    prefix = (f"{sim.info['arm_endpoint']}subscriptions/{sim.info['subscription_id']}/providers/"
              "Microsoft.Compute/locations/eastus/operations/")
    assert operation.startswith(prefix) and "?p=" in operation
    assert operation.endswith("&api-version=2026-04-01")
    assert answer.headers["Location"] == operation.replace("&api-version", "&monitor=true&api-version")
    for header in ("x-ms-correlation-request-id", "x-ms-request-id", "x-ms-ratelimit-remaining-resource",
                   "x-ms-ratelimit-remaining-subscription-writes"):
        assert answer.headers[header]
    status = requests.get(operation, headers=_bearer(secret_credential, sim),
                          verify=sim.info["ca_bundle"], timeout=10)
    assert status.status_code == 200
    assert status.json()["status"] == "InProgress" and status.json()["name"]


def test_throttled_reads_are_retried_by_the_sdk_after_retry_after(simulator, compute_client):
    sim = simulator({"instances": 1, "faults": {"throttle_reads_every": 2, "retry_after_seconds": 1}})
    sets = compute_client(sim).virtual_machine_scale_sets

    sets.get(*_names(sim))  # read 1
    started = time.monotonic()
    scale_set = sets.get(*_names(sim))  # read 2 is throttled, read 3 answers
    elapsed = time.monotonic() - started

    assert scale_set.name == sim.info["scale_set_name"]
    assert elapsed >= 1.0
    gets = [r["status"] for r in sim.requests() if r["path"].endswith(sim.info["scale_set_name"])]
    assert gets == [200, 429, 200]


def test_throttled_answer_carries_retry_after_and_the_arm_envelope(simulator, secret_credential):
    sim = simulator({"instances": 1, "faults": {"throttle_writes_every": 1, "retry_after_seconds": 7}})

    answer = requests.post(_vmss_url(sim, "/virtualMachines/0/reimage"),
                           params={"api-version": "2026-04-01"}, headers=_bearer(secret_credential, sim),
                           verify=sim.info["ca_bundle"], timeout=10)

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    error = answer.json()["error"]
    assert error["code"] == "OperationNotAllowed"
    assert error["details"][0]["code"] == "TooManyRequests"
    # As Azure sends it: the operation group in the detail's target, and an innererror.
    assert error["details"][0]["target"] in error["details"][0]["message"]  # the operation group
    assert error["innererror"] == {"internalErrorCode": "TooManyRequestsReceived"}


def test_a_bad_parameter_is_named_in_the_errors_target(simulator, compute_client):
    sim = simulator({"instances": 1})
    group, name = _names(sim)

    with pytest.raises(HttpResponseError) as caught:  # a delete that names no instances
        compute_client(sim).virtual_machine_scale_sets.begin_delete_instances(group, name, {})

    assert caught.value.status_code == 400
    assert (caught.value.error.code, caught.value.error.target) == ("InvalidParameter", "instanceIds")
    assert caught.value.error.details[0].target == "instanceIds"


def test_missing_resources_are_404s_with_arms_codes(simulator, compute_client):
    sim = simulator({"instances": 1})
    client = compute_client(sim)
    group, name = _names(sim)

    with pytest.raises(ResourceNotFoundError) as no_set:
        client.virtual_machine_scale_sets.get(group, "no-such-set")
    with pytest.raises(ResourceNotFoundError) as no_group:
        client.virtual_machine_scale_sets.get("no-such-group", name)
    with pytest.raises(ResourceNotFoundError) as no_instance:
        client.virtual_machine_scale_set_vms.get_instance_view(group, name, "42")
    with pytest.raises(ResourceNotFoundError) as no_upgrade:
        client.virtual_machine_scale_set_rolling_upgrades.get_latest(group, name)

    assert no_set.value.error.code == "ResourceNotFound" and "no-such-set" in no_set.value.message
    assert no_group.value.error.code == "ResourceNotFound" and "no-such-group" in no_group.value.message
    assert no_instance.value.error.code == "NotFound"
    assert no_upgrade.value.status_code == 404


def test_capacity_patch_adds_instances_and_delete_removes_them(simulator, compute_client, fast_timings):
    sim = simulator({"instances": 2, "timings": fast_timings})
    client = compute_client(sim)
    group, name = _names(sim)

    updated = client.virtual_machine_scale_sets.begin_update(
        group, name, VirtualMachineScaleSetUpdate(sku=Sku(capacity=4))).result()
    ids = [vm.instance_id for vm in client.virtual_machine_scale_set_vms.list(group, name)]

    assert updated.sku.capacity == 4
    assert len(ids) == 4 and {"0", "1"} <= set(ids)
    added = sorted(set(ids) - {"0", "1"})

    client.virtual_machine_scale_sets.begin_delete_instances(
        group, name, {"instanceIds": added}).result()
    remaining = [vm.instance_id for vm in client.virtual_machine_scale_set_vms.list(group, name)]

    assert sorted(remaining) == ["0", "1"]
    assert client.virtual_machine_scale_sets.get(group, name).sku.capacity == 2
    patch = [r for r in sim.requests() if r["method"] == "PATCH"]
    assert [r["status"] for r in patch] == [200]


def test_whole_set_reimage_and_instance_view_routes(simulator, compute_client, fast_timings):
    sim = simulator({"instances": 3, "timings": fast_timings})
    client = compute_client(sim)
    group, name = _names(sim)

    client.virtual_machine_scale_sets.begin_reimage(
        group, name, {"instanceIds": ["0", "2"]}).result()
    view = client.virtual_machine_scale_sets.get_instance_view(group, name)

    assert view.virtual_machine.statuses_summary
    whole_set = [r for r in sim.requests() if r["path"].endswith(f"/{name}/reimage")]
    assert [r["status"] for r in whole_set] == [202]


def test_arm_refuses_missing_api_version_and_unknown_routes_loudly(simulator, secret_credential):
    sim = simulator({"instances": 1})
    auth = _bearer(secret_credential, sim)
    verify = sim.info["ca_bundle"]

    no_version = requests.get(_vmss_url(sim), headers=auth, verify=verify, timeout=10)
    bad_version = requests.get(_vmss_url(sim), params={"api-version": "latest"}, headers=auth,
                               verify=verify, timeout=10)
    preview = requests.get(_vmss_url(sim), params={"api-version": "2024-11-01-preview"}, headers=auth,
                           verify=verify, timeout=10)
    unknown = requests.post(_vmss_url(sim, "/virtualMachines/0/powerOff"),
                            params={"api-version": "2026-04-01"}, headers=auth, verify=verify, timeout=10)
    wrong_method = requests.delete(_vmss_url(sim, "/virtualMachines/0/reimage"),
                                   params={"api-version": "2026-04-01"}, headers=auth, verify=verify,
                                   timeout=10)

    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"
    assert bad_version.status_code == 400
    assert preview.status_code == 200
    assert unknown.status_code == 404
    assert "POST" in unknown.json()["error"]["message"] and "/powerOff" in unknown.json()["error"]["message"]
    assert wrong_method.status_code == 405
    assert "DELETE" in wrong_method.json()["error"]["message"]
    assert unknown.headers["x-ms-correlation-request-id"] and unknown.headers["x-ms-request-id"]


def test_cloud_metadata_and_subscription_list_for_other_clients(simulator, secret_credential):
    sim = simulator({"instances": 1})
    info = sim.info

    # `az cloud register` joins the endpoint's trailing slash and "/metadata/..." as is.
    metadata = requests.get(info["arm_endpoint"] + "/metadata/endpoints", params={"api-version": "2022-09-01"},
                            verify=info["ca_bundle"], timeout=10).json()
    listed = requests.get(info["arm_endpoint"] + "subscriptions", params={"api-version": "2022-12-01"},
                          headers=_bearer(secret_credential, sim), verify=info["ca_bundle"], timeout=10)

    assert metadata["authentication"]["loginEndpoint"] == info["authority_host"]
    assert metadata["resourceManager"] == info["arm_endpoint"]
    assert listed.status_code == 200
    [subscription] = listed.json()["value"]
    assert subscription["subscriptionId"] == info["subscription_id"]
    assert subscription["tenantId"] == info["tenant_id"]
