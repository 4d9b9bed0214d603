"""How a run signs in (the default chain, the action's inputs, a pipeline's service connection)
and which Azure it talks to: subscription, ARM endpoint, authority and CA bundle."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cycle_vmss.credentials import (
    ID_TOKEN_YAML,
    PUBLIC_ARM_ENDPOINT,
    SetupError,
    authority,
    ca_bundle,
    cloud_variables,
    default_credential,
    for_action,
    for_pipeline,
    resolve_arm_endpoint,
    resolve_subscription,
)

GUID = "0a1b2c3d-0000-4000-8000-00000000abcd"
CLIENT, TENANT = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
# What AzureCLI@2 exposes for a workload-identity service connection, with System.AccessToken.
WORKLOAD = {"AZURESUBSCRIPTION_CLIENT_ID": CLIENT, "AZURESUBSCRIPTION_TENANT_ID": TENANT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "33333333-3333-3333-3333-333333333333",
            "SYSTEM_ACCESSTOKEN": "token"}


def test_subscription_setting_then_variable():
    assert resolve_subscription(GUID, {"AZURE_SUBSCRIPTION_ID": "x"}) == GUID
    assert resolve_subscription(None, {"AZURE_SUBSCRIPTION_ID": GUID.upper()}) == GUID


def test_subscription_variable_that_is_not_a_guid_is_named():
    with pytest.raises(SetupError, match="^AZURE_SUBSCRIPTION_ID: 'nope' is not accepted"):
        resolve_subscription(None, {"AZURE_SUBSCRIPTION_ID": "nope"})


def test_subscription_from_the_azure_cli(tmp_path, monkeypatch):
    az = tmp_path / "az"
    az.write_text(f"#!/bin/sh\n[ \"$1 $2\" = 'account show' ] && echo {GUID}\n")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_subscription(None, {}) == GUID


def test_no_subscription_anywhere_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `az` here
    with pytest.raises(SetupError) as caught:
        resolve_subscription(None, {})
    message = str(caught.value)
    assert "`subscription-id` input" in message and "--subscription-id" in message
    assert "AZURE_SUBSCRIPTION_ID" in message and "az login" in message


def test_arm_endpoint_setting_then_variable_then_public_azure():
    env = {"AZURE_RESOURCE_MANAGER_ENDPOINT": "https://management.usgovcloudapi.net/"}
    assert resolve_arm_endpoint("https://arm.local:8443", env) == "https://arm.local:8443"
    assert resolve_arm_endpoint(None, env) == "https://management.usgovcloudapi.net"
    assert resolve_arm_endpoint(None, {}) == PUBLIC_ARM_ENDPOINT
    with pytest.raises(SetupError, match="^AZURE_RESOURCE_MANAGER_ENDPOINT: 'http://x'"):
        resolve_arm_endpoint(None, {"AZURE_RESOURCE_MANAGER_ENDPOINT": "http://x"})


def test_ca_bundle_must_exist(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert ca_bundle({"REQUESTS_CA_BUNDLE": str(pem)}) == str(pem)
    assert ca_bundle({}) is None
    with pytest.raises(SetupError, match="^REQUESTS_CA_BUNDLE"):
        ca_bundle({"REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")})


def test_authority_host_must_be_https():
    with pytest.raises(SetupError, match="^AZURE_AUTHORITY_HOST"):
        default_credential({"AZURE_AUTHORITY_HOST": "login.example"})
    with pytest.raises(SetupError, match="^AZURE_AUTHORITY_HOST"):
        for_pipeline({**WORKLOAD, "AZURE_AUTHORITY_HOST": "http://login.example"})


def test_instance_discovery_only_for_microsofts_authorities():
    assert authority({}) == {}
    assert authority({"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"}) == {
        "authority": "https://login.microsoftonline.us/"}
    assert authority({"AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443"}) == {
        "authority": "https://127.0.0.1:8443", "disable_instance_discovery": True}


@pytest.mark.parametrize("name, host, arm", [
    ("AzureCloud", "https://login.microsoftonline.com", "https://management.azure.com"),
    ("azureusgovernment", "https://login.microsoftonline.us", "https://management.usgovcloudapi.net"),
    ("AzureChinaCloud", "https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
])
def test_an_environment_name_gives_its_clouds_sign_in_host_and_resource_manager(name, host, arm):
    assert cloud_variables(name) == {"AZURE_AUTHORITY_HOST": host, "AZURE_RESOURCE_MANAGER_ENDPOINT": arm}
    assert cloud_variables("") == {}


def test_default_chain_has_no_interactive_source():
    names = [type(c).__name__ for c in default_credential({}).credentials]
    assert "InteractiveBrowserCredential" not in names and "BrokerCredential" not in names
    assert names[0] == "EnvironmentCredential" and "AzureCliCredential" in names


def test_a_custom_authority_signs_in_without_instance_discovery(simulator, monkeypatch):
    """MSAL would ask login.microsoftonline.com about a foreign authority; offline that fails.
    The token comes from the simulator, so discovery was off."""
    sim = simulator({"instances": 1})
    for key, value in sim.env().items():
        monkeypatch.setenv(key, value)
    token = default_credential().get_token(sim.info["arm_endpoint"].rstrip("/") + "/.default")
    assert token.token and token.expires_on > 0
    paths = [r["path"] for r in sim.requests()]
    assert any(p.endswith("/oauth2/v2.0/token") for p in paths)
    assert not any("discovery" in p for p in paths)
    assert os.environ["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1")


# --- the action's inputs --------------------------------------------------------------------------

OIDC_ENV = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.example/x",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "bearer"}


def choose(inputs: dict[str, str], environ: dict[str, str] | None = None):
    credential, how = for_action(inputs, environ or {}, mask=lambda secret: None)
    return type(credential).__name__, how


def test_the_action_signs_in_in_the_documented_order():
    creds = json.dumps({"clientId": CLIENT, "clientSecret": "s", "tenantId": TENANT})
    assert choose({"creds": creds, "client-secret": "t", "client-id": CLIENT, "tenant-id": TENANT}) == (
        "ClientSecretCredential", f"service principal {CLIENT} (creds) in tenant {TENANT}")
    assert choose({"client-secret": "t", "client-id": CLIENT, "tenant-id": TENANT}, OIDC_ENV) == (
        "ClientSecretCredential", f"service principal {CLIENT} (client secret) in tenant {TENANT}")
    assert choose({"client-id": CLIENT, "tenant-id": TENANT}, OIDC_ENV) == (
        "ClientAssertionCredential", f"GitHub OIDC as {CLIENT} in tenant {TENANT}")
    assert choose({}, OIDC_ENV)[0] == "NoneType"  # the runner's default chain


@pytest.mark.parametrize("inputs, environ, message", [
    ({"creds": "[1]"}, {}, "creds: (hidden) is not accepted (not a JSON object)"),
    ({"creds": json.dumps({"clientId": CLIENT})}, {}, "(no clientSecret, tenantId)"),
    ({"creds": json.dumps({"clientId": "x", "clientSecret": "s", "tenantId": TENANT})}, {},
     "creds: 'x' is not accepted; expected a clientId GUID in creds"),
    ({"client-id": CLIENT}, {"AZURE_CLIENT_SECRET": "s"},
     "tenant-id: (empty) is not accepted (client-secret needs it)"),
    ({"client-id": CLIENT, "tenant-id": "no tenant"}, OIDC_ENV,
     "tenant-id: 'no tenant' is not accepted; expected a tenant id GUID or domain"),
    ({"tenant-id": TENANT}, OIDC_ENV, "client-id: (empty) is not accepted (GitHub OIDC needs"),
    ({"client-id": CLIENT, "tenant-id": TENANT}, {}, ID_TOKEN_YAML),
])
def test_the_action_refuses_sign_in_inputs_by_name(inputs, environ, message):
    with pytest.raises(SetupError) as caught:
        choose(inputs, environ)
    assert message in str(caught.value)


# --- a pipeline's service connection -----------------------------------------------------------

def test_workload_identity_with_the_access_token_uses_azure_pipelines_credential():
    from azure.identity import AzurePipelinesCredential
    assert isinstance(for_pipeline(WORKLOAD), AzurePipelinesCredential)


@pytest.mark.parametrize("missing", sorted(WORKLOAD))
def test_anything_less_falls_back_to_the_default_chain(missing):
    assert for_pipeline({k: v for k, v in WORKLOAD.items() if k != missing}) is None
    assert for_pipeline({**WORKLOAD, "SYSTEM_ACCESSTOKEN": "$(System.AccessToken)"}) is None


def test_a_malformed_tenant_of_the_service_connection_is_named():
    with pytest.raises(SetupError, match="^AZURESUBSCRIPTION_TENANT_ID: 'contoso tenant' is not"):
        for_pipeline({**WORKLOAD, "AZURESUBSCRIPTION_TENANT_ID": "contoso tenant"})
