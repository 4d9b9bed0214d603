"""AzureComputePort over real HTTPS: paging, operations, request counting and error mapping."""

from __future__ import annotations

import socket
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.identity import ClientSecretCredential

from cycle_vmss.azure_adapter import AzureComputePort, map_error
from cycle_vmss.compute import (
    AuthenticationFailed,
    AzureError,
    Conflict,
    Forbidden,
    NotFound,
    OperationState,
)
from cycle_vmss.credentials import credential_scope

from .conftest import arm_requests, make_port, wait


def test_list_follows_every_page_and_counts_one_read_per_page(simulate):
    sim = simulate({"instances": 5, "page_size": 2})
    port = make_port(sim)

    instances = port.list_instances()

    assert [i.id for i in instances] == ["0", "1", "2", "3", "4"]
    assert {i.zone for i in instances} == {"1", "2", "3"}
    assert all(i.provisioning == "succeeded" and i.power == "running" and i.health == "healthy"
               for i in instances)
    pages = [r for r in arm_requests(sim) if r["path"].endswith("/virtualMachines")]
    assert len(pages) == 3
    assert port.counts.reads == 3 and port.counts.writes == 0


def test_instance_fields_from_the_instance_view(simulate):
    sim = simulate({"instances": [
        {"id": "7", "zone": "2", "fault_domain": 3, "power": "deallocated"},
        {"id": "9", "health": "unhealthy", "protect_from_scale_set_actions": True},
    ], "health_extension": True})
    by_id = {i.id: i for i in make_port(sim).list_instances()}

    assert by_id["7"].zone == "2" and by_id["7"].fault_domain == 3
    assert by_id["7"].power == "deallocated" and not by_id["7"].in_service_candidate
    assert by_id["9"].health == "unhealthy" and by_id["9"].protected


def test_scale_set_model(simulate):
    sim = simulate({"instances": 4})
    scale_set = make_port(sim).get_scale_set()
    assert (scale_set.name, scale_set.capacity, scale_set.orchestration_mode) == ("vmss-demo", 4, "Uniform")
    assert scale_set.health_extension == "ApplicationHealthLinux"
    assert scale_set.subscription_id == sim.info["subscription_id"]

    bare = simulate({"health_extension": False})
    assert make_port(bare).get_scale_set().health_extension is None


def test_rolling_upgrade_404_means_none(simulate):
    assert make_port(simulate()).rolling_upgrade_in_progress() is False
    assert make_port(simulate({"rolling_upgrade_in_progress": True})).rolling_upgrade_in_progress() is True


def test_an_automatic_os_upgrade_shows_in_the_os_upgrade_history(simulate):
    port = make_port(simulate({"automatic_os_upgrade": True, "os_upgrade_in_progress": True}))
    assert port.get_scale_set().automatic_os_upgrade is True
    assert port.os_upgrade_in_progress() is True
    port = make_port(simulate())
    assert port.get_scale_set().automatic_os_upgrade is False
    assert port.os_upgrade_in_progress() is False


def test_reimage_status_never_blocks_and_reports_success(simulate):
    sim = simulate()
    port = make_port(sim)

    op = port.begin_reimage("1")
    began = time.monotonic()
    first = op.status()
    assert time.monotonic() - began < 0.2  # status() reads the poller; it never waits for it
    assert first.state is OperationState.IN_PROGRESS
    assert wait(op).state is OperationState.SUCCEEDED

    posts = [r for r in arm_requests(sim) if r["method"] == "POST"]
    assert [p["path"].rsplit("/", 2)[-2:] for p in posts] == [["1", "reimage"]]
    # Every status poll went through the counted pipeline as a read.
    polls = [r for r in arm_requests(sim) if "/operations/" in r["path"]]
    assert polls and port.counts.reads == len(polls)
    assert port.counts.writes == 1


def test_reimage_all_uses_the_reimageall_operation(simulate):
    sim = simulate()
    wait(make_port(sim).begin_reimage("0", all_disks=True))
    posts = [r["path"] for r in arm_requests(sim) if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0].endswith("/virtualMachines/0/reimageall")


def test_failed_operation_carries_azure_error_code(simulate):
    sim = simulate({"instances": [{"id": "0", "on_reimage": "fail",
                                   "error_code": "OSProvisioningTimedOut"}]})
    port = make_port(sim)
    status = wait(port.begin_reimage("0"))
    assert status.state is OperationState.FAILED
    assert status.error_code == "OSProvisioningTimedOut"
    assert "\n" not in status.error_message and "instance '0'" in status.error_message
    # `ProvisioningState/failed/OSProvisioningTimedOut` in the instance view reads as "failed".
    assert port.list_instances()[0].provisioning == "failed"


def test_a_preempted_operation_is_preempted_not_failed(simulate):
    """Azure ends it Canceled with OperationPreempted: a state of its own, which the rules ask
    once more, not a failure."""
    sim = simulate({"instances": [{"id": "0", "on_reimage": "preempted"}, {"id": "1"}]})
    status = wait(make_port(sim).begin_reimage("0"))
    assert status.state is OperationState.PREEMPTED
    assert status.error_code == "OperationPreempted"


def test_capacity_change_and_delete_instances(simulate):
    sim = simulate({"instances": 1})
    port = make_port(sim)

    assert wait(port.begin_set_capacity(2)).state is OperationState.SUCCEEDED
    assert port.get_scale_set().capacity == 2
    ids = [i.id for i in port.list_instances()]
    assert len(ids) == 2
    new = [i for i in ids if i != "0"]
    assert wait(port.begin_delete_instances(new)).state is OperationState.SUCCEEDED
    assert [i.id for i in port.list_instances()] == ["0"]
    writes = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in arm_requests(sim)
              if r["method"] != "GET"]
    assert writes == [("PATCH", "vmss-demo"), ("POST", "delete")]


def test_counts_every_http_request_including_throttled_retries(simulate):
    sim = simulate({"instances": 2, "faults": {"throttle_reads_every": 2, "retry_after_seconds": 1}})
    port = make_port(sim)

    port.get_scale_set()
    port.list_instances()  # the 2nd read answers 429; azure-core waits Retry-After and retries
    port.list_instances()

    seen = arm_requests(sim)
    assert port.counts.throttled == sum(1 for r in seen if r["status"] == 429) >= 1
    assert port.counts.reads == len(seen)
    assert len(port.list_instances()) == 2


def test_missing_scale_set_names_set_and_group(simulate):
    sim = simulate()
    with pytest.raises(NotFound) as caught:
        make_port(sim, scale_set_name="vmss-gone").get_scale_set()
    message = str(caught.value)  # what Azure said, in one line; the engine adds which set
    assert message.startswith("404 ResourceNotFound: ") and "/vmss-gone'" in message
    assert "\n" not in message
    assert caught.value.code == "ResourceNotFound" and caught.value.status == 404


def test_busy_instance_is_a_conflict(simulate):
    port = make_port(simulate())
    op = port.begin_reimage("2")
    with pytest.raises(Conflict) as caught:
        port.begin_reimage("2")
    assert caught.value.status == 409
    wait(op)


def test_missing_instance_is_not_found(simulate):
    with pytest.raises(NotFound) as caught:
        make_port(simulate()).begin_reimage("42")
    assert str(caught.value).startswith("404 NotFound: ")


def test_identity_without_role_is_forbidden_naming_the_action(simulate):
    sim = simulate()
    with pytest.raises(Forbidden) as caught:
        make_port(sim, client_id=sim.info["forbidden_client_id"]).get_scale_set()
    assert str(caught.value).startswith("403 AuthorizationFailed: ")
    assert "Microsoft.Compute/virtualMachineScaleSets/read" in str(caught.value)
    assert caught.value.status == 403


def test_wrong_secret_is_authentication_failed_in_one_line_without_the_secret(simulate):
    sim = simulate()
    with pytest.raises(AuthenticationFailed) as caught:
        make_port(sim, secret="not-the-secret").get_scale_set()
    message = str(caught.value)
    assert "\n" not in message and "AADSTS" in message
    assert "not-the-secret" not in message and sim.info["client_secret"] not in message
    assert arm_requests(sim) == []  # no token, no ARM call


@pytest.mark.parametrize("endpoint, scope", [
    ("https://management.azure.com/", "https://management.azure.com/.default"),
    ("https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net/.default"),
    ("https://127.0.0.1:8443/", "https://127.0.0.1:8443/.default"),
])
def test_credential_scope_is_the_arm_audience(endpoint, scope):
    assert credential_scope(endpoint) == scope


def test_an_endpoint_nothing_answers_is_named_as_a_network_problem(simulate):
    with socket.socket() as probe:  # a port on this machine that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = simulate().info  # signs in there, then asks a Resource Manager that is not there
    credential = ClientSecretCredential(info["tenant_id"], info["client_id"], info["client_secret"],
                                        authority=info["authority_host"], disable_instance_discovery=True,
                                        connection_verify=info["ca_bundle"])
    adapter = AzureComputePort(credential, info["subscription_id"], info["resource_group"],
                               info["scale_set_name"], arm_endpoint=f"https://127.0.0.1:{port}",
                               connection_verify=info["ca_bundle"])
    with pytest.raises(AzureError) as caught:
        adapter.get_scale_set()
    assert str(caught.value) == (
        f"cannot reach Azure Resource Manager at https://127.0.0.1:{port} (connection refused): a "
        "network problem, not an answer from Azure; check the network, any proxy (HTTPS_PROXY), "
        "DNS, and the arm-endpoint setting or AZURE_RESOURCE_MANAGER_ENDPOINT")
    assert caught.value.code == "NetworkError"


def test_an_arm_error_with_a_target_is_one_line_that_names_it(simulate, compute_client):
    sim = simulate({"instances": 1})
    with pytest.raises(HttpResponseError) as caught:  # over HTTPS: a delete naming no instances
        compute_client(sim).virtual_machine_scale_sets.begin_delete_instances(
            sim.info["resource_group"], sim.info["scale_set_name"], {})
    # The message names the parameter already: the target is not said twice.
    assert str(map_error(caught.value)) == \
        "400 InvalidParameter: Required parameter 'instanceIds' is missing (null)."
    # Where the message does not name it, the target does.
    caught.value.error.message = "The value of the parameter is invalid.\nSee details."
    assert str(map_error(caught.value)) == \
        "400 InvalidParameter: The value of the parameter is invalid. See details. (target: instanceIds)"


@pytest.mark.parametrize("raw, cause", [
    ("<urllib3.connection.HTTPSConnection object>: Failed to resolve 'x.example' ([Errno -2] Name "
     "or service not known)", "the name did not resolve in DNS"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
     "its TLS certificate is not trusted (REQUESTS_CA_BUNDLE)"),
    ("Unable to connect to proxy', OSError('Tunnel connection failed: 403 Forbidden')",
     "the proxy refused or failed"),
])
def test_the_likely_cause_of_a_network_failure_is_said_in_words(raw, cause):
    message = str(map_error(ServiceRequestError(raw), "https://management.azure.com"))
    assert message.startswith(f"cannot reach Azure Resource Manager at https://management.azure.com ({cause}): ")


# What DefaultAzureCredential says on a machine with no sign-in at all (azure-identity 1.27).
NO_SIGN_IN = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not fully configured.\n"
    "\tWorkloadIdentityCredential: WorkloadIdentityCredential authentication unavailable. The workload options are not fully configured.\n"
    "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.\n"
    "\tSharedTokenCacheCredential: SharedTokenCacheCredential authentication unavailable. No accounts were found in the cache.\n"
    "\tVisualStudioCodeCredential: VisualStudioCodeCredential requires the 'azure-identity-broker' package to be installed.\n"
    "\tAzureCliCredential: Azure CLI not found on path\n"
    "\tAzurePowerShellCredential: PowerShell is not installed\n"
    "\tAzureDeveloperCliCredential: Azure Developer CLI could not be found. Please visit https://aka.ms/azure-dev "
    "for installation instructions and then,once installed, authenticate to your Azure account using 'azd auth login'.\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines.")


def test_no_sign_in_anywhere_says_how_to_sign_in_in_one_short_line():
    error = map_error(ClientAuthenticationError(message=NO_SIGN_IN))
    assert isinstance(error, AuthenticationFailed)
    assert str(error) == ("no Azure credentials found here: sign in with `az login`, or set "
                          "AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or a federated "
                          "token file), or run where a managed identity is assigned")


def test_a_credential_that_was_there_and_failed_is_named():
    # The chain stops at the first source that is there and fails: it is the last one listed.
    text = NO_SIGN_IN.split("\tAzureCliCredential")[0] + (
        "\tAzureCliCredential: ERROR: AADSTS700082: The refresh token has expired.\n")
    message = str(map_error(ClientAuthenticationError(message=text)))
    assert "last: AzureCliCredential: ERROR: AADSTS700082: The refresh token has expired." in message
