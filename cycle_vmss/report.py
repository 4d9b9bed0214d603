"""The run report: one typed value that every front end renders.

`Report.finished` (the engine at the end of a run) and `Report.refused` (a run that never reached
the engine) build it; `as_dict` is its JSON form (the report file, shape in `cycle_vmss.events`);
`outputs` are the step outputs, computed here once for the action and for Azure Pipelines. The
small formatters the front ends share (ISO times, camelCase, phase titles, instance states) live
here too, so the three summaries read alike.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Mapping

from . import __version__
from .compute import Instance, RequestCounts, ScaleSet
from .decide import OUT_OF_SCOPE, Failure, Status, Track, short
from .health import states
from .settings import Settings

TOOL = "cycle-vmss"
# The report file's format, described by schemas/run-report.schema.json. Reports before it had
# no key: they are version 1, of the same shape.
SCHEMA_VERSION = 2
EXIT_CODES = {"succeeded": 0, "paused": 0, "dry-run": 0, "failed": 1, "refused": 2, "cancelled": 130}
# The step outputs by their action names; Azure Pipelines spells them in camelCase (`settings.camel`).
OUTPUTS = ("result", "reimaged-instances", "failed-instances", "skipped-instances",
           "remaining-instances", "started-at", "duration-seconds", "report-file")
# Instances in scope that a run which ended early left to the next one.
REMAINING = ("not-started", "in-flight", "failed")
PHASE_TITLES = {"preflight": "Preflight (read only)", "surge": "Surge: raise capacity",
                "rolling": "Rolling reimage", "restore": "Restore capacity", "results": "Results"}


# --- formatters the front ends share ------------------------------------------------------------

def iso(t: float | None) -> str | None:
    """ISO 8601 UTC to the second (`2026-01-01T00:00:10Z`), as the report writes times."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def state_slashes(states: Mapping[str, str | None] | None) -> str:
    """`succeeded/running/healthy` (provisioning/power/health, `-` for unknown); "" for none."""
    if not states:
        return ""
    return "/".join(str(states.get(k) or "-") for k in ("provisioning", "power", "health"))


def _seconds(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 1)


# --- the report -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceError:
    code: str | None
    message: str | None


@dataclass(frozen=True)
class InstanceRow:
    """One instance of the set as it was at the start, with what the run did to it. Times are
    epoch seconds; `action` is a `decide.Status` value."""

    id: str
    action: str
    name: str | None = None
    zone: str | None = None
    fault_domain: int | None = None
    reason: str | None = None
    reimage_start: float | None = None
    reimage_end: float | None = None
    ready_time: float | None = None
    reimage_seconds: float | None = None
    out_of_service_seconds: float | None = None
    last_states: Mapping[str, str | None] | None = None
    error: InstanceError | None = None
    model_upgraded: bool = False

    @classmethod
    def of(cls, track: Track, first: Instance) -> InstanceRow:
        """The row of one instance the engine tracked; `first` is how preflight saw it."""
        done = track.status is Status.DONE
        error = None
        if track.status is Status.FAILED or (track.error_code and not done):
            error = InstanceError(track.error_code, track.error_message)
        elif track.preempted is not None:  # reimaged when asked once more: the row says why
            error = InstanceError(*track.preempted)
        ready = track.ready_since if done else None
        return cls(id=track.id, action=track.status.value, name=first.name, zone=first.zone,
                   fault_domain=first.fault_domain, reason=track.reason,
                   reimage_start=track.started, reimage_end=track.op_end, ready_time=ready,
                   reimage_seconds=_seconds(track.started, track.op_end),
                   out_of_service_seconds=_seconds(track.started, ready),
                   last_states=states(track.last or first), error=error,
                   model_upgraded=track.model_upgraded)

    @property
    def in_scope(self) -> bool:
        """Instances outside `instance-ids` were never asked for: no output or warning names them."""
        return self.reason != OUT_OF_SCOPE

    def as_dict(self) -> dict:
        return {
            "id": self.id, "name": self.name, "zone": self.zone, "faultDomain": self.fault_domain,
            "action": self.action, "reason": self.reason,
            "reimageStart": iso(self.reimage_start), "reimageEnd": iso(self.reimage_end),
            "readyTime": iso(self.ready_time),
            "reimageSeconds": self.reimage_seconds, "outOfServiceSeconds": self.out_of_service_seconds,
            "lastStates": None if self.last_states is None else dict(self.last_states),
            "error": None if self.error is None else {"code": self.error.code,
                                                      "message": self.error.message},
            "modelUpgraded": self.model_upgraded,
        }


@dataclass(frozen=True)
class Capacity:
    before: int | None = None
    during: int | None = None
    after: int | None = None


@dataclass(frozen=True)
class Report:
    """What a run did (times are epoch seconds). `settings` is `Settings.as_report()`; `plan` the
    engine's plan event data; both are empty when the run was refused before they existed."""

    result: str  # succeeded | paused | dry-run | failed | refused | cancelled
    message: str
    resource_group: str | None
    scale_set: str | None
    start_time: float
    end_time: float
    duration_seconds: float
    subscription_id: str | None = None
    orchestration_mode: str | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    failure: Failure | None = None
    plan: Mapping[str, object] | None = None
    capacity: Capacity = Capacity()
    requests: RequestCounts = field(default_factory=RequestCounts)
    warnings: tuple[str, ...] = ()
    instances: tuple[InstanceRow, ...] = ()
    # The skip-reimaged-since that continues a run which ended with instances left: its own
    # skip-reimaged-since, or else its start. None when nothing is left.
    continue_since: float | None = None
    # The set's automatic repairs: {"state", "suspended", "resumed"}; None when not enabled.
    automatic_repairs: Mapping[str, object] | None = None
    version: str = __version__

    @classmethod
    def finished(cls, settings: Settings, scale_set: ScaleSet | None, *, start: float, end: float,
                 result: str, message: str, failure: Failure | None,
                 plan: Mapping[str, object] | None, capacity: Mapping[str, int | None],
                 requests: RequestCounts, warnings: list[str],
                 instances: list[InstanceRow], reimaged_since: float | None = None,
                 automatic_repairs: Mapping[str, object] | None = None) -> Report:
        """The report of a run the engine ran (whatever its result). `reimaged_since` is the
        run's own skip-reimaged-since, resolved."""
        left = result in ("paused", "failed", "cancelled") and any(
            row.in_scope and row.action in REMAINING for row in instances)
        return cls(
            continue_since=(reimaged_since if reimaged_since is not None else start) if left else None,
            result=result, message=message, resource_group=settings.resource_group,
            scale_set=settings.scale_set_name, start_time=start, end_time=end,
            duration_seconds=round(end - start, 1),
            subscription_id=scale_set.subscription_id if scale_set else settings.subscription_id,
            orchestration_mode=scale_set.orchestration_mode if scale_set else None,
            settings=settings.as_report(), failure=failure, plan=plan, capacity=Capacity(**capacity),
            requests=replace(requests), warnings=tuple(warnings), instances=tuple(instances),
            automatic_repairs=automatic_repairs)

    @classmethod
    def refused(cls, message: str, *, settings: Settings | None = None,
                resource_group: str | None = None, scale_set: str | None = None,
                subscription_id: str | None = None, start: float | None = None,
                requests: RequestCounts | None = None) -> Report:
        """The report of a run that never reached the engine: bad input or sign-in setup (before
        there were settings, the front end names the group and set as the user gave them)."""
        end = time.time()
        start = end if start is None else start
        if settings is not None:
            resource_group, scale_set = settings.resource_group, settings.scale_set_name
            subscription_id = subscription_id or settings.subscription_id
        return cls(
            result="refused", message=message, resource_group=resource_group, scale_set=scale_set,
            start_time=start, end_time=end, duration_seconds=round(end - start, 3),
            subscription_id=subscription_id,
            settings=settings.as_report() if settings is not None else {},
            requests=replace(requests) if requests is not None else RequestCounts())

    @property
    def in_scope_rows(self) -> tuple[InstanceRow, ...]:
        """The rows a summary lists; the instances outside `instance-ids` get one line instead
        (`out_of_scope_line`), so naming one instance of 300 does not print 300 rows."""
        return tuple(row for row in self.instances if row.in_scope)

    @property
    def out_of_scope_line(self) -> str | None:
        return out_of_scope_line([row.id for row in self.instances if not row.in_scope])

    def ids(self, *actions: str) -> list[str]:
        """Ids of the instances in scope with one of `actions` ("reimaged", "failed", ...)."""
        return [row.id for row in self.instances if row.action in actions and row.in_scope]

    @property
    def remaining(self) -> list[str]:
        """The instances in scope left for a next run (none unless it can continue this one)."""
        return self.ids(*REMAINING) if self.continue_since is not None else []

    def continue_line(self, setting: str) -> str | None:
        """What continues this run, with skip-reimaged-since spelled as the front end spells it
        (`--skip-reimaged-since`, `skip-reimaged-since:`); None when nothing is left."""
        if self.continue_since is None:
            return None
        left = self.remaining
        return (f"{len(left)} instance{'s' if len(left) != 1 else ''} not reimaged "
                f"({short(left)}); to continue where this run stopped, skipping every instance "
                f"reimaged since it began, run again with {setting} {iso(self.continue_since)}")

    def as_dict(self) -> dict:
        """The JSON run report (keys and order as `cycle_vmss.events` documents them; the schema
        is schemas/run-report.schema.json)."""
        f = self.failure
        return {
            "tool": TOOL, "version": self.version, "schemaVersion": SCHEMA_VERSION,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group, "scaleSet": self.scale_set,
            "orchestrationMode": self.orchestration_mode,
            "settings": dict(self.settings),
            "startTime": iso(self.start_time), "endTime": iso(self.end_time),
            "durationSeconds": self.duration_seconds,
            "result": self.result, "message": self.message,
            "failure": None if f is None else {"instanceId": f.instance_id, "code": f.code,
                                               "message": f.message, "states": f.states},
            "plan": None if self.plan is None else dict(self.plan),
            "capacity": {"before": self.capacity.before, "during": self.capacity.during,
                         "after": self.capacity.after},
            "requests": {"reads": self.requests.reads, "writes": self.requests.writes,
                         "throttled": self.requests.throttled},
            "warnings": list(self.warnings),
            "instances": [row.as_dict() for row in self.instances],
            "continueWith": (None if self.continue_since is None
                             else {"skipReimagedSince": iso(self.continue_since),
                                   "remainingInstances": self.remaining}),
            "automaticRepairs": (None if self.automatic_repairs is None
                                 else dict(self.automatic_repairs)),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def outputs(self, report_file: str | None, relative_to: str | None = None) -> dict[str, str]:
        """The step outputs by their action names; Azure Pipelines names them
        `settings.camel(name)`. Instance lists are JSON arrays of the ids in scope.

        `report-file` is the path the report was written to, made relative to `relative_to` when
        it lies inside it, else absolute. The action passes the workspace: its container path
        (`/github/workspace/...`) does not exist on the runner host, while the relative path
        works in the container and in later steps alike, whose working directory is the
        workspace. Azure Pipelines passes nothing: the task and later steps share the agent's
        file system, so the absolute path serves everyone."""
        shown = ""
        if report_file:
            shown = os.path.abspath(report_file)
            if relative_to:
                base = os.path.abspath(relative_to)
                if os.path.commonpath([shown, base]) == base:
                    shown = os.path.relpath(shown, base)
        return {
            "result": self.result,
            "reimaged-instances": json.dumps(self.ids("reimaged")),
            "failed-instances": json.dumps(self.ids("failed")),
            "skipped-instances": json.dumps(self.ids("skipped")),
            "remaining-instances": json.dumps(self.remaining),
            "started-at": iso(self.start_time) or "",
            "duration-seconds": str(int(round(self.duration_seconds))),
            "report-file": shown,
        }


def write_report(report: Report, path: str) -> None:
    """Write atomically: a reader never sees half a report, even if the run is killed."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cycle-vmss-report-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(report.to_json())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def exit_code(report: Report) -> int:
    return EXIT_CODES.get(report.result, 1)


def out_of_scope_line(ids: list[str]) -> str | None:
    """One line for every instance outside `instance-ids` (None when there are none)."""
    if not ids:
        return None
    many = len(ids) != 1
    return (f"{len(ids)} instance{'s' if many else ''} outside instance-ids left alone: "
            f"{short(ids)}")
