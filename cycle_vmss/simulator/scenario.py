"""The simulator's scenario: what scale set to serve and how it behaves (docs/simulator.md).

Every key is optional; `load_scenario(None)` is the default demo set. Unknown keys and bad values
raise `ScenarioError` with one line naming the key, the value and what is accepted.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

POWER_STATES = ("running", "stopped", "deallocated")
HEALTH_STATES = ("healthy", "unhealthy", "unknown", "initializing")
# `flap`: after the reimage, health goes healthy/unhealthy `FLAPS` times (each health_seconds)
# before it stays healthy. `preempted`: the first reimage ends Canceled / OperationPreempted.
ON_REIMAGE = ("ok", "fail", "never-healthy", "flap", "preempted")
FLAPS = 2
ORCHESTRATION_MODES = ("Uniform", "Flexible")
FLEXIBLE_VM_NAMES = ("index", "guid")
# How a capacity increase fails: `AllocationFailed` (accepted; the operation and the new
# instances end failed) or `quota` (refused at once: 409 OperationNotAllowed, cores quota).
SCALE_OUT_ERRORS = ("AllocationFailed", "quota")
UPGRADE_MODES = ("Manual", "Automatic", "Rolling")
REPAIR_ACTIONS = ("Replace", "Reimage", "Restart")  # automaticRepairsPolicy.repairAction
# "azure": Compute's documented token buckets, per resource and per subscription (faults.py).
COMPUTE_LIMITS = ("none", "azure")
FAULT_DOMAIN_COUNT = 5  # Azure's default spread for a regional set

# Deterministic identities so a client can be configured before the simulator starts.
DEFAULT_SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
DEFAULT_TENANT_ID = "00000000-0000-4000-8000-0000000000a1"
DEFAULT_CLIENT_ID = "00000000-0000-4000-8000-0000000000c1"
DEFAULT_CLIENT_SECRET = "simulator-client-secret"
DEFAULT_GITHUB_OIDC_TOKEN = "simulator-github-request-token"
DEFAULT_ERROR_CODE = "VMExtensionProvisioningError"


class ScenarioError(ValueError):
    """A scenario that cannot be served; the message is one line naming the key."""


@dataclass(frozen=True)
class Timings:
    """Seconds each phase lasts. A reimage: power `stopping` for the first half of
    `reimage_seconds`, `stopped` for the second half, `starting` for `boot_seconds` (then the
    operation succeeds), vmHealth `initializing` for `health_seconds`. For
    `stale_health_seconds` after a reimage ends, vmHealth still shows the value and time it had
    before the reimage (Azure may show an old health just after an operation). A manual
    upgrade to the latest model takes the instance down and up like a reimage, for
    `manual_upgrade_seconds` instead of `reimage_seconds`."""

    reimage_seconds: float = 3
    boot_seconds: float = 1
    health_seconds: float = 1
    create_seconds: float = 3
    delete_seconds: float = 1
    manual_upgrade_seconds: float = 2
    # Overprovisioning: Azure starts deleting its extra instances this long after the requested
    # ones succeeded (the extras are ready meanwhile).
    overprovision_delete_seconds: float = 2
    stale_health_seconds: float = 0


@dataclass(frozen=True)
class Faults:
    throttle_reads_every: int = 0
    throttle_writes_every: int = 0
    retry_after_seconds: int = 1
    server_error_rate: float = 0.0
    seed: int = 1
    # The first reimage request of these instances (ids), or of the first N instances asked (a
    # count), answers 409 Conflict and starts nothing, as Azure does while it is busy.
    conflict_first_reimage: int | tuple[str, ...] = 0
    # Over HTTPS: the response to the first reimage of these instances is sent this many seconds
    # after the server accepted it (the reimage runs meanwhile), past a short client timeout.
    reimage_response_delay_seconds: float = 0.0
    reimage_response_delay_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceSpec:
    id: str
    zone: str | None = None
    fault_domain: int = 0
    power: str = "running"
    health: str = "healthy"
    protect_from_scale_set_actions: bool = False
    on_reimage: str = "ok"
    error_code: str = DEFAULT_ERROR_CODE
    timings: Timings = field(default_factory=Timings)
    # Flexible only: an ARM resource lock on the VM (its reimage answers 409 ScopeLocked), and
    # a VM parked in the set's standby pool (instanceView.isVMInStandbyPool). Protection from
    # scale-set actions applies to both kinds of set.
    locked: bool = False
    standby: bool = False
    latest_model_applied: bool = True
    # When its OS disk was provisioned, in seconds from the simulator's start (negative: before
    # it); None: a day before the start (an instance created later: then). A reimage moves it
    # to the reimage's end.
    os_disk_time: float | None = None


@dataclass(frozen=True)
class AutomaticRepairs:
    """The set's `automaticRepairsPolicy`: an instance unhealthy for `grace_minutes` after its
    last state change is repaired by `action` (Azure allows 10 to 90 minutes; any is taken)."""

    enabled: bool = True
    grace_minutes: float = 30
    action: str = "Replace"


@dataclass(frozen=True)
class Event:
    """Exactly one of: `health` (for `instance`, optionally only `for_seconds`),
    `delete_instance`, `add_instances`, `preempt_operation` (an instance whose reimage ends
    Canceled / OperationPreempted), `model_update` (the set's model changes: every instance is
    then not on the latest model)."""

    at_seconds: float
    instance: str | None = None
    health: str | None = None
    for_seconds: float | None = None
    delete_instance: str | None = None
    add_instances: int | None = None
    preempt_operation: str | None = None
    model_update: bool | None = None


@dataclass(frozen=True)
class Scenario:
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    resource_group: str = "rg-demo"
    scale_set_name: str = "vmss-demo"
    location: str = "eastus"
    orchestration_mode: str = "Uniform"
    upgrade_mode: str = "Manual"
    health_extension: bool = True
    page_size: int = 100
    token_lifetime_seconds: int = 3600
    github_oidc_token_lifetime_seconds: int = 300  # GitHub's OIDC tokens live minutes
    timings: Timings = field(default_factory=Timings)
    instances: tuple[InstanceSpec, ...] = ()
    zones: tuple[str, ...] = ("1", "2", "3")
    faults: Faults = field(default_factory=Faults)
    events: tuple[Event, ...] = ()
    rolling_upgrade_in_progress: bool = False  # `rollingUpgrades/latest` answers RollingForward
    # The model's upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade, and an
    # automatic OS image upgrade rolling forward now (its osUpgradeHistory entry, by Platform).
    automatic_os_upgrade: bool = False
    os_upgrade_in_progress: bool = False
    # Flexible only: VM names `<set>_<scenario id>` ("index") or `<set>_<8 hex>` ("guid", as
    # Azure names them); and a resource-group VM list that leaves vmHealth out (the single-VM
    # instance view keeps it), as Azure may.
    flexible_vm_names: str = "index"
    flexible_list_omits_health: bool = False
    overprovision: bool = False  # Uniform: a scale-out creates extra instances, then deletes them
    reuse_instance_ids: bool = False  # freed ids are given to later instances
    scale_out_error: str | None = None  # one of SCALE_OUT_ERRORS: every capacity increase fails
    automatic_repairs: AutomaticRepairs | None = None  # None: the model has no policy
    tenant_id: str = DEFAULT_TENANT_ID
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    github_oidc_token: str = DEFAULT_GITHUB_OIDC_TOKEN  # bearer for the OIDC request URL
    compute_limits: str = "none"
    # RBAC actions the app's role lacks (`Microsoft.Compute/.../action`): ARM answers 403
    # AuthorizationFailed for a request that needs one, whoever signed in.
    denied_actions: tuple[str, ...] = ()
    # Several scale sets in the subscription (`scale_sets`), each a whole scenario of its own
    # that carries the subscription's keys. A fleet's own fields are its first set's, so code
    # that serves one set serves that one. Empty: the scenario is one set, itself.
    scale_sets: tuple["Scenario", ...] = ()


# --- parsing -------------------------------------------------------------------------------

_TOP_KEYS = (
    "subscription_id", "resource_group", "scale_set_name", "location", "orchestration_mode",
    "upgrade_mode", "health_extension", "page_size", "token_lifetime_seconds",
    "github_oidc_token_lifetime_seconds", "timings",
    "instances", "zones", "faults", "events", "rolling_upgrade_in_progress",
    "automatic_os_upgrade", "os_upgrade_in_progress",
    "flexible_vm_names", "flexible_list_omits_health", "tenant_id",
    "client_id", "client_secret", "github_oidc_token", "overprovision", "reuse_instance_ids",
    "scale_out_error", "automatic_repairs", "compute_limits", "denied_actions", "scale_sets",
)
# What a `scale_sets` entry may not set: the subscription's and its identity's (one tenant, one
# app, one role, one region whose Compute buckets every set shares) and `faults.seed`, which
# each set's own seed is drawn from.
SUBSCRIPTION_KEYS = (
    "subscription_id", "location", "tenant_id", "client_id", "client_secret", "github_oidc_token",
    "token_lifetime_seconds", "github_oidc_token_lifetime_seconds", "compute_limits",
    "denied_actions",
)
# Merged key by key into an entry (the rest of a top-level key is replaced by the entry's).
_MERGED_KEYS = ("timings", "faults")
_INSTANCE_KEYS = (
    "id", "zone", "fault_domain", "power", "health", "protect_from_scale_set_actions",
    "locked", "standby", "on_reimage", "error_code", "timings", "latest_model_applied",
    "os_disk_time",
)
_EVENT_KINDS = ("health", "delete_instance", "add_instances", "preempt_operation", "model_update")
_EVENT_KEYS = ("at_seconds", "instance", "for_seconds", *_EVENT_KINDS)
_DEFAULT_INSTANCE_COUNT = 6


def _fail(where: str, value: Any, accepted: str) -> ScenarioError:
    return ScenarioError(f"scenario: {where} = {json.dumps(value)} is not accepted; expected {accepted}")


def _check_keys(obj: Any, accepted: tuple[str, ...], where: str) -> dict:
    if not isinstance(obj, dict):
        raise _fail(where or "scenario", obj, "a JSON object")
    for key in obj:
        if key not in accepted:
            name = f"{where}.{key}" if where else key
            raise ScenarioError(f"scenario: unknown key '{name}' (accepted: {', '.join(accepted)})")
    return obj


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, value, "a non-empty string")
    return value


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise _fail(where, value, "one of " + ", ".join(choices))
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, value, "true or false")
    return value


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, value, f"an integer >= {minimum}")
    return value


def _seconds(value: Any, where: str, unit: str = "seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _fail(where, value, f"a number of {unit} >= 0")
    return float(value)


def _offset(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, value, "a number of seconds from the start (negative: before it)")
    return float(value)


def _id(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return _str(value, where)


def _timings(obj: Any, base: Timings, where: str) -> Timings:
    accepted = tuple(Timings.__dataclass_fields__)
    _check_keys(obj, accepted, where)
    values = {k: _seconds(v, f"{where}.{k}") for k, v in obj.items()}
    return Timings(**{**base.__dict__, **values})


def _faults(obj: Any) -> Faults:
    _check_keys(obj, tuple(Faults.__dataclass_fields__), "faults")
    out = {}
    for key, value in obj.items():
        where = f"faults.{key}"
        if key == "server_error_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise _fail(where, value, "a number from 0.0 to 1.0")
            out[key] = float(value)
        elif key == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(where, value, "an integer")
            out[key] = value
        elif key == "conflict_first_reimage":
            if isinstance(value, list):
                out[key] = tuple(_id(v, f"{where}[{i}]") for i, v in enumerate(value))
            else:
                out[key] = _int(value, where)
        elif key == "reimage_response_delay_seconds":
            out[key] = _seconds(value, where)
        elif key == "reimage_response_delay_ids":
            if not isinstance(value, list):
                raise _fail(where, value, "a list of instance ids")
            out[key] = tuple(_id(v, f"{where}[{i}]") for i, v in enumerate(value))
        else:
            out[key] = _int(value, where)
    return Faults(**out)


def _default_placement(index: int, zones: tuple[str, ...]) -> tuple[str | None, int]:
    """Round-robin over zones; fault domains fill up within a zone."""
    if zones:
        return zones[index % len(zones)], (index // len(zones)) % FAULT_DOMAIN_COUNT
    return None, index % FAULT_DOMAIN_COUNT


def _instances(value: Any, zones: tuple[str, ...], timings: Timings) -> tuple[InstanceSpec, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        count = _int(value, "instances")
        return tuple(
            InstanceSpec(str(i), *_default_placement(i, zones), timings=timings) for i in range(count)
        )
    if not isinstance(value, list):
        raise _fail("instances", value, "a count (integer >= 0) or a list of instance objects")
    specs: list[InstanceSpec] = []
    for index, obj in enumerate(value):
        where = f"instances[{index}]"
        _check_keys(obj, _INSTANCE_KEYS, where)
        zone, fault_domain = _default_placement(index, zones)
        if "zone" in obj:
            zone = None if obj["zone"] is None else _id(obj["zone"], f"{where}.zone")
        if "fault_domain" in obj:
            fault_domain = _int(obj["fault_domain"], f"{where}.fault_domain")
        specs.append(InstanceSpec(
            id=_id(obj.get("id", str(index)), f"{where}.id"),
            zone=zone,
            fault_domain=fault_domain,
            power=_choice(obj.get("power", "running"), POWER_STATES, f"{where}.power"),
            health=_choice(obj.get("health", "healthy"), HEALTH_STATES, f"{where}.health"),
            protect_from_scale_set_actions=_bool(
                obj.get("protect_from_scale_set_actions", False), f"{where}.protect_from_scale_set_actions"),
            locked=_bool(obj.get("locked", False), f"{where}.locked"),
            standby=_bool(obj.get("standby", False), f"{where}.standby"),
            on_reimage=_choice(obj.get("on_reimage", "ok"), ON_REIMAGE, f"{where}.on_reimage"),
            error_code=_str(obj.get("error_code", DEFAULT_ERROR_CODE), f"{where}.error_code"),
            timings=_timings(obj.get("timings", {}), timings, f"{where}.timings"),
            latest_model_applied=_bool(obj.get("latest_model_applied", True),
                                       f"{where}.latest_model_applied"),
            os_disk_time=None if obj.get("os_disk_time") is None else _offset(
                obj["os_disk_time"], f"{where}.os_disk_time"),
        ))
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise ScenarioError(f"scenario: instances has the id '{spec.id}' twice; ids must be unique")
        seen.add(spec.id)
    return tuple(specs)


def _events(value: Any) -> tuple[Event, ...]:
    if not isinstance(value, list):
        raise _fail("events", value, "a list of event objects")
    events = []
    for index, obj in enumerate(value):
        where = f"events[{index}]"
        _check_keys(obj, _EVENT_KEYS, where)
        if "at_seconds" not in obj:
            raise ScenarioError(f"scenario: {where} has no 'at_seconds'; every event needs one")
        kinds = [k for k in _EVENT_KINDS if k in obj]
        if len(kinds) != 1:
            raise ScenarioError(
                f"scenario: {where} must have exactly one of "
                f"{', '.join(repr(k) for k in _EVENT_KINDS)} (it has {', '.join(kinds) or 'none'})")
        event = Event(at_seconds=_seconds(obj["at_seconds"], f"{where}.at_seconds"))
        if kinds == ["health"]:
            if "instance" not in obj:
                raise ScenarioError(f"scenario: {where} changes health but names no 'instance'")
            for_seconds = obj.get("for_seconds")
            event = Event(
                at_seconds=event.at_seconds,
                instance=_id(obj["instance"], f"{where}.instance"),
                health=_choice(obj["health"], HEALTH_STATES, f"{where}.health"),
                for_seconds=None if for_seconds is None else _seconds(for_seconds, f"{where}.for_seconds"),
            )
        else:
            for key in ("instance", "for_seconds"):
                if key in obj:
                    raise ScenarioError(f"scenario: {where}.{key} only applies to a 'health' event")
            if kinds == ["delete_instance"]:
                event = Event(event.at_seconds, delete_instance=_id(obj["delete_instance"], f"{where}.delete_instance"))
            elif kinds == ["model_update"]:
                if obj["model_update"] is not True:
                    raise _fail(f"{where}.model_update", obj["model_update"], "true")
                event = Event(event.at_seconds, model_update=True)
            elif kinds == ["preempt_operation"]:
                event = Event(event.at_seconds, preempt_operation=_id(
                    obj["preempt_operation"], f"{where}.preempt_operation"))
            else:
                event = Event(event.at_seconds, add_instances=_int(obj["add_instances"], f"{where}.add_instances", 1))
        events.append(event)
    return tuple(events)


def _automatic_repairs(obj: Any) -> AutomaticRepairs:
    where = "automatic_repairs"
    _check_keys(obj, tuple(AutomaticRepairs.__dataclass_fields__), where)
    default = AutomaticRepairs()
    return AutomaticRepairs(
        enabled=_bool(obj.get("enabled", default.enabled), f"{where}.enabled"),
        grace_minutes=_seconds(obj.get("grace_minutes", default.grace_minutes),
                               f"{where}.grace_minutes", "minutes"),
        action=_choice(obj.get("action", default.action), REPAIR_ACTIONS, f"{where}.action"))


def scenario_from_dict(data: dict) -> Scenario:
    _check_keys(data, _TOP_KEYS, "")
    if "scale_sets" in data:
        return _fleet(data)
    out: dict[str, Any] = {}
    for key in ("subscription_id", "resource_group", "scale_set_name", "location", "tenant_id",
                "client_id", "client_secret", "github_oidc_token"):
        if key in data:
            out[key] = _str(data[key], key)
    if "orchestration_mode" in data:
        out["orchestration_mode"] = _choice(data["orchestration_mode"], ORCHESTRATION_MODES, "orchestration_mode")
    if "upgrade_mode" in data:
        out["upgrade_mode"] = _choice(data["upgrade_mode"], UPGRADE_MODES, "upgrade_mode")
    if "compute_limits" in data:
        out["compute_limits"] = _choice(data["compute_limits"], COMPUTE_LIMITS, "compute_limits")
    if "flexible_vm_names" in data:
        out["flexible_vm_names"] = _choice(data["flexible_vm_names"], FLEXIBLE_VM_NAMES,
                                           "flexible_vm_names")
    for key in ("health_extension", "rolling_upgrade_in_progress", "automatic_os_upgrade",
                "os_upgrade_in_progress", "flexible_list_omits_health",
                "overprovision", "reuse_instance_ids"):
        if key in data:
            out[key] = _bool(data[key], key)
    if data.get("scale_out_error") is not None:
        out["scale_out_error"] = _choice(data["scale_out_error"], SCALE_OUT_ERRORS, "scale_out_error")
    for key in ("page_size", "token_lifetime_seconds", "github_oidc_token_lifetime_seconds"):
        if key in data:
            out[key] = _int(data[key], key, 1)
    timings = _timings(data.get("timings", {}), Timings(), "timings")
    out["timings"] = timings
    zones: tuple[str, ...] = Scenario.zones
    if "zones" in data:
        if not isinstance(data["zones"], list):
            raise _fail("zones", data["zones"], "a list of zone names such as [\"1\", \"2\", \"3\"] (or [])")
        zones = tuple(_id(z, f"zones[{i}]") for i, z in enumerate(data["zones"]))
    out["zones"] = zones
    out["instances"] = _instances(data.get("instances", _DEFAULT_INSTANCE_COUNT), zones, timings)
    if "faults" in data:
        out["faults"] = _faults(data["faults"])
    if "events" in data:
        out["events"] = _events(data["events"])
    if "automatic_repairs" in data:
        out["automatic_repairs"] = _automatic_repairs(data["automatic_repairs"])
    if "denied_actions" in data:
        if not isinstance(data["denied_actions"], list):
            raise _fail("denied_actions", data["denied_actions"], "a list of RBAC actions such as "
                        "[\"Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action\"]")
        out["denied_actions"] = tuple(_str(a, f"denied_actions[{i}]")
                                      for i, a in enumerate(data["denied_actions"]))
    scenario = Scenario(**out)
    _check_flexible_keys(scenario)
    if scenario.overprovision and scenario.orchestration_mode != "Uniform":
        # Learn, virtual-machine-scale-sets-design-overview: Uniform orchestration only.
        raise ScenarioError("scenario: overprovision = true needs orchestration_mode Uniform "
                            f"(this scenario is {scenario.orchestration_mode}); Azure "
                            "overprovisions Uniform sets only")
    return scenario


def _fleet(data: dict) -> Scenario:
    """`scale_sets`: each entry is the top level's scenario (its set-level keys the defaults,
    `timings` and `faults` merged key by key) with the entry's keys over it."""
    entries = data["scale_sets"]
    if not isinstance(entries, list) or not entries:
        raise _fail("scale_sets", entries, "a non-empty list of scale set objects")
    if isinstance(data.get("faults"), dict) and "seed" in data["faults"]:
        _faults({"seed": data["faults"]["seed"]})  # checked here, where it was written
    top = {k: v for k, v in data.items() if k != "scale_sets"}
    seed = top.get("faults", {}).get("seed", Faults.seed) if isinstance(top.get("faults"), dict) \
        else Faults.seed
    sets: list[Scenario] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        where = f"scale_sets[{index}]"
        _check_keys(entry, tuple(k for k in _TOP_KEYS if k != "scale_sets"), where)
        for key in SUBSCRIPTION_KEYS:
            if key in entry:
                raise ScenarioError(f"scenario: {where}.{key} is the subscription's; set it once "
                                    "at the top of the scenario, not in a scale_sets entry")
        if isinstance(entry.get("faults"), dict) and "seed" in entry["faults"]:
            raise ScenarioError(f"scenario: {where}.faults.seed is the subscription's; set it "
                                "once in the top-level faults (each set draws from it and its name)")
        if "scale_set_name" not in entry:
            raise ScenarioError(f"scenario: {where} has no 'scale_set_name'; every scale set "
                                "needs one")
        merged = {**top, **entry}
        for key in _MERGED_KEYS:
            if isinstance(top.get(key), dict) and isinstance(entry.get(key), dict):
                merged[key] = {**top[key], **entry[key]}
        try:
            scenario = scenario_from_dict(merged)
        except ScenarioError as exc:  # name the entry: "scenario: scale_sets[1]: instances ..."
            raise ScenarioError(str(exc).replace("scenario: ", f"scenario: {where}: ", 1)) from None
        key = (scenario.resource_group.lower(), scenario.scale_set_name.lower())
        if key in seen:
            raise ScenarioError(
                f"scenario: {where} is scale_sets[{seen[key]}] again (resource group "
                f"'{scenario.resource_group}', scale set '{scenario.scale_set_name}'); each "
                "scale set must be named once")
        seen[key] = index
        # Each set draws its ids (operations, vmIds) from its own seed, so that two sets'
        # operation ids never meet; the subscription's seed and the set's name make it.
        own_seed = random.Random(f"{seed}/{key[0]}/{key[1]}").getrandbits(32)
        sets.append(replace(scenario, faults=replace(scenario.faults, seed=own_seed)))
    return replace(sets[0], scale_sets=tuple(sets))


def _check_flexible_keys(scenario: Scenario) -> None:
    """Resource locks on VMs, standby pools, VM names and the resource-group VM list are
    Flexible things: a Uniform set's instances are not VMs. Protection applies to both."""
    if scenario.orchestration_mode == "Flexible":
        return
    wrong = [(f"instances[{index}].{key}", True) for index, spec in enumerate(scenario.instances)
             for key in ("locked", "standby") if getattr(spec, key)]
    if scenario.flexible_vm_names != Scenario.flexible_vm_names:
        wrong.append(("flexible_vm_names", scenario.flexible_vm_names))
    if scenario.flexible_list_omits_health:
        wrong.append(("flexible_list_omits_health", True))
    if wrong:
        key, value = wrong[0]
        raise ScenarioError(f"scenario: {key} = {json.dumps(value)} needs orchestration_mode "
                            f"Flexible (this scenario is {scenario.orchestration_mode})")


def load_scenario(source: str | Path | dict | Scenario | None = None) -> Scenario:
    """A Scenario from a JSON file path, a dict, an existing Scenario, or None (defaults)."""
    if source is None:
        return scenario_from_dict({})
    if isinstance(source, Scenario):
        return source
    if isinstance(source, dict):
        return scenario_from_dict(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"scenario: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario: {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return scenario_from_dict(data)
