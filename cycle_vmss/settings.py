"""The run's settings: one table that says everything about each, one frozen dataclass, one loop.

Each `SettingSpec` holds a setting's names in the three front ends, its default, what it accepts,
its parser, its place and help in `--help`. Every front end hands `build_settings` the raw
strings it received (CLI flags, `INPUT_*` variables, `CYCLE_VMSS_*` variables) keyed by field
name, plus a `Spelling` that says how to name a setting back to its user. Bad input raises
`SettingError`, whose `str()` is the one line the user sees: the setting as they spelled it, the
value they gave and what is accepted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable, Mapping
from urllib.parse import urlsplit

from .gate import shown


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


class Refused(ValueError):
    """A parser's answer to a value it does not accept; `reason` when more than "not accepted"
    helps (an empty required value, a report file's missing folder)."""

    def __init__(self, reason: str | None = None):
        super().__init__(reason)
        self.reason = reason


# --- parsers: the raw string (never empty) to the typed value, or Refused ---------------------

_RG = re.compile(r"^[-\w.()]{1,90}$")
_VMSS = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_INT = re.compile(r"^[+]?\d+$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HTTPS = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


def camel(kebab: str) -> str:
    """`max-unavailable` -> `maxUnavailable`: the pipeline's and the report's spelling."""
    head, *rest = kebab.split("-")
    return head + "".join(p.title() for p in rest)


def _int(raw: str, lo: int, hi: int | None) -> int | None:
    raw = raw.strip()
    if not _INT.match(raw):
        return None
    n = int(raw)
    return None if n < lo or (hi is not None and n > hi) else n


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


def _accepted(value: object) -> object:
    if value is None:
        raise Refused()
    return value


def _matching(pattern: re.Pattern, *, lower: bool = False, not_ending: str = "") -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not pattern.match(value) or (not_ending and value.endswith(not_ending)):
            raise Refused()
        return value.lower() if lower else value
    return parse


def _whole(lo: int, hi: int | None) -> Callable[[str], int]:
    return lambda raw: _accepted(_int(raw, lo, hi))  # type: ignore[return-value]


def _boolean(raw: str) -> bool:
    return _accepted(parse_bool(raw))  # type: ignore[return-value]


def _budget(raw: str) -> Budget:
    return _accepted(parse_budget(raw))  # type: ignore[return-value]


def _health_source(raw: str) -> HealthSource:
    try:
        return HealthSource(raw.strip())
    except ValueError:
        raise Refused() from None


def _instance_ids(raw: str) -> tuple[str, ...]:
    ids = parse_instance_ids(raw)
    if ids is None or not all(_ID.match(i) for i in ids):
        raise Refused()
    return ids


def _report_file(raw: str) -> str:
    path = raw.strip()
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise Refused("its folder does not exist")
    if os.path.isdir(path):
        raise Refused("it is a folder")
    return path


@dataclass(frozen=True)
class Since:
    """`skip-reimaged-since`: a UTC time, or a duration back from the run's start."""

    at: datetime | None = None
    back: timedelta | None = None

    def resolve(self, started: float) -> float:
        """Epoch seconds: the time itself, or `back` before `started`."""
        if self.at is not None:
            return self.at.timestamp()
        return started - self.back.total_seconds()  # type: ignore[union-attr]

    def __str__(self) -> str:
        if self.at is not None:
            return self.at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        seconds = int(self.back.total_seconds())  # type: ignore[union-attr]
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"


_DURATION = re.compile(r"^(\d{1,6})([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def parse_since(raw: str) -> Since | None:
    """`2026-12-04T10:00:00Z` (ISO 8601 with an offset: a time without one is ambiguous) or
    `90m`, `12h`, `7d` back from the run's start."""
    raw = raw.strip()
    duration = _DURATION.match(raw)
    if duration:
        n = int(duration.group(1))
        return Since(back=timedelta(seconds=n * _UNIT_SECONDS[duration.group(2)])) if n else None
    try:
        at = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        return None
    return Since(at=at) if at.tzinfo is not None and "T" in raw.upper() else None


def _since(raw: str) -> Since:
    return _accepted(parse_since(raw))  # type: ignore[return-value]


def _stop_after(raw: str) -> Budget:
    budget = parse_budget(raw)
    if budget is None or budget.value < 1:
        raise Refused()
    return budget


def _command(raw: str) -> str:
    return raw.strip()


def _gate_url(raw: str) -> str:
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in url:
        raise Refused()
    return url


def _https_url(raw: str) -> str:
    return _matching(_HTTPS)(raw).rstrip("/")


# --- the table ----------------------------------------------------------------------------------

BOOLEAN = "true or false (also True, TRUE, False, FALSE)"
WHAT, PACE, RUN = "what to reimage", "availability and pace", "run"  # --help's groups, in order


@dataclass(frozen=True)
class SettingSpec:
    field: str
    cli: str  # long flag, without dashes; also the action's input name
    pipeline: str | None  # camelCase template parameter; None where the template has none
    default: str | None  # as the user would write it; None = required or no default
    accepted: str  # what an error message says is accepted
    parse: Callable[[str], object]  # a non-empty raw string to its value; raises Refused
    group: str  # where --help lists it
    help: str  # what it does, one sentence
    metavar: str | None = None  # None: the last word of the flag, upper case
    short: str | None = None
    required: bool = False

    @property
    def action(self) -> str:
        return self.cli

    @property
    def env(self) -> str:
        return "CYCLE_VMSS_" + self.cli.upper().replace("-", "_")

    @property
    def boolean(self) -> bool:
        return self.parse is _boolean

    def label(self, spelling: Spelling) -> str:
        if spelling is Spelling.CLI:
            return "--" + self.cli
        if spelling is Spelling.ACTION:
            return self.cli
        return self.pipeline or self.cli


_BUDGET = "a whole number >= 0 or a percentage from 0% to 100%"

# The product's settings in the order users read them. Front ends and their tests are generated
# from this table.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("resource_group", "resource-group", "resourceGroupName", None,
                "a resource group name: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'",
                _matching(_RG, not_ending="."), WHAT, "Resource group that holds the scale set.",
                "GROUP", "g", required=True),
    SettingSpec("scale_set_name", "scale-set-name", "scaleSetName", None,
                "a scale set name: 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit, not ending in '.' or '-'",
                _matching(_VMSS), WHAT, "The scale set to reimage.", "SCALE_SET", "n", required=True),
    SettingSpec("subscription_id", "subscription-id", None, None,
                "a subscription GUID such as 00000000-0000-0000-0000-000000000000",
                _matching(_GUID, lower=True), WHAT,
                "Subscription GUID; if not given, resolve from AZURE_SUBSCRIPTION_ID or the Azure CLI.", "GUID"),
    SettingSpec("timeout_minutes", "timeout-minutes", "timeoutMinutes", "30",
                "a whole number of minutes from 1 to 1440", _whole(1, 1440), PACE,
                "Per-instance timeout, also the longest a blocked run waits."),
    SettingSpec("ignore_initial_health", "ignore-initial-health", "ignoreInitialHealth", "false", BOOLEAN,
                _boolean, PACE, "Start even when in-scope instances are not ready (they are reimaged first)."),
    SettingSpec("ignore_availability", "ignore-availability", "ignoreAvailability", "false", BOOLEAN,
                _boolean, PACE, "Allow the number of ready instances to reach zero."),
    SettingSpec("max_unavailable", "max-unavailable", "maxUnavailable", "1", _BUDGET, _budget, PACE,
                "Instances that may be out of service at once (count, or % of N0 rounded down).", "N|N%"),
    SettingSpec("max_surge", "max-surge", "maxSurge", "0", _BUDGET, _budget, PACE,
                "Extra instances added before the rollout (count, or % of N0 rounded up).", "N|N%"),
    SettingSpec("min_ready_seconds", "min-ready-seconds", "minReadySeconds", "0",
                "a whole number of seconds from 0 to 3600", _whole(0, 3600), PACE,
                "How long an instance must stay ready before it counts as done."),
    SettingSpec("poll_interval_seconds", "poll-interval-seconds", "pollIntervalSeconds", "10",
                "a whole number of seconds from 1 to 300", _whole(1, 300), PACE,
                "Seconds between observations of the scale set."),
    SettingSpec("health_source", "health-source", "healthSource", "auto", "auto, extension or none",
                _health_source, PACE,
                "What makes an instance ready: the Application Health extension, or only power state.",
                "auto|extension|none"),
    SettingSpec("instance_ids", "instance-ids", "instanceIds", "",
                "instance ids (VM names on Flexible sets) separated by commas, spaces or newlines",
                _instance_ids, WHAT, "Instances in scope; if not given, all."),
    SettingSpec("reimage_all", "reimage-all", "reimageAll", "false", BOOLEAN, _boolean, WHAT,
                "Reimage OS and data disks (the reimageall operation)."),
    SettingSpec("apply_latest_model", "apply-latest-model", "applyLatestModel", "false", BOOLEAN,
                _boolean, WHAT, "Bring instances not on the scale set's latest model to it "
                "(manual upgrade) just before their reimage, in the same time out of service."),
    SettingSpec("skip_reimaged_since", "skip-reimaged-since", "skipReimagedSince", "",
                "a UTC time with its offset such as 2026-12-04T10:00:00Z, or a duration back "
                "from now: 90m, 12h or 7d", _since, WHAT,
                "Skip instances whose OS disk is newer than this: how a run continues where "
                "another stopped.", "TIME|DURATION"),
    SettingSpec("stop_after", "stop-after", "stopAfter", "",
                "a whole number >= 1 or a percentage from 1% to 100% of the instances to reimage",
                _stop_after, RUN, "End the run, paused, once this many reimages are done "
                "(a canary).", "N|N%"),
    SettingSpec("gate_url", "gate-url", "gateUrl", "", "an http:// or https:// URL", _gate_url,
                PACE, "Start a reimage only while a GET of this URL answers 2xx (a service-level "
                "health check); the run counts as blocked meanwhile.", "URL"),
    SettingSpec("pre_reimage_command", "pre-reimage-command", "preReimageCommand", "",
                "a shell command", _command, RUN, "Run this (a shell command, told the instance "
                "in CYCLE_VMSS_HOOK_* variables) before each instance's reimage request, once it "
                "is out of the budget: drain it. A failure fails the instance, not reimaged.",
                "COMMAND"),
    SettingSpec("post_ready_command", "post-ready-command", "postReadyCommand", "",
                "a shell command", _command, RUN, "Run this once each instance is ready again "
                "(after min-ready-seconds); the instance is done only when it exits 0.",
                "COMMAND"),
    SettingSpec("max_failed", "max-failed", "maxFailed", "0",
                "a whole number >= 0 or a percentage from 0% to 100% of the instances to reimage",
                _budget, RUN, "Go on until more than this many instances have failed (N%: of "
                "the instances to reimage, rounded down); the run still ends failed, naming them.",
                "N|N%"),
    SettingSpec("suspend_automatic_repairs", "suspend-automatic-repairs", "suspendAutomaticRepairs",
                "true", BOOLEAN, _boolean, RUN, "Suspend the scale set's automatic instance "
                "repairs for the run and resume them at its end, so a repair never replaces an "
                "instance still coming back from its reimage."),
    SettingSpec("dry_run", "dry-run", "dryRun", "false", BOOLEAN, _boolean, RUN,
                "Preflight and plan only; no write call."),
    SettingSpec("report_file", "report-file", "reportFile", "", "a file path whose folder exists",
                _report_file, RUN, "Where to write the JSON run report.", "PATH"),
    SettingSpec("arm_endpoint", "arm-endpoint", None, None,
                "an https:// URL such as https://management.azure.com", _https_url, RUN,
                "ARM base URL; if not given, AZURE_RESOURCE_MANAGER_ENDPOINT, else public Azure.", "URL"),
)
SPECS = {s.field: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """A run's settings, validated; what each means is in `SETTINGS` (a test keeps the defaults
    here equal to the table's)."""

    resource_group: str
    scale_set_name: str
    subscription_id: str | None = None
    timeout_minutes: int = 30
    ignore_initial_health: bool = False
    ignore_availability: bool = False
    max_unavailable: Budget = Budget(1)
    max_surge: Budget = Budget(0)
    min_ready_seconds: int = 0
    poll_interval_seconds: int = 10
    health_source: HealthSource = HealthSource.AUTO
    instance_ids: tuple[str, ...] | None = None
    reimage_all: bool = False
    apply_latest_model: bool = False
    skip_reimaged_since: Since | None = None
    stop_after: Budget | None = None
    gate_url: str | None = None
    pre_reimage_command: str | None = None
    post_ready_command: str | None = None
    max_failed: Budget = Budget(0)
    suspend_automatic_repairs: bool = True
    dry_run: bool = False
    report_file: str | None = None
    arm_endpoint: str | None = None
    # How the front end names settings back to its user (not a setting itself).
    spelling: Spelling = field(default=Spelling.ACTION, compare=False)

    def setting(self, name: str, value: str) -> str:
        """A setting with a value as this run's front end writes it: `--dry-run true`,
        `dry-run: true` or `dryRun: true`."""
        label = SPECS[name].label(self.spelling)
        return f"{label} {value}" if self.spelling is Spelling.CLI else f"{label}: {value}"

    def as_report(self) -> dict:
        """Settings for the run report, keyed by their pipeline (camelCase) spelling."""
        out = {}
        for f in fields(self):
            if f.name not in SPECS:
                continue
            value = getattr(self, f.name)
            if isinstance(value, (Budget, Since)):
                value = str(value)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "gate_url" and value:
                value = shown(value)  # a token in its query stays out of the report
            spec = SPECS[f.name]
            out[spec.pipeline or camel(spec.cli)] = value
        return out


class SettingError(ValueError):
    """Bad input. `str()` is the whole message for the user."""

    def __init__(self, label: str, value: str | None, accepted: str, reason: str | None = None):
        self.label, self.value, self.accepted = label, value, accepted
        shown = "(empty)" if value is None or value.strip() == "" else repr(value)
        why = f" ({reason})" if reason else ""
        super().__init__(f"{label}: {shown} is not accepted{why}; expected {accepted}")


def build_settings(raw: Mapping[str, str | None], spelling: Spelling = Spelling.CLI) -> Settings:
    """Validate raw strings keyed by field name (missing or empty = default) into Settings."""
    values: dict[str, object] = {}
    for spec in SETTINGS:
        given = raw.get(spec.field)
        if given is None or given.strip() == "":
            if spec.required:
                raise SettingError(spec.label(spelling), given, spec.accepted, "it is required")
            continue
        try:
            values[spec.field] = spec.parse(given)
        except Refused as refused:
            raise SettingError(spec.label(spelling), given, spec.accepted, refused.reason) from None
    # The one rule across settings: some instance must be allowed out of service.
    if values.get("max_unavailable", Budget(1)) == Budget(0) and values.get("max_surge", Budget(0)) == Budget(0):
        raise SettingError(
            f"{SPECS['max_unavailable'].label(spelling)} and {SPECS['max_surge'].label(spelling)}",
            "0 and 0", "at least one of them above 0 (otherwise no instance could ever be taken out)")
    return Settings(**values, spelling=spelling)  # type: ignore[arg-type]


def raw_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The `CYCLE_VMSS_*` variables, keyed by field name."""
    return {s.field: environ[s.env] for s in SETTINGS if s.env in environ}
