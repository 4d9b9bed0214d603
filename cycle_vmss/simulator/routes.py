"""Every URL the simulator answers, as data: method + path template -> handler name.

A template is a path with `{name}` placeholders: `route.regex` matches it (case-insensitively,
as ARM's paths match), and `TEMPLATE.format(...)` builds it, so the resource ids the bodies
carry, the paths the in-process port records and the routes that serve them are one spelling.
`area` says which checks apply before the handler runs: `arm` routes need api-version and a bearer
token, count against the throttles and are recorded; `metadata`, `entra`, `github` and
`simulator` routes carry their own checks (or none). `action` is the RBAC action ARM names in a 403.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SUBSCRIPTION = "/subscriptions/{subscription}"
VMSS = SUBSCRIPTION + "/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
VM = VMSS + "/virtualMachines/{instance_id}"
# Flexible instances are ordinary VMs of the resource group.
VMS = SUBSCRIPTION + "/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines"
SINGLE_VM = VMS + "/{vm_name}"
OPERATION = SUBSCRIPTION + "/providers/Microsoft.Compute/locations/{location}/operations/{op_id}"
_TENANT = "/{tenant}"
# What a placeholder matches: one path segment; a tenant never starts with "_" (the simulator's
# own `/_github` and `/_simulator` paths).
_SEGMENT = r"[^/]+"
_PLACEHOLDER_PATTERNS = {"tenant": r"[^/_][^/]*"}

_VMSS_ACTION = "Microsoft.Compute/virtualMachineScaleSets"
_VM_ACTION = _VMSS_ACTION + "/virtualMachines"
_SINGLE_VM_ACTION = "Microsoft.Compute/virtualMachines"


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str
    area: str = "arm"
    action: str = ""

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.template)


@functools.cache
def _compiled(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ..., literal
    pattern = "".join(
        re.escape(part) if i % 2 == 0
        else f"(?P<{part}>{_PLACEHOLDER_PATTERNS.get(part, _SEGMENT)})"
        for i, part in enumerate(parts))
    return re.compile(pattern + r"/?\Z", re.IGNORECASE)


ROUTES: tuple[Route, ...] = (
    # Azure Resource Manager, Microsoft.Compute
    Route("GET", VMSS, "get_scale_set", action=f"{_VMSS_ACTION}/read"),
    Route("PATCH", VMSS, "update_scale_set", action=f"{_VMSS_ACTION}/write"),
    Route("PUT", VMSS, "put_scale_set", action=f"{_VMSS_ACTION}/write"),
    Route("GET", VMSS + "/instanceView", "get_scale_set_instance_view",
          action=f"{_VMSS_ACTION}/instanceView/read"),
    Route("GET", VMSS + "/rollingUpgrades/latest", "latest_rolling_upgrade",
          action=f"{_VMSS_ACTION}/rollingUpgrades/read"),
    Route("GET", VMSS + "/osUpgradeHistory", "os_upgrade_history",
          action=f"{_VMSS_ACTION}/osUpgradeHistory/read"),
    Route("POST", VMSS + "/delete", "delete_instances", action=f"{_VMSS_ACTION}/delete/action"),
    Route("POST", VMSS + "/reimage", "reimage_set", action=f"{_VMSS_ACTION}/reimage/action"),
    Route("POST", VMSS + "/reimageall", "reimage_set_all", action=f"{_VMSS_ACTION}/reimageall/action"),
    # Learn, "Modify a scale set": POST .../manualupgrade (REST: UpdateInstances)
    Route("POST", VMSS + "/manualupgrade", "manual_upgrade",
          action=f"{_VMSS_ACTION}/manualUpgrade/action"),
    Route("POST", VMSS + "/setOrchestrationServiceState", "set_orchestration_service_state",
          action=f"{_VMSS_ACTION}/setOrchestrationServiceState/action"),
    Route("GET", VMSS + "/virtualMachines", "list_instances", action=f"{_VM_ACTION}/read"),
    Route("GET", VM, "get_instance", action=f"{_VM_ACTION}/read"),
    Route("PUT", VM, "update_instance", action=f"{_VM_ACTION}/write"),
    Route("GET", VM + "/instanceView", "get_instance_view", action=f"{_VM_ACTION}/read"),
    Route("POST", VM + "/reimage", "reimage", action=f"{_VM_ACTION}/reimage/action"),
    Route("POST", VM + "/reimageall", "reimage_all", action=f"{_VM_ACTION}/reimageall/action"),
    # Flexible orchestration: the set's instances through the single-VM APIs (the scale-set
    # VM list, GET and PUT above answer for them too)
    Route("GET", VMS, "list_vms", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("GET", SINGLE_VM, "get_vm", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("GET", SINGLE_VM + "/instanceView", "get_vm_instance_view", action=f"{_SINGLE_VM_ACTION}/read"),
    Route("POST", SINGLE_VM + "/reimage", "reimage_vm", action=f"{_SINGLE_VM_ACTION}/reimage/action"),
    # Azure-AsyncOperation (status) and Location (monitor=true) share one path.
    Route("GET", OPERATION, "operation", action="Microsoft.Compute/locations/operations/read"),
    # Resource Manager itself: what `az cloud register` and `az login` read
    Route("GET", "/metadata/endpoints", "cloud_metadata", "metadata"),
    Route("GET", "/subscriptions", "list_subscriptions", action="Microsoft.Resources/subscriptions/read"),
    Route("GET", SUBSCRIPTION, "get_subscription", action="Microsoft.Resources/subscriptions/read"),
    Route("GET", "/tenants", "list_tenants", action="Microsoft.Resources/tenants/read"),
    # Microsoft Entra
    Route("GET", _TENANT + "/v2.0/.well-known/openid-configuration", "openid_configuration", "entra"),
    Route("GET", _TENANT + "/discovery/v2.0/keys", "jwks", "entra"),
    Route("GET", _TENANT + "/discovery/instance", "instance_discovery", "entra"),
    Route("POST", _TENANT + "/oauth2/v2.0/token", "token", "entra"),
    # GitHub Actions OIDC (ACTIONS_ID_TOKEN_REQUEST_URL)
    Route("GET", "/_github/oidc/token", "github_token", "github"),
    # Introspection for tests
    Route("GET", "/_simulator/requests", "simulator_requests", "simulator"),
    Route("GET", "/_simulator/history", "simulator_history", "simulator"),
)


def arm_scope(path: str) -> str:
    """The ARM scope a 403 names: the resource path without the action suffix."""
    return re.sub(r"/(reimage|reimageall|delete|instanceView|rollingUpgrades/latest|osUpgradeHistory|"
                  r"setOrchestrationServiceState|manualupgrade)/?$", "", path,
                  flags=re.IGNORECASE)


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
