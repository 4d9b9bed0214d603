"""What the engine tells front ends while it runs, and the shape of the run report.

The engine calls `Listener.event` at every change; front ends (terminal, GitHub, Azure
Pipelines) turn events into their own log lines, groups and progress, and turn the final report
(a `cycle_vmss.report.Report`, whose `as_dict()` is the JSON run report, docs/report.md) into
outputs and summaries.

Event kinds (`Event.kind`):
  phase      message = "preflight" | "surge" | "rolling" | "restore" | "results"
  plan       data = the report's "plan" object (after preflight)
  skipped    instance_id, message = reason; or, once, no instance_id, message = one line for all
             the instances outside instance-ids, data = {"ids"}
  started    instance_id (reimage accepted by Azure)
  state      instance_id, data = {"provisioning", "power", "health"} (observed change)
  done       instance_id (reimage succeeded and observed ready for min-ready-seconds)
  failed     instance_id, message = one line, data = {"code", "states"}
  removed    instance_id (deleted by someone else)
  capacity   data = {"from", "to"}
  waiting    message = why nothing can start now (budget, in-flight cap, blocked by whom)
  gate       message = gate-url's answer, when it changes
  output     instance_id, message = "pre-reimage-command: <a line of its output>" (or post-ready-command;
             "...: started" first)
  heartbeat  data = {"done", "in_flight", "pending", "ready", "r_min"} (at least once a minute)
  finished   data = the JSON run report (`Report.as_dict()`)

The JSON run report (camelCase keys; times are ISO 8601 UTC strings or null; the JSON Schema is
schemas/run-report.schema.json):
{
  "tool": "cycle-vmss", "version": "0.1.0", "schemaVersion": 2,
  "subscriptionId": "...", "resourceGroup": "rg", "scaleSet": "vmss", "orchestrationMode": "Uniform",
  "settings": {<Settings.as_report()>},
  "startTime": "...", "endTime": "...", "durationSeconds": 123.4,
  "result": "succeeded" | "paused" | "failed" | "cancelled" | "refused" | "dry-run",
  "message": "one line saying what happened",
  "failure": null | {"instanceId": "3", "code": "OSProvisioningTimedOut", "message": "...",
                     "states": {"provisioning": "failed", "power": "running", "health": null}},
  "plan": null | {"n0": 6, "maxUnavailable": 1, "maxSurge": 0, "automaticSurge": 0, "rMin": 5,
                  "maxInFlight": 1, "order": ["2", "0", ...], "surgeTo": null | 7},
  "capacity": {"before": 6, "during": 6, "after": 6},
  "requests": {"reads": 40, "writes": 6, "throttled": 0},
  "warnings": ["..."],
  "instances": [
    {"id": "0", "name": "vmss_0", "zone": "1", "faultDomain": 0,
     "action": "reimaged" | "skipped" | "failed" | "removed" | "in-flight" | "not-started",
     "reason": null | "protected from scale-set actions" | "deallocated" | "stopped" | "out of scope"
               | "locked" | "in standby pool"  (the last two on Flexible sets) | "reimaged-since",
     "reimageStart": "...", "reimageEnd": "...", "readyTime": "...",
     "reimageSeconds": 200.0, "outOfServiceSeconds": 260.0,
     "lastStates": {"provisioning": "succeeded", "power": "running", "health": "healthy"},
     "error": null | {"code": "...", "message": "..."}, "modelUpgraded": false}
  ],
  "continueWith": null | {"skipReimagedSince": "...", "remainingInstances": ["3", ...]},
  "automaticRepairs": null | {"state": "Running" | "Suspended" | ... | null, "suspended": true,
                              "resumed": true}
}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    kind: str
    time: float
    instance_id: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Listener(Protocol):
    def event(self, event: Event) -> None: ...


class NullListener:
    def event(self, event: Event) -> None:
        pass


class Fanout:
    """Sends each event to several listeners (e.g. the terminal and the GitHub log)."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = listeners

    def event(self, event: Event) -> None:
        for listener in self.listeners:
            listener.event(event)
