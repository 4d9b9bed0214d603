"""Where a run authenticates and which Azure it talks to: credential, ARM endpoint, subscription.

Public Azure needs no settings. `AZURE_AUTHORITY_HOST`, `AZURE_RESOURCE_MANAGER_ENDPOINT` (or
`--arm-endpoint`) and `REQUESTS_CA_BUNDLE` reach another cloud, Azure Stack or the local
simulator. Problems raise `SetupError`, whose `str()` is one line for the user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Mapping

from azure.core import AzureClouds
from azure.core.credentials import TokenCredential
from azure.identity import AzureAuthorityHosts, DefaultAzureCredential
from azure.mgmt.core.tools import get_arm_endpoints


PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_MICROSOFT_AUTHORITIES = {
    AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
    AzureAuthorityHosts.AZURE_CHINA,
    AzureAuthorityHosts.AZURE_GOVERNMENT,
}


class SetupError(Exception):
    """The run cannot reach Azure as configured (exit 2, nothing touched)."""


def credential_scope(arm_endpoint: str) -> str:
    """The token scope for an ARM endpoint: azure-mgmt-core's table for Azure's own clouds (whose
    audience may differ from the endpoint), else `<endpoint>/.default` (Azure Stack, simulator)."""
    wanted = arm_endpoint.rstrip("/").lower()
    for cloud in AzureClouds:
        known = get_arm_endpoints(cloud)
        if known["resource_manager"].rstrip("/").lower() == wanted:
            return known["credential_scopes"][0]
    return arm_endpoint.rstrip("/") + "/.default"


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url.strip().rstrip("/")).lower()


def build_credential(environ: Mapping[str, str] | None = None) -> TokenCredential:
    """The default chain (environment, workload identity, managed identity, Azure CLI, ...)
    without anything that would open a browser or a sign-in window."""
    environ = os.environ if environ is None else environ
    kwargs: dict = {"exclude_interactive_browser_credential": True, "exclude_broker_credential": True}
    authority = environ.get("AZURE_AUTHORITY_HOST", "").strip()
    if authority:
        if not authority.startswith("https://"):
            raise SetupError(f"AZURE_AUTHORITY_HOST: {authority!r} is not accepted; "
                             "expected an https:// URL such as https://login.microsoftonline.com")
        if _host(authority) not in _MICROSOFT_AUTHORITIES:
            # MSAL would ask login.microsoftonline.com about a foreign authority; it cannot know it.
            kwargs["disable_instance_discovery"] = True
    return DefaultAzureCredential(**kwargs)


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
