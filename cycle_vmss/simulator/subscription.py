"""Several simulated scale sets in one subscription (the scenario's `scale_sets`).

`Subscription(scenario, clock)` holds one `Backend` per set, all on the same clock, and finds
the set a request is for: by resource group and scale set name, by a Flexible VM's name, by the
set a resource-group VM list's `$filter` names, or by an operation id (each set draws its ids
from its own seed, so two sets' operation ids do not meet). With `compute_limits: "azure"` every
set takes its tokens from ONE `TokenBuckets`: the subscription-level buckets are then drained by
all sets together, as Compute's are (Learn, "Compute throttling limits": each policy has a
bucket per subscription and region), while resource-level ones stay per set by their key.

A scenario without `scale_sets` is a subscription of one set. State only, no HTTP: the HTTP
layer (`http.SubscriptionApp`) and the in-process port (`SimulatorComputePort(sub.backend(rg,
name), rg, name)`) both reach the sets through it.
"""

from __future__ import annotations

import re
from typing import Iterable

from . import routes
from .backend import Backend
from .errors import BadRequest
from .faults import TokenBuckets
from .scenario import Scenario, load_scenario

# The set id in a resource-group VM list's one `$filter` (Backend checks the filter's syntax).
_FILTERED_SET = re.compile(r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
                           r"virtualMachineScaleSets/([^/']+)'\s*\Z", re.IGNORECASE)


class Subscription:
    def __init__(self, scenario: Scenario | dict | str | None = None, clock=None) -> None:
        if clock is None:
            from ..clock import SystemClock

            clock = SystemClock()
        self.scenario = load_scenario(scenario)
        self.clock = clock
        self.token_buckets = TokenBuckets(clock.now)  # used only with compute_limits "azure"
        self.backends: tuple[Backend, ...] = tuple(
            Backend(s, clock, token_buckets=self.token_buckets)
            for s in (self.scenario.scale_sets or (self.scenario,)))
        self._by_name = {_key(b.scenario.resource_group, b.scenario.scale_set_name): b
                         for b in self.backends}

    # --- finding a request's set ---------------------------------------------------------------

    def backend(self, resource_group: str, scale_set_name: str) -> Backend:
        found = self._by_name.get(_key(resource_group, scale_set_name))
        if found is None:
            raise KeyError(f"no scale set '{scale_set_name}' in resource group "
                           f"'{resource_group}' of this subscription")
        return found

    def route(self, method: str, path: str, vmss_filter: str | None = None) -> Backend | None:
        """The set an ARM request is for; None when no set of the subscription is (the first
        set then answers, with Azure's not-found error). A resource group's VM list without a
        `$filter`, in a group with several Flexible sets, is refused: the simulator serves that
        list one set at a time (the engine always filters it)."""
        route, params, _ = routes.match(method, path)
        if route is None or route.area != "arm":
            return None
        rg = params.get("rg", "")
        if "name" in params:
            return self._by_name.get(_key(rg, params["name"]))
        if "vm_name" in params:
            return self._flexible_vm(rg, params["vm_name"])
        if "op_id" in params:
            return next((b for b in self.backends if b.has_operation(params["op_id"])), None)
        if route.handler == "list_vms":
            return self._vm_list(rg, vmss_filter)
        return None

    def _flexible_vm(self, rg: str, vm_name: str) -> Backend | None:
        """A Flexible VM is named `<set>_<suffix>`: the set with the longest such prefix."""
        named = [b for b in self._in_group(rg) if b.scenario.orchestration_mode == "Flexible"
                 and vm_name.lower().startswith(b.scenario.scale_set_name.lower() + "_")]
        return max(named, key=lambda b: len(b.scenario.scale_set_name), default=None)

    def _vm_list(self, rg: str, vmss_filter: str | None) -> Backend | None:
        in_group = list(self._in_group(rg))
        if vmss_filter is not None:
            found = _FILTERED_SET.search(vmss_filter)
            named = self._by_name.get(_key(*found.groups())) if found else None
            # A set of another group, or of none: the group's first set answers (an empty list).
            return named if named in in_group else (in_group[0] if in_group else None)
        flexible = [b for b in in_group if b.scenario.orchestration_mode == "Flexible"]
        if len(flexible) > 1:
            raise BadRequest(f"The simulator lists resource group '{rg}''s VMs one scale set at a "
                             "time: add $filter='virtualMachineScaleSet/id' eq '<set id>' (the "
                             "group holds several Flexible scale sets).", code="InvalidParameter")
        return (flexible or in_group or [None])[0]

    def _in_group(self, rg: str) -> Iterable[Backend]:
        return (b for b in self.backends if b.scenario.resource_group.lower() == rg.lower())

    # --- what happened ----------------------------------------------------------------------

    def requests(self) -> list[dict]:
        """Every set's request log in one, in time order (a set's own order kept), each entry
        naming its set (`scale_set`: "<resource group>/<name>")."""
        merged = [{**entry, "scale_set": _label(b)} for b in self.backends for entry in b.requests()]
        return sorted(merged, key=lambda entry: entry["time"])

    def history(self) -> dict:
        """Each set's `history()`, by "<resource group>/<name>"."""
        return {_label(b): b.history() for b in self.backends}

    def __repr__(self) -> str:
        return f"Subscription({', '.join(_label(b) for b in self.backends)})"


def _key(resource_group: str, scale_set_name: str) -> tuple[str, str]:
    return resource_group.lower(), scale_set_name.lower()


def _label(backend: Backend) -> str:
    return f"{backend.scenario.resource_group}/{backend.scenario.scale_set_name}"
