"""One run for any front end: resolve where Azure is, authenticate, roll, write the report.

The CLI, the GitHub action and the Azure Pipelines mode are thin over `execute`. It never
raises for Azure, authentication or configuration problems: those come back as a report whose
result is `refused` (exit 2), with a one-line message and never a token or a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from azure.core.credentials import TokenCredential

from cycle_vmss.clock import SystemClock
from cycle_vmss.compute import AzureError, RequestCounts
from cycle_vmss.credentials import (
    SetupError,
    ca_bundle,
    default_credential,
    resolve_arm_endpoint,
    resolve_subscription,
)
from cycle_vmss.events import Event, Listener, NullListener
from cycle_vmss.report import Report, write_report
from cycle_vmss.settings import Settings


def execute(settings: Settings, *, credential: TokenCredential | None = None,
            listener: Listener = NullListener(), cancelled: threading.Event | None = None) -> Report:
    """Run one rollout (or dry run) and return its report; writes `settings.report_file` if set."""
    # Imported here so that `--help` and bad flags never pay for the SDK import.
    from cycle_vmss.azure_adapter import AzureComputePort
    from cycle_vmss.engine import run_rollout

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
            credential = credential or default_credential()
            port = AzureComputePort(credential, subscription, settings.resource_group,
                                    settings.scale_set_name, arm_endpoint=endpoint,
                                    polling_interval=settings.poll_interval_seconds,
                                    connection_verify=verify)
        except SetupError as err:
            report = _before_the_engine(settings, str(err), listener, subscription_id=subscription, start=start)
        else:
            if cancelled.is_set():  # while the tool was starting: nothing was asked of Azure yet
                return _finish(settings, _before_the_engine(
                    settings, "cancelled before the run began; nothing was changed", listener,
                    subscription_id=subscription, start=start, result="cancelled"))
            try:
                report = run_rollout(settings, port, clock=SystemClock(cancelled), listener=listener,
                                     cancelled=cancelled)
            except AzureError as err:
                # The engine reports Azure problems itself; this is the net under it, so a
                # credential failure still ends as one line, never a trace.
                report = _before_the_engine(settings, str(err), listener, subscription_id=subscription,
                                  start=start, requests=port.counts)
    finally:
        if port is not None:
            port.close()
    return _finish(settings, report)


def _finish(settings: Settings, report: Report) -> Report:
    if settings.report_file:
        write_report(report, settings.report_file)
    return report


def _before_the_engine(settings: Settings, message: str, listener: Listener, *,
                       subscription_id: str | None, start: float,
                       requests: RequestCounts | None = None, result: str = "refused") -> Report:
    """The report of a run that never reached the engine (refused, or cancelled while the tool
    started), told to the listener as the engine would tell it."""
    report = Report.refused(message, settings=settings, subscription_id=subscription_id,
                            start=start, requests=requests)
    if result != "refused":
        report = replace(report, result=result)
    listener.event(Event("finished", report.end_time, message=report.message, data=report.as_dict()))
    return report
