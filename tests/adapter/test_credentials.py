"""Which Azure a run talks to: subscription, ARM endpoint, authority and CA bundle."""

from __future__ import annotations

import os
import stat

import pytest

from cycle_vmss.credentials import (
    PUBLIC_ARM_ENDPOINT,
    SetupError,
    build_credential,
    ca_bundle,
    resolve_arm_endpoint,
    resolve_subscription,
)

GUID = "0a1b2c3d-0000-4000-8000-00000000abcd"


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
        build_credential({"AZURE_AUTHORITY_HOST": "login.example"})


def test_default_chain_has_no_interactive_source():
    names = [type(c).__name__ for c in build_credential({}).credentials]
    assert "InteractiveBrowserCredential" not in names and "BrokerCredential" not in names
    assert names[0] == "EnvironmentCredential" and "AzureCliCredential" in names


def test_a_custom_authority_signs_in_without_instance_discovery(simulate, monkeypatch):
    """MSAL would ask login.microsoftonline.com about a foreign authority; offline that fails.
    The token comes from the simulator, so discovery was off."""
    sim = simulate()
    for key, value in sim.env().items():
        monkeypatch.setenv(key, value)
    token = build_credential().get_token(sim.info["arm_endpoint"].rstrip("/") + "/.default")
    assert token.token and token.expires_on > 0
    paths = [r["path"] for r in sim.requests()]
    assert any(p.endswith("/oauth2/v2.0/token") for p in paths)
    assert not any("discovery" in p for p in paths)
    assert os.environ["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1")
