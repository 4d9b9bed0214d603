"""One run for any front end: resolve where Azure is, authenticate, roll, write the report.

The CLI, the GitHub action and the Azure Pipelines mode are thin over `execute`. It never
raises for Azure, authentication or configuration problems: those come back as a report whose
result is `refused` (exit 2), with a one-line message and never a token or a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from azure.core.credentials import TokenCredential

from cycle_vmss import __version__
from cycle_vmss.clock import SystemClock
from cycle_vmss.compute import AzureError
from cycle_vmss.credentials import (
    SetupError,
    build_credential,
    ca_bundle,
    resolve_arm_endpoint,
    resolve_subscription,
)
from cycle_vmss.events import Event, Listener, NullListener
from cycle_vmss.settings import Settings
from cycle_vmss.signals import install_signal_handlers  # noqa: F401  (front ends import it from here too)


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def refused_report(settings: Settings, message: str, *, subscription_id: str | None = None,
                   start: float | None = None) -> dict:
    """The run report (events.py shape) of a run that never reached the engine."""
    start = time.time() if start is None else start
    end = time.time()
    return {
        "tool": "cycle-vmss", "version": __version__,
        "subscriptionId": subscription_id or settings.subscription_id,
        "resourceGroup": settings.resource_group, "scaleSet": settings.scale_set_name,
        "orchestrationMode": None,
        "settings": settings.as_report(),
        "startTime": _iso(start), "endTime": _iso(end), "durationSeconds": round(end - start, 3),
        "result": "refused", "message": message, "failure": None, "plan": None,
        "capacity": {"before": None, "during": None, "after": None},
        "requests": {"reads": 0, "writes": 0, "throttled": 0},
        "warnings": [], "instances": [],
    }


def execute(settings: Settings, *, credential: TokenCredential | None = None,
            listener: Listener = NullListener(), cancelled: threading.Event | None = None) -> dict:
    """Run one rollout (or dry run) and return its report; writes `settings.report_file` if set."""
    # Imported here so that `--help` and bad flags never pay for the SDK import.
    from cycle_vmss.azure_adapter import AzureComputePort
    from cycle_vmss.engine import run_rollout
    from cycle_vmss.report import write_report

    # azure-identity logs each failed credential as a multi-line warning; the report's message
    # already says what went wrong, in one line.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    cancelled = cancelled or threading.Event()
    start = time.time()
    subscription = None
    port = None
    try:
        try:
            subscription = resolve_subscription(settings.subscription_id)
            endpoint = resolve_arm_endpoint(settings.arm_endpoint)
            verify = ca_bundle()
            credential = credential or build_credential()
            port = AzureComputePort(credential, subscription, settings.resource_group,
                                    settings.scale_set_name, arm_endpoint=endpoint,
                                    polling_interval=settings.poll_interval_seconds,
                                    connection_verify=verify)
        except SetupError as err:
            report = refused_report(settings, str(err), subscription_id=subscription, start=start)
            listener.event(Event("finished", time.time(), message=report["message"], data=report))
        else:
            try:
                report = run_rollout(settings, port, clock=SystemClock(cancelled), listener=listener,
                                     cancelled=cancelled)
            except AzureError as err:
                # The engine reports Azure problems itself; this is the net under it, so a
                # credential failure still ends as one line, never a trace.
                report = refused_report(settings, str(err), subscription_id=subscription, start=start)
                report["requests"] = vars(port.counts).copy()
                listener.event(Event("finished", time.time(), message=report["message"], data=report))
    finally:
        if port is not None:
            port.close()
    if settings.report_file:
        write_report(report, settings.report_file)
    return report
