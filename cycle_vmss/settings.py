"""The run's settings: one frozen dataclass, one table of names, one validator for all front ends.

Every front end hands `build_settings` the raw strings it received (CLI flags, `INPUT_*`
variables, `CYCLE_VMSS_*` variables) keyed by field name, plus a `Spelling` that says how to name
a setting back to its user. Bad input raises `SettingError`, whose `str()` is the one line the
user sees: the setting as they spelled it, the value they gave and what is accepted.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, fields
from enum import Enum
from typing import Mapping


class HealthSource(str, Enum):
    AUTO = "auto"
    EXTENSION = "extension"
    NONE = "none"


class Spelling(str, Enum):
    """How a front end names settings in messages."""

    CLI = "cli"
    ACTION = "action"
    PIPELINE = "pipeline"


@dataclass(frozen=True)
class Budget:
    """A count or a percentage of N0, as written."""

    value: int
    percent: bool = False

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class SettingSpec:
    field: str
    cli: str  # long flag, without dashes
    pipeline: str | None  # camelCase template parameter; None where the template has none
    default: str | None  # as the user would write it; None = required or no default
    accepted: str  # what an error message says is accepted
    short: str | None = None

    @property
    def action(self) -> str:
        return self.cli

    @property
    def env(self) -> str:
        return "CYCLE_VMSS_" + self.cli.upper().replace("-", "_")

    def label(self, spelling: Spelling) -> str:
        if spelling is Spelling.CLI:
            return "--" + self.cli
        if spelling is Spelling.ACTION:
            return self.cli
        return self.pipeline or self.cli


BOOLEAN = "true or false (also True, TRUE, False, FALSE)"

# The product's settings in SPEC order. Front ends and their tests are generated from this table.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("resource_group", "resource-group", "resourceGroupName", None,
                "a resource group name: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'", "g"),
    SettingSpec("scale_set_name", "scale-set-name", "scaleSetName", None,
                "a scale set name: 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit, not ending in '.' or '-'", "n"),
    SettingSpec("subscription_id", "subscription-id", None, None, "a subscription GUID such as 00000000-0000-0000-0000-000000000000"),
    SettingSpec("timeout_minutes", "timeout-minutes", "timeoutMinutes", "30", "a whole number of minutes from 1 to 1440"),
    SettingSpec("ignore_initial_health", "ignore-initial-health", "ignoreInitialHealth", "false", BOOLEAN),
    SettingSpec("ignore_availability", "ignore-availability", "ignoreAvailability", "false", BOOLEAN),
    SettingSpec("max_unavailable", "max-unavailable", "maxUnavailable", "1", "a whole number >= 0 or a percentage from 0% to 100%"),
    SettingSpec("max_surge", "max-surge", "maxSurge", "0", "a whole number >= 0 or a percentage from 0% to 100%"),
    SettingSpec("min_ready_seconds", "min-ready-seconds", "minReadySeconds", "0", "a whole number of seconds from 0 to 3600"),
    SettingSpec("poll_interval_seconds", "poll-interval-seconds", "pollIntervalSeconds", "10", "a whole number of seconds from 1 to 300"),
    SettingSpec("health_source", "health-source", "healthSource", "auto", "auto, extension or none"),
    SettingSpec("instance_ids", "instance-ids", "instanceIds", "", "instance ids (VM names on Flexible sets) separated by commas, spaces or newlines"),
    SettingSpec("reimage_all", "reimage-all", "reimageAll", "false", BOOLEAN),
    SettingSpec("dry_run", "dry-run", "dryRun", "false", BOOLEAN),
    SettingSpec("report_file", "report-file", "reportFile", "", "a file path whose folder exists"),
    SettingSpec("arm_endpoint", "arm-endpoint", None, None, "an https:// URL such as https://management.azure.com"),
)
SPECS = {s.field: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    resource_group: str
    """Resource group that holds the scale set."""
    scale_set_name: str
    """The scale set to reimage."""
    subscription_id: str | None = None
    """Subscription GUID; None = resolve from AZURE_SUBSCRIPTION_ID or the Azure CLI."""
    timeout_minutes: int = 30
    """Per-instance timeout, also the longest a blocked run waits."""
    ignore_initial_health: bool = False
    """Start even when in-scope instances are not ready (they are reimaged first)."""
    ignore_availability: bool = False
    """Allow the number of ready instances to reach zero."""
    max_unavailable: Budget = Budget(1)
    """Instances that may be out of service at once (count, or % of N0 rounded down)."""
    max_surge: Budget = Budget(0)
    """Extra instances added before the rollout (count, or % of N0 rounded up)."""
    min_ready_seconds: int = 0
    """How long an instance must stay ready before it counts as done."""
    poll_interval_seconds: int = 10
    """Seconds between observations of the scale set."""
    health_source: HealthSource = HealthSource.AUTO
    """What makes an instance ready: the Application Health extension, or only power state."""
    instance_ids: tuple[str, ...] | None = None
    """Instances in scope; None = all."""
    reimage_all: bool = False
    """Reimage OS and data disks (the reimageall operation)."""
    dry_run: bool = False
    """Preflight and plan only; no write call."""
    report_file: str | None = None
    """Where to write the JSON run report."""
    arm_endpoint: str | None = None
    """ARM base URL; None = AZURE_RESOURCE_MANAGER_ENDPOINT, else public Azure."""

    def as_report(self) -> dict:
        """Settings for the run report, keyed by their pipeline (camelCase) spelling."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Budget):
                value = str(value)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            spec = SPECS[f.name]
            out[spec.pipeline or _camel(spec.cli)] = value
        return out


class SettingError(ValueError):
    """Bad input. `str()` is the whole message for the user."""

    def __init__(self, label: str, value: str | None, accepted: str, reason: str | None = None):
        self.label, self.value, self.accepted = label, value, accepted
        shown = "(empty)" if value is None or value.strip() == "" else repr(value)
        why = f" ({reason})" if reason else ""
        super().__init__(f"{label}: {shown} is not accepted{why}; expected {accepted}")


_RG = re.compile(r"^[-\w.()]{1,90}$")
_VMSS = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
_INT = re.compile(r"^[+]?\d+$")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


def _camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(p.title() for p in rest)


def _int(raw: str, lo: int, hi: int | None) -> int | None:
    raw = raw.strip()
    if not _INT.match(raw):
        return None
    n = int(raw)
    if n < lo or (hi is not None and n > hi):
        return None
    return n


def parse_bool(raw: str) -> bool | None:
    raw = raw.strip()
    return True if raw in _TRUE else False if raw in _FALSE else None


def parse_budget(raw: str) -> Budget | None:
    raw = raw.strip()
    if raw.endswith("%"):
        n = _int(raw[:-1], 0, 100)
        return None if n is None else Budget(n, percent=True)
    n = _int(raw, 0, None)
    return None if n is None else Budget(n)


def parse_instance_ids(raw: str) -> tuple[str, ...] | None:
    ids = [p for p in re.split(r"[,\s]+", raw.strip()) if p]
    return tuple(dict.fromkeys(ids)) if ids else None


def build_settings(raw: Mapping[str, str | None], spelling: Spelling = Spelling.CLI) -> Settings:
    """Validate raw strings keyed by field name (missing or empty = default) into Settings."""
    values: dict[str, object] = {}

    def given(name: str) -> str | None:
        v = raw.get(name)
        if v is None or v.strip() == "":
            return None
        return v

    def fail(name: str, reason: str | None = None):
        spec = SPECS[name]
        raise SettingError(spec.label(spelling), raw.get(name), spec.accepted, reason)

    for name in ("resource_group", "scale_set_name"):
        v = given(name)
        pattern = _RG if name == "resource_group" else _VMSS
        if v is None:
            fail(name, "it is required")
        if not pattern.match(v.strip()) or (name == "resource_group" and v.strip().endswith(".")):
            fail(name)
        values[name] = v.strip()

    if (v := given("subscription_id")) is not None:
        try:
            uuid.UUID(v.strip())
        except ValueError:
            fail("subscription_id")
        if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", v.strip()):
            fail("subscription_id")
        values["subscription_id"] = v.strip().lower()

    for name, lo, hi in (("timeout_minutes", 1, 1440), ("min_ready_seconds", 0, 3600),
                         ("poll_interval_seconds", 1, 300)):
        if (v := given(name)) is not None:
            n = _int(v, lo, hi)
            if n is None:
                fail(name)
            values[name] = n

    for name in ("ignore_initial_health", "ignore_availability", "reimage_all", "dry_run"):
        if (v := given(name)) is not None:
            b = parse_bool(v)
            if b is None:
                fail(name)
            values[name] = b

    for name in ("max_unavailable", "max_surge"):
        if (v := given(name)) is not None:
            b = parse_budget(v)
            if b is None:
                fail(name)
            values[name] = b
    mu = values.get("max_unavailable", Budget(1))
    ms = values.get("max_surge", Budget(0))
    if mu == Budget(0) and ms == Budget(0):
        raise SettingError(
            f"{SPECS['max_unavailable'].label(spelling)} and {SPECS['max_surge'].label(spelling)}",
            "0 and 0", "at least one of them above 0 (otherwise no instance could ever be taken out)")

    if (v := given("health_source")) is not None:
        try:
            values["health_source"] = HealthSource(v.strip())
        except ValueError:
            fail("health_source")

    if (v := given("instance_ids")) is not None:
        ids = parse_instance_ids(v)
        if ids is None or any(not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", i) for i in ids):
            fail("instance_ids")
        values["instance_ids"] = ids

    if (v := given("report_file")) is not None:
        path = v.strip()
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path) or not os.path.isdir(folder):
            fail("report_file", "its folder does not exist" if not os.path.isdir(folder) else "it is a folder")
        values["report_file"] = path

    if (v := given("arm_endpoint")) is not None:
        url = v.strip()
        if not re.fullmatch(r"https://[^\s/$.?#][^\s]*", url):
            fail("arm_endpoint")
        values["arm_endpoint"] = url.rstrip("/")

    return Settings(**values)  # type: ignore[arg-type]


def raw_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The `CYCLE_VMSS_*` variables, keyed by field name."""
    return {s.field: environ[s.env] for s in SETTINGS if s.env in environ}

