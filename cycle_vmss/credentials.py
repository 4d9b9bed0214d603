"""Where a run signs in and which Azure it talks to: credential, ARM endpoint, subscription.

Public Azure needs no settings. `AZURE_AUTHORITY_HOST`, `AZURE_RESOURCE_MANAGER_ENDPOINT` (or
`--arm-endpoint`) and `REQUESTS_CA_BUNDLE` reach another cloud, Azure Stack or the local
simulator. Each front end chooses its credential here: `for_action` (the action's inputs and
GitHub OIDC), `for_pipeline` (an Azure Pipelines service connection); when they choose none, the
runner signs in with `default_credential`. Problems raise `SetupError`, whose `str()` is one line
for the user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Callable, Mapping

from azure.core import AzureClouds
from azure.core.credentials import TokenCredential
from azure.identity import AzureAuthorityHosts, DefaultAzureCredential
from azure.mgmt.core.tools import get_arm_endpoints


PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT = re.compile(r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$")
_MICROSOFT_AUTHORITIES = {
    AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
    AzureAuthorityHosts.AZURE_CHINA,
    AzureAuthorityHosts.AZURE_GOVERNMENT,
}
ID_TOKEN_YAML = """\
This job cannot request a GitHub OIDC token: give it the permission (and keep the ones it needs):
permissions:
  id-token: write
  contents: read"""


class SetupError(Exception):
    """The run cannot sign in or reach Azure as configured (exit 2, nothing touched)."""


def credential_scope(arm_endpoint: str) -> str:
    """The token scope for an ARM endpoint: azure-mgmt-core's table for Azure's own clouds (whose
    audience may differ from the endpoint), else `<endpoint>/.default` (Azure Stack, simulator)."""
    wanted = arm_endpoint.rstrip("/").lower()
    for cloud in AzureClouds:
        known = get_arm_endpoints(cloud)
        if known["resource_manager"].rstrip("/").lower() == wanted:
            return known["credential_scopes"][0]
    return arm_endpoint.rstrip("/") + "/.default"


def authority(environ: Mapping[str, str]) -> dict:
    """Keyword arguments for an azure-identity credential from AZURE_AUTHORITY_HOST: none for
    public Azure, else the authority, without instance discovery when it is not Microsoft's."""
    host = environ.get("AZURE_AUTHORITY_HOST", "").strip()
    if not host:
        return {}
    if not host.startswith("https://"):
        raise SetupError(f"AZURE_AUTHORITY_HOST: {host!r} is not accepted; "
                         "expected an https:// URL such as https://login.microsoftonline.com")
    kwargs: dict = {"authority": host}
    if host.removeprefix("https://").rstrip("/").lower() not in _MICROSOFT_AUTHORITIES:
        # MSAL would ask login.microsoftonline.com about a foreign authority; it cannot know it.
        kwargs["disable_instance_discovery"] = True
    return kwargs


# azure/login's `environment` names, each cloud's sign-in host (azure-identity's table) and ARM
# endpoint (azure-mgmt-core's table). Azure Stack has no fixed endpoints: arm-endpoint reaches it.
CLOUDS = {
    "AzureCloud": (AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, AzureClouds.AZURE_PUBLIC_CLOUD),
    "AzureUSGovernment": (AzureAuthorityHosts.AZURE_GOVERNMENT, AzureClouds.AZURE_US_GOVERNMENT),
    "AzureChinaCloud": (AzureAuthorityHosts.AZURE_CHINA, AzureClouds.AZURE_CHINA_CLOUD),
}


def cloud_variables(name: str) -> dict[str, str]:
    """AZURE_AUTHORITY_HOST and AZURE_RESOURCE_MANAGER_ENDPOINT for one of azure/login's
    `environment` names (any case, as azure/login takes them); {} when none is given."""
    if not name.strip():
        return {}
    found = {key.lower(): key for key in CLOUDS}.get(name.strip().lower())
    if found is None:
        raise SetupError(f"environment: {name!r} is not accepted; expected "
                         f"{', '.join(list(CLOUDS)[:-1])} or {list(CLOUDS)[-1]} (another cloud or "
                         "Azure Stack: arm-endpoint and the AZURE_AUTHORITY_HOST variable)")
    host, cloud = CLOUDS[found]
    return {"AZURE_AUTHORITY_HOST": f"https://{host}",
            "AZURE_RESOURCE_MANAGER_ENDPOINT": get_arm_endpoints(cloud)["resource_manager"].rstrip("/")}


def default_credential(environ: Mapping[str, str] | None = None) -> TokenCredential:
    """The default chain (environment, workload identity, managed identity, Azure CLI, ...)
    without anything that would open a browser or a sign-in window."""
    environ = os.environ if environ is None else environ
    return DefaultAzureCredential(exclude_interactive_browser_credential=True,
                                  exclude_broker_credential=True, **authority(environ))


# --- the GitHub action ------------------------------------------------------------------------

def parse_creds(raw: str) -> dict[str, str]:
    """The JSON azure/login accepts; only the four keys a service principal needs are used."""
    accepted = 'the JSON azure/login accepts: {"clientId", "clientSecret", "tenantId", "subscriptionId"}'
    try:
        creds = json.loads(raw)
    except ValueError:
        raise SetupError(f"creds: (hidden) is not accepted (not JSON); expected {accepted}") from None
    if not isinstance(creds, dict):
        raise SetupError(f"creds: (hidden) is not accepted (not a JSON object); expected {accepted}")
    missing = [k for k in ("clientId", "clientSecret", "tenantId") if not str(creds.get(k) or "").strip()]
    if missing:
        raise SetupError(f"creds: (hidden) is not accepted (no {', '.join(missing)}); expected {accepted}")
    return {k: str(v).strip() for k, v in creds.items() if isinstance(v, (str, int))}


def _check(name: str, value: str, pattern: re.Pattern, accepted: str) -> str:
    if not pattern.match(value):
        raise SetupError(f"{name}: {value!r} is not accepted; expected {accepted}")
    return value


def github_id_token(environ: Mapping[str, str], mask: Callable[[str], None],
                    audience: str = EXCHANGE_AUDIENCE) -> Callable[[], str]:
    """A callback returning a FRESH GitHub OIDC token on every call: Entra asks for a new
    assertion whenever its own token expires, and GitHub's token lives only minutes. Each token
    goes through `mask` before azure-identity sees it."""
    import requests
    from azure.core.exceptions import ClientAuthenticationError

    url, bearer = environ["ACTIONS_ID_TOKEN_REQUEST_URL"], environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}audience={requests.utils.quote(audience, safe='')}"

    def fetch() -> str:
        try:
            answer = requests.get(full, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
            token = answer.json().get("value") if answer.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError) as err:
            raise ClientAuthenticationError(message=f"GitHub OIDC token request failed: {type(err).__name__}") from None
        if not token:
            raise ClientAuthenticationError(
                message=f"GitHub OIDC token request failed: HTTP {answer.status_code}")
        mask(token)
        return token

    return fetch


def for_action(inputs: Mapping[str, str], environ: Mapping[str, str],
               mask: Callable[[str], None]) -> tuple[TokenCredential | None, str]:
    """(credential or None for the default chain, how it signs in), in the documented order:
    creds, client-secret (or AZURE_CLIENT_SECRET), GitHub OIDC, the default chain. `mask` hides
    each GitHub OIDC token in the log."""
    from azure.identity import ClientAssertionCredential, ClientSecretCredential

    kwargs = authority(environ)
    if inputs.get("creds"):
        creds = parse_creds(inputs["creds"])
        _check("creds", creds["clientId"], _GUID, "a clientId GUID in creds")
        _check("creds", creds["tenantId"], _TENANT, "a tenantId GUID or domain in creds")
        return (ClientSecretCredential(creds["tenantId"], creds["clientId"], creds["clientSecret"], **kwargs),
                f"service principal {creds['clientId']} (creds) in tenant {creds['tenantId']}")
    client_id = inputs.get("client-id") or environ.get("AZURE_CLIENT_ID", "").strip()
    tenant_id = inputs.get("tenant-id") or environ.get("AZURE_TENANT_ID", "").strip()
    secret = inputs.get("client-secret") or environ.get("AZURE_CLIENT_SECRET", "").strip()
    if secret:
        if not client_id or not tenant_id:
            missing = " and ".join(n for n, v in (("client-id", client_id), ("tenant-id", tenant_id)) if not v)
            raise SetupError(f"{missing}: (empty) is not accepted (client-secret needs it); expected "
                             "the service principal's application id and its tenant id")
        _check("client-id", client_id, _GUID, "an application (client) id GUID")
        _check("tenant-id", tenant_id, _TENANT, "a tenant id GUID or domain")
        return (ClientSecretCredential(tenant_id, client_id, secret, **kwargs),
                f"service principal {client_id} (client secret) in tenant {tenant_id}")
    if inputs.get("client-id") and inputs.get("tenant-id"):
        _check("client-id", client_id, _GUID, "an application (client) id GUID")
        _check("tenant-id", tenant_id, _TENANT, "a tenant id GUID or domain")
        if not (environ.get("ACTIONS_ID_TOKEN_REQUEST_URL") and environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")):
            raise SetupError(ID_TOKEN_YAML)
        audience = inputs.get("audience", "").strip() or EXCHANGE_AUDIENCE
        return (ClientAssertionCredential(tenant_id, client_id, github_id_token(environ, mask, audience),
                                          **kwargs),
                f"GitHub OIDC as {client_id} in tenant {tenant_id}")
    if inputs.get("client-id") or inputs.get("tenant-id"):
        missing = "tenant-id" if inputs.get("client-id") else "client-id"
        raise SetupError(f"{missing}: (empty) is not accepted (GitHub OIDC needs client-id and "
                         "tenant-id together); expected a GUID")
    return None, "the default credential chain (environment, workload identity, managed identity)"


# --- Azure Pipelines ----------------------------------------------------------------------------

# What AzureCLI@2 exposes for a workload-identity-federation service connection.
WORKLOAD_IDENTITY_VARIABLES = ("AZURESUBSCRIPTION_CLIENT_ID", "AZURESUBSCRIPTION_TENANT_ID",
                               "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")


def for_pipeline(environ: Mapping[str, str]) -> TokenCredential | None:
    """AzurePipelinesCredential when the task exposes a workload-identity service connection and
    System.AccessToken is mapped: it fetches a fresh federated token for every Entra request,
    where the Azure CLI session of the task ends after 10 to 60 minutes. Otherwise None: the
    runner's default chain (environment, workload identity, managed identity, Azure CLI)."""
    values = {name: environ.get(name, "").strip() for name in WORKLOAD_IDENTITY_VARIABLES}
    token = environ.get("SYSTEM_ACCESSTOKEN", "").strip()
    # An unmapped macro stays literal: "$(System.AccessToken)" is not a token.
    if not all(values.values()) or not token or token.startswith("$("):
        return None
    from azure.identity import AzurePipelinesCredential

    kwargs = authority(environ)
    try:
        return AzurePipelinesCredential(
            tenant_id=values["AZURESUBSCRIPTION_TENANT_ID"],
            client_id=values["AZURESUBSCRIPTION_CLIENT_ID"],
            service_connection_id=values["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
            system_access_token=token, **kwargs)
    except ValueError:  # every value is present, so azure-identity refused the tenant id
        raise SetupError(f"AZURESUBSCRIPTION_TENANT_ID: {values['AZURESUBSCRIPTION_TENANT_ID']!r} "
                         "is not accepted; expected the service connection's tenant id (a GUID "
                         "or a domain such as contoso.onmicrosoft.com)") from None


# --- which Azure --------------------------------------------------------------------------------

def resolve_arm_endpoint(setting: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`--arm-endpoint`, else AZURE_RESOURCE_MANAGER_ENDPOINT, else public Azure."""
    environ = os.environ if environ is None else environ
    if setting:
        return setting.rstrip("/")
    value = environ.get("AZURE_RESOURCE_MANAGER_ENDPOINT", "").strip()
    if not value:
        return PUBLIC_ARM_ENDPOINT
    if not re.fullmatch(r"https://[^\s/$.?#][^\s]*", value):
        raise SetupError(f"AZURE_RESOURCE_MANAGER_ENDPOINT: {value!r} is not accepted; expected an "
                         "https:// URL such as https://management.azure.com")
    return value.rstrip("/")


def _cli_subscription() -> str | None:
    az = shutil.which("az")
    if az is None:
        return None
    try:
        done = subprocess.run([az, "account", "show", "--query", "id", "--output", "tsv"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and _GUID.match(value) else None


def resolve_subscription(setting: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`--subscription-id`, else AZURE_SUBSCRIPTION_ID, else the Azure CLI's current subscription."""
    environ = os.environ if environ is None else environ
    if setting:
        return setting
    value = environ.get("AZURE_SUBSCRIPTION_ID", "").strip()
    if value:
        if not _GUID.match(value):
            raise SetupError(f"AZURE_SUBSCRIPTION_ID: {value!r} is not accepted; expected a "
                             "subscription GUID such as 00000000-0000-0000-0000-000000000000")
        return value.lower()
    value = _cli_subscription()
    if value:
        return value.lower()
    raise SetupError("no subscription: give the subscription-id setting (the action's "
                     "`subscription-id` input, or `--subscription-id`), set AZURE_SUBSCRIPTION_ID, "
                     "or sign in with `az login` and choose one with `az account set`")


def ca_bundle(environ: Mapping[str, str] | None = None) -> str | None:
    """REQUESTS_CA_BUNDLE when set (requests reads it too; passing it makes the choice explicit)."""
    environ = os.environ if environ is None else environ
    value = environ.get("REQUESTS_CA_BUNDLE", "").strip()
    if value and not os.path.isfile(value):
        raise SetupError(f"REQUESTS_CA_BUNDLE: {value!r} is not accepted; expected the path of a "
                         "PEM file of trusted certificates")
    return value or None
