"""Preemption and automatic repairs through the real azure-mgmt-compute client over HTTPS: the
set's `automaticRepairsPolicy`, its instance view's `orchestrationServices`,
`setOrchestrationServiceState`, and a reimage whose operation ends Canceled/OperationPreempted."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.compute.models import OrchestrationServiceStateInput


def _names(sim) -> tuple[str, str]:
    return sim.info["resource_group"], sim.info["scale_set_name"]


def _repairs_state(client, sim) -> list[tuple[str, str]]:
    view = client.virtual_machine_scale_sets.get_instance_view(*_names(sim))
    return [(s.service_name, s.service_state) for s in view.orchestration_services or []]


def test_repairs_are_suspended_and_resumed_through_set_orchestration_service_state(
        simulator, compute_client):
    sim = simulator({"instances": 2, "automatic_repairs": {"grace_minutes": 30, "action": "Reimage"}})
    client = compute_client(sim)
    sets = client.virtual_machine_scale_sets

    policy = sets.get(*_names(sim)).properties.automatic_repairs_policy
    assert (policy.enabled, policy.grace_period, policy.repair_action) == (True, "PT30M", "Reimage")
    assert _repairs_state(client, sim) == [("AutomaticRepairs", "Running")]

    sets.begin_set_orchestration_service_state(*_names(sim), OrchestrationServiceStateInput(
        service_name="AutomaticRepairs", action="Suspend")).result()
    assert _repairs_state(client, sim) == [("AutomaticRepairs", "Suspended")]
    sets.begin_set_orchestration_service_state(*_names(sim), OrchestrationServiceStateInput(
        service_name="AutomaticRepairs", action="Resume")).result()
    assert _repairs_state(client, sim) == [("AutomaticRepairs", "Running")]

    calls = [r["status"] for r in sim.requests() if r["path"].endswith("/setOrchestrationServiceState")]
    assert calls == [202, 202]
    [(start, end)] = sim.history()["repairs"]["suspended"]
    assert start < end


def test_a_set_without_the_policy_shows_no_service_and_refuses_to_suspend(simulator, compute_client):
    sim = simulator({"instances": 1})
    client = compute_client(sim)
    assert client.virtual_machine_scale_sets.get(*_names(sim)).properties.automatic_repairs_policy is None
    assert _repairs_state(client, sim) == []
    with pytest.raises(HttpResponseError) as raised:
        client.virtual_machine_scale_sets.begin_set_orchestration_service_state(
            *_names(sim), OrchestrationServiceStateInput(service_name="AutomaticRepairs",
                                                         action="Suspend"))
    assert (raised.value.status_code, raised.value.error.code) == (400, "OperationNotAllowed")


def test_a_preempted_reimage_raises_canceled_operation_preempted_and_can_be_asked_again(
        simulator, compute_client, fast_timings):
    sim = simulator({"timings": fast_timings, "instances": [{"id": "0", "on_reimage": "preempted"},
                                                            {"id": "1"}]})
    vms = compute_client(sim).virtual_machine_scale_set_vms

    poller = vms.begin_reimage(*_names(sim), "0")
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    assert poller.status() == "Canceled"
    assert raised.value.error.code == "OperationPreempted"
    with pytest.raises(ResourceExistsError):  # Azure's preempting operation holds it for now
        vms.begin_reimage(*_names(sim), "0")

    deadline = time.monotonic() + 10
    while True:  # asked again once Azure's operation is over, as the product does
        try:
            vms.begin_reimage(*_names(sim), "0").result()
            break
        except ResourceExistsError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    reimages = sim.history()["instances"]["0"]["reimages"]
    assert [r["status"] for r in reimages] == ["Canceled", "Succeeded"]


def test_the_forbidden_principal_is_refused_naming_the_orchestration_action(
        simulator, compute_client, secret_credential):
    sim = simulator({"instances": 1, "automatic_repairs": {}})
    client = compute_client(sim, secret_credential(sim, client_id=sim.info["forbidden_client_id"]))
    with pytest.raises(HttpResponseError) as raised:
        client.virtual_machine_scale_sets.begin_set_orchestration_service_state(
            *_names(sim), OrchestrationServiceStateInput(service_name="AutomaticRepairs",
                                                         action="Suspend"))
    assert raised.value.status_code == 403
    assert ("Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"
            in raised.value.error.message)


def test_a_denied_action_is_refused_to_the_app_whose_other_requests_are_answered(
        simulator, compute_client):
    action = "Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"
    sim = simulator({"instances": 1, "automatic_repairs": {}, "denied_actions": [action]})
    client = compute_client(sim)
    assert _repairs_state(client, sim) == [("AutomaticRepairs", "Running")]  # reads answer
    with pytest.raises(HttpResponseError) as raised:
        client.virtual_machine_scale_sets.begin_set_orchestration_service_state(
            *_names(sim), OrchestrationServiceStateInput(service_name="AutomaticRepairs",
                                                         action="Suspend"))
    assert (raised.value.status_code, raised.value.error.code) == (403, "AuthorizationFailed")
    assert action in raised.value.error.message
    assert sim.history()["repairs"]["suspended"] == []
