"""Entra and GitHub OIDC endpoints through the real azure-identity credentials, and ARM's bearer
checks, over HTTPS."""

from __future__ import annotations

import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientAssertionCredential

from cycle_vmss.simulator.identity import EntraError, Identity, unverified_claims
from cycle_vmss.simulator.randomness import Randomness

ARM_SCOPE = "https://management.azure.com/.default"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def _token_requests(sim) -> list[dict]:
    return [r for r in sim.requests() if r["path"].endswith("/oauth2/v2.0/token")]


def _arm_requests(sim) -> list[dict]:
    return [r for r in sim.requests() if r["path"].startswith("/subscriptions/")]


def _github_token(sim, audience: str | None = EXCHANGE_AUDIENCE, request_token: str | None = None):
    info = sim.info
    return requests.get(info["github_oidc_url"], params={"audience": audience} if audience else None,
                        headers={"Authorization": f"Bearer {request_token or info['github_oidc_token']}"},
                        verify=info["ca_bundle"], timeout=10)


def _assertion_credential(sim, audience: str | None = EXCHANGE_AUDIENCE) -> ClientAssertionCredential:
    info = sim.info
    return ClientAssertionCredential(
        info["tenant_id"], info["client_id"], lambda: _github_token(sim, audience).json()["value"],
        authority=info["authority_host"], connection_verify=info["ca_bundle"])


def _get_scale_set(client, sim):
    return client.virtual_machine_scale_sets.get(sim.info["resource_group"], sim.info["scale_set_name"])


def _raw_get_scale_set(sim, headers: dict) -> requests.Response:
    info = sim.info
    url = (f"{info['arm_endpoint']}subscriptions/{info['subscription_id']}/resourceGroups/"
           f"{info['resource_group']}/providers/Microsoft.Compute/virtualMachineScaleSets/"
           f"{info['scale_set_name']}")
    return requests.get(url, params={"api-version": "2026-04-01"}, headers=headers,
                        verify=info["ca_bundle"], timeout=10)


def test_openid_configuration_points_at_the_simulator(simulator):
    sim = simulator()
    info = sim.info

    config = requests.get(f"{info['authority_host']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration",
                          verify=info["ca_bundle"], timeout=10).json()

    tenant_root = f"{info['authority_host']}/{info['tenant_id']}"
    assert config["token_endpoint"] == f"{tenant_root}/oauth2/v2.0/token"
    assert config["issuer"] == f"{tenant_root}/v2.0"
    assert config["authorization_endpoint"].startswith(tenant_root)


def test_client_secret_credential_gets_a_token_that_arm_accepts(simulator, compute_client, secret_credential):
    sim = simulator({"instances": 1})

    scale_set = _get_scale_set(compute_client(sim, secret_credential(sim)), sim)

    assert scale_set.sku.capacity == 1
    assert [r["status"] for r in _token_requests(sim)] == [200]
    assert [r["status"] for r in _arm_requests(sim)] == [200]


def test_a_wrong_secret_is_refused_like_entra(simulator, secret_credential):
    sim = simulator()

    with pytest.raises(ClientAuthenticationError) as raised:
        secret_credential(sim, client_secret="not-the-secret").get_token(ARM_SCOPE)

    assert "AADSTS7000215" in str(raised.value)
    assert [r["status"] for r in _token_requests(sim)] == [401]


def test_a_wrong_tenant_or_client_is_refused(simulator, secret_credential):
    sim = simulator()
    info = sim.info

    with pytest.raises(ClientAuthenticationError) as unknown_client:
        secret_credential(sim, client_id="11111111-1111-1111-1111-111111111111").get_token(ARM_SCOPE)
    answer = requests.post(f"{info['authority_host']}/not-our-tenant/oauth2/v2.0/token",
                           data={"grant_type": "client_credentials", "client_id": info["client_id"],
                                 "client_secret": info["client_secret"], "scope": ARM_SCOPE},
                           verify=info["ca_bundle"], timeout=10)

    assert "AADSTS700016" in str(unknown_client.value)
    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


def test_client_assertion_credential_fed_by_the_github_oidc_endpoint(simulator, compute_client):
    sim = simulator({"instances": 2})

    scale_set = _get_scale_set(compute_client(sim, _assertion_credential(sim)), sim)

    assert scale_set.sku.capacity == 2
    github = [r for r in sim.requests() if r["path"] == "/_github/oidc/token"]
    assert [r["status"] for r in github] == [200]
    assert [r["status"] for r in _token_requests(sim)] == [200]


def test_github_oidc_endpoint_needs_the_request_token_and_sets_the_audience(simulator):
    sim = simulator()

    refused = _github_token(sim, request_token="not-the-job-token")
    claims = unverified_claims(_github_token(sim, "api://custom").json()["value"])

    assert refused.status_code == 401
    assert claims["aud"] == "api://custom"
    assert claims["iss"] == sim.info["github_oidc_url"].split("/token?")[0]
    assert 0 < claims["exp"] - claims["iat"] <= 600


def test_an_assertion_for_another_audience_is_refused(simulator):
    sim = simulator()

    with pytest.raises(ClientAuthenticationError) as raised:
        _assertion_credential(sim, audience="https://github.com/octo-org").get_token(ARM_SCOPE)

    assert "AADSTS700212" in str(raised.value)


def test_an_expired_assertion_is_refused():
    now = [1_800_000_000.0]
    identity = Identity(base_url="https://127.0.0.1:1", tenant_id="t", client_id="c",
                        client_secret="s", github_oidc_token="g", subscription_id="sub",
                        randomness=Randomness(1), github_token_lifetime_seconds=300,
                        now=lambda: now[0])
    assertion = identity.issue_github_token("Bearer g", EXCHANGE_AUDIENCE)["value"]
    form = {"grant_type": "client_credentials", "client_id": "c", "scope": ARM_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}

    assert identity.issue_token("t", form)["token_type"] == "Bearer"
    now[0] += 301
    with pytest.raises(EntraError) as raised:
        identity.issue_token("t", form)
    assert raised.value.body["error"] == "invalid_client"
    assert raised.value.body["error_codes"] == [700024]


def test_arm_refuses_missing_forged_and_wrong_audience_tokens(simulator, secret_credential):
    sim = simulator()
    credential = secret_credential(sim)

    missing = _raw_get_scale_set(sim, {})
    forged = _raw_get_scale_set(sim, {"Authorization": f"Bearer {_github_token(sim).json()['value']}"})
    other_audience = credential.get_token("api://some-other-app/.default").token
    wrong_audience = _raw_get_scale_set(sim, {"Authorization": f"Bearer {other_audience}"})

    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith('Bearer authorization_uri="https://127.0.0.1:')
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert wrong_audience.status_code == 401
    assert wrong_audience.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert "some-other-app" in wrong_audience.json()["error"]["message"]


def test_the_sdk_sees_401_as_an_authentication_error(simulator, compute_client, secret_credential):
    sim = simulator()

    client = compute_client(sim, secret_credential(sim),
                            credential_scopes=["api://some-other-app/.default"])
    with pytest.raises(ClientAuthenticationError) as raised:
        _get_scale_set(client, sim)

    assert raised.value.status_code == 401


def test_a_principal_without_a_role_gets_403_authorization_failed(simulator, compute_client,
                                                                  secret_credential):
    sim = simulator()

    client = compute_client(sim, secret_credential(sim, client_id=sim.info["forbidden_client_id"]))
    with pytest.raises(HttpResponseError) as raised:
        _get_scale_set(client, sim)

    assert raised.value.status_code == 403
    assert raised.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Compute/virtualMachineScaleSets/read" in raised.value.message


def test_tokens_are_refreshed_when_they_expire_mid_run(simulator, compute_client, secret_credential):
    # Tokens live 2 s. azure-core and MSAL both treat a token with < 5 min left as due for
    # refresh, so what users see is: every call works and new tokens keep being fetched.
    sim = simulator({"instances": 1, "token_lifetime_seconds": 2})
    credential = secret_credential(sim)
    client = compute_client(sim, credential)
    first_token = credential.get_token(ARM_SCOPE).token

    _get_scale_set(client, sim)
    time.sleep(2.2)
    expired = _raw_get_scale_set(sim, {"Authorization": f"Bearer {first_token}"})
    scale_set = _get_scale_set(client, sim)

    assert scale_set.sku.capacity == 1
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert len(_token_requests(sim)) >= 2
    assert all(r["status"] == 200 for r in _token_requests(sim))
    sdk_calls = [r["status"] for r in _arm_requests(sim)]
    assert sdk_calls == [200, 401, 200]


def test_a_long_lived_token_is_fetched_once(simulator, compute_client, secret_credential):
    sim = simulator({"instances": 1})
    client = compute_client(sim, secret_credential(sim))

    for _ in range(3):
        _get_scale_set(client, sim)

    assert len(_token_requests(sim)) == 1
