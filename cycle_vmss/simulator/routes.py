"""Every URL the simulator answers, as data: method + path pattern -> handler name.

`area` says which checks apply before the handler runs: `arm` routes need api-version and a bearer
token, count against the backend's throttles and are recorded; `metadata`, `entra`, `github` and
`simulator` routes carry their own checks (or none). `action` is the RBAC action ARM names in a 403.
Paths match case-insensitively, as ARM's do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUB = r"/subscriptions/(?P<subscription>[^/]+)"
VMSS = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/virtualMachineScaleSets/(?P<name>[^/]+)"
VM = VMSS + r"/virtualMachines/(?P<instance_id>[^/]+)"
# Flexible instances are ordinary VMs of the resource group.
VMS = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/virtualMachines"
SINGLE_VM = VMS + r"/(?P<vm_name>[^/]+)"
OPERATION = _SUB + r"/providers/Microsoft\.Compute/locations/(?P<location>[^/]+)/operations/(?P<op_id>[^/]+)"
_TENANT = r"/(?P<tenant>[^/_][^/]*)"

_VMSS_ACTION = "Microsoft.Compute/virtualMachineScaleSets"
_VM_ACTION = _VMSS_ACTION + "/virtualMachines"
_SINGLE_VM_ACTION = "Microsoft.Compute/virtualMachines"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: str
    area: str = "arm"
    action: str = ""

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.pattern)


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _CACHE:
        _CACHE[pattern] = re.compile(pattern + r"/?\Z", re.IGNORECASE)
    return _CACHE[pattern]


ROUTES: tuple[Route, ...] = (
    # Azure Resource Manager, Microsoft.Compute
    Route("GET", VMSS, "get_scale_set", action=f"{_VMSS_ACTION}/read"),
    Route("PATCH", VMSS, "update_scale_set", action=f"{_VMSS_ACTION}/write"),
    Route("PUT", VMSS, "put_scale_set", action=f"{_VMSS_ACTION}/write"),
    Route("GET", VMSS + "/instanceView", "get_scale_set_instance_view", action=f"{_VMSS_ACTION}/read"),
    Route("GET", VMSS + "/rollingUpgrades/latest", "latest_rolling_upgrade",
          action=f"{_VMSS_ACTION}/rollingUpgrades/read"),
    Route("POST", VMSS + "/delete", "delete_instances", action=f"{_VMSS_ACTION}/delete/action"),
    Route("POST", VMSS + "/reimage", "reimage_set", action=f"{_VMSS_ACTION}/reimage/action"),
    Route("POST", VMSS + "/reimageall", "reimage_set_all", action=f"{_VMSS_ACTION}/reimageall/action"),
    Route("GET", VMSS + "/virtualMachines", "list_instances", action=f"{_VM_ACTION}/read"),
    Route("GET", VM, "get_instance", action=f"{_VM_ACTION}/read"),
    Route("GET", VM + "/instanceView", "get_instance_view", action=f"{_VM_ACTION}/read"),
    Route("POST", VM + "/reimage", "reimage", action=f"{_VM_ACTION}/reimage/action"),
    Route("POST", VM + "/reimageall", "reimage_all", action=f"{_VM_ACTION}/reimageall/action"),
    # Flexible orchestration: the set's instances through the single-VM APIs
    Route("GET", VMS, "list_vms", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("GET", SINGLE_VM, "get_vm", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("GET", SINGLE_VM + "/instanceView", "get_vm_instance_view", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("POST", SINGLE_VM + "/reimage", "reimage_vm", action=f"{_SINGLE_VM_ACTION}/reimage/action"),
    # Azure-AsyncOperation (status) and Location (monitor=true) share one path.
    Route("GET", OPERATION, "operation", action="Microsoft.Compute/locations/operations/read"),
    # Resource Manager itself: what `az cloud register` and `az login` read
    Route("GET", r"/metadata/endpoints", "cloud_metadata", "metadata"),
    Route("GET", r"/subscriptions", "list_subscriptions", action="Microsoft.Resources/subscriptions/read"),
    Route("GET", _SUB, "get_subscription", action="Microsoft.Resources/subscriptions/read"),
    Route("GET", r"/tenants", "list_tenants", action="Microsoft.Resources/tenants/read"),
    # Microsoft Entra
    Route("GET", _TENANT + r"/v2\.0/\.well-known/openid-configuration", "openid_configuration", "entra"),
    Route("GET", _TENANT + r"/discovery/v2\.0/keys", "jwks", "entra"),
    Route("GET", _TENANT + r"/discovery/instance", "instance_discovery", "entra"),
    Route("POST", _TENANT + r"/oauth2/v2\.0/token", "token", "entra"),
    # GitHub Actions OIDC (ACTIONS_ID_TOKEN_REQUEST_URL)
    Route("GET", r"/_github/oidc/token", "github_token", "github"),
    # Introspection for tests
    Route("GET", r"/_simulator/requests", "simulator_requests", "simulator"),
    Route("GET", r"/_simulator/history", "simulator_history", "simulator"),
)


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for `method path` and its path parameters; when none fits, the methods that
    the path does answer (to tell a 405 from a 404)."""
    allowed: list[str] = []
    for route in ROUTES:
        found = route.regex.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groupdict(), []
        allowed.append(route.method)
    return None, {}, sorted(set(allowed))
