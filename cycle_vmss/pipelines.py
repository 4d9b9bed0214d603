"""The tool on Azure Pipelines: logging commands, output variables, summary, credential.

When `TF_BUILD` is set (every Azure Pipelines agent sets it) the run speaks the agent's logging
commands on stdout: `##[group]` sections per phase, `##vso[task.logissue]` errors for failures
and warnings for skips, `##vso[task.setprogress]` as instances finish, output variables
(`isOutput=true`, read as `$(cycle_vmss.result)` or through `dependencies`), a Markdown summary
through `##vso[task.uploadsummary]`, `##vso[task.setsecret]` before anything could print a
secret, and `##vso[task.complete result=Failed;]` when the run did not succeed.

`main(flags)` is the whole front end; the CLI calls it when `active(os.environ)`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
from typing import IO, Mapping

from cycle_vmss.events import Event
from cycle_vmss.report import ids_with_action
from cycle_vmss.progress import describe  # the CLI's wording, so both logs read alike
from cycle_vmss.signals import install_signal_handlers
from cycle_vmss.settings import SettingError, Spelling, build_settings, raw_from_env

# Variables that hold secrets on an agent: the service principal's key and federated token
# (AzureCLI@2 `addSpnToEnvironment`), the job's access token, an environment-credential secret.
SECRET_VARIABLES = ("servicePrincipalKey", "idToken", "SYSTEM_ACCESSTOKEN", "AZURE_CLIENT_SECRET")
# What AzureCLI@2 exposes for a workload-identity-federation service connection.
WORKLOAD_IDENTITY_VARIABLES = ("AZURESUBSCRIPTION_CLIENT_ID", "AZURESUBSCRIPTION_TENANT_ID",
                               "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
OUTPUT_VARIABLES = ("result", "reimagedInstances", "failedInstances", "skippedInstances",
                    "durationSeconds", "reportFile")
_MICROSOFT_AUTHORITIES = ("login.microsoftonline.com", "login.chinacloudapi.cn",
                          "login.microsoftonline.us")
_PHASES = {"preflight": "Preflight (read only)", "surge": "Surge: raise capacity",
           "rolling": "Rolling reimage", "restore": "Restore capacity", "results": "Results"}


def active(environ: Mapping[str, str] | None = None) -> bool:
    """True on an Azure Pipelines agent."""
    environ = os.environ if environ is None else environ
    return environ.get("TF_BUILD", "").strip().lower() in ("true", "1")


# --- escaping (the agent's rules, as in azure-pipelines-task-lib) ---------------------------

def escape_data(text: str) -> str:
    """A logging command's message: the agent turns these back into the original text."""
    return str(text).replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (`name=value;`): also `;` and `]`, which would end it early."""
    return escape_data(text).replace(";", "%3B").replace("]", "%5D")


def plain(text: str) -> str:
    """A log line that is not a command: one line, and no `##` the agent could read as one."""
    return re.sub(r"[\r\n]+", " ", str(text)).replace("##", "# #")


def command(area_action: str, message: str = "", **properties: object) -> str:
    props = "".join(f"{k}={escape_property(str(v))};" for k, v in properties.items())
    return f"##vso[{area_action}{' ' + props if props else ''}]{escape_data(message)}"


# --- the log while the run goes on ------------------------------------------------------------

class PipelinesLog:
    """A Listener: groups per phase, issues for failures and skips, progress as instances finish."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._group_open = False
        self._order: list[str] = []
        self._finished: set[str] = set()

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _end_group(self) -> None:
        if self._group_open:
            self.write("##[endgroup]")
            self._group_open = False

    def event(self, event: Event) -> None:
        with self._lock:
            iid = event.instance_id
            kind = event.kind
            if kind == "phase":
                self._end_group()
                if event.message != "results":  # the results follow the run, ungrouped
                    self.write("##[group]" + plain(_PHASES.get(event.message, event.message)))
                    self._group_open = True
                return
            if kind == "finished":
                self._end_group()
                return
            if kind == "plan":
                self._order = [str(i) for i in event.data.get("order") or []]
            line = describe(event)
            if kind == "skipped" and event.message != "out of scope":
                self.write(command("task.logissue", f"instance {iid} skipped: {event.message}",
                                   type="warning"))
            elif kind == "failed":
                text = event.message or "failed"
                if f"instance {iid}" not in text:
                    text = f"instance {iid}: {text}"
                code = str((event.data or {}).get("code") or "")
                if code and code not in text:
                    text += f" ({code})"
                self.write(command("task.logissue", text, type="error"))
            elif kind == "removed":
                self.write(command("task.logissue", f"instance {iid} was removed by someone else "
                                   "during the run; it is not reimaged", type="warning"))
            elif line is not None:
                self.write(plain(line))
            # A planned instance skipped during the run (a resource lock refused its reimage,
            # or it was stopped meanwhile) is finished too: nothing more happens to it.
            if iid is not None and (kind in ("done", "failed", "removed")
                                    or (kind == "skipped" and str(iid) in self._order)):
                self._finished.add(str(iid))
                self._progress()

    def _progress(self) -> None:
        total = len(set(self._order) | self._finished)
        finished = len(self._finished)
        value = 100 if total == 0 else min(100, finished * 100 // total)
        self.write(command("task.setprogress", f"{finished} of {total} instances finished",
                           value=value))

    def close(self) -> None:
        with self._lock:
            self._end_group()


def listener(out: IO[str] | None = None) -> PipelinesLog:
    return PipelinesLog(out)


# --- secrets and credential ---------------------------------------------------------------

def mask_secrets(environ: Mapping[str, str], out: IO[str] | None = None) -> None:
    """Tell the agent to mask every secret this process can see, before anything else prints.
    (The agent reads the command and does not log it.)"""
    out = out or sys.stdout
    values = (environ.get(name, "") for name in SECRET_VARIABLES)
    for value in dict.fromkeys(v for v in values if v.strip() and not v.startswith("$(")):
        out.write(command("task.setsecret", value) + "\n")
    out.flush()


def credential(environ: Mapping[str, str] | None = None):
    """AzurePipelinesCredential when the task exposes a workload-identity service connection and
    System.AccessToken is mapped: it fetches a fresh federated token for every Entra request,
    where the Azure CLI session of the task ends after 10 to 60 minutes. Otherwise None: the
    runner's default chain (environment, workload identity, managed identity, Azure CLI)."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "").strip() for name in WORKLOAD_IDENTITY_VARIABLES}
    token = environ.get("SYSTEM_ACCESSTOKEN", "").strip()
    # An unmapped macro stays literal: "$(System.AccessToken)" is not a token.
    if not all(values.values()) or not token or token.startswith("$("):
        return None
    from azure.identity import AzurePipelinesCredential

    kwargs: dict = {}
    authority = environ.get("AZURE_AUTHORITY_HOST", "").strip()
    if authority:
        kwargs["authority"] = authority
        if re.sub(r"^https?://", "", authority).rstrip("/").lower() not in _MICROSOFT_AUTHORITIES:
            # MSAL would ask login.microsoftonline.com about a foreign authority; it cannot know it.
            kwargs["disable_instance_discovery"] = True
    return AzurePipelinesCredential(
        tenant_id=values["AZURESUBSCRIPTION_TENANT_ID"],
        client_id=values["AZURESUBSCRIPTION_CLIENT_ID"],
        service_connection_id=values["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
        system_access_token=token, **kwargs)


# --- after the run -------------------------------------------------------------------------

def outputs(report: dict) -> dict[str, str]:
    """The output variables' values (arrays as JSON, so a later step can parse them); the same
    as the GitHub action's outputs, in camelCase."""
    duration = report.get("durationSeconds")
    report_file = (report.get("settings") or {}).get("reportFile")
    return {
        "result": str(report.get("result", "")),
        "reimagedInstances": json.dumps(ids_with_action(report, "reimaged")),
        "failedInstances": json.dumps(ids_with_action(report, "failed")),
        "skippedInstances": json.dumps(ids_with_action(report, "skipped")),
        "durationSeconds": str(int(round(float(duration)))) if duration is not None else "0",
        "reportFile": os.path.abspath(report_file) if report_file else "",
    }


def _cell(value: object) -> str:
    if value is None or value == "":
        return ""
    text = re.sub(r"[\r\n]+", " ", str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _states(states: dict | None) -> str:
    if not states:
        return ""
    return "/".join(str(states.get(k) or "-") for k in ("provisioning", "power", "health"))


def _seconds(value: object) -> str:
    return "" if value is None else f"{float(value):.0f} s"  # type: ignore[arg-type]


def summary_markdown(report: dict) -> str:
    """The run as Markdown tables (the Extensions tab renders no Mermaid)."""
    result = report.get("result", "?")
    lines = [f"### cycle-vmss: {_cell(result)}", "", _cell(report.get("message")), "",
             "| | |", "|---|---|"]
    capacity = report.get("capacity") or {}
    requests = report.get("requests") or {}
    rows = [
        ("Scale set", f"{report.get('scaleSet') or ''}"
                      + (f" ({report['orchestrationMode']})" if report.get("orchestrationMode") else "")),
        ("Resource group", report.get("resourceGroup")),
        ("Subscription", report.get("subscriptionId")),
        ("Started", report.get("startTime")),
        ("Ended", report.get("endTime")),
        ("Duration", _seconds(report.get("durationSeconds"))),
    ]
    if capacity:
        rows.append(("Capacity", f"before {capacity.get('before')}, during {capacity.get('during')}, "
                                 f"after {capacity.get('after')}"))
    if requests:
        rows.append(("Requests", f"{requests.get('reads', 0)} reads, {requests.get('writes', 0)} "
                                 f"writes, {requests.get('throttled', 0)} throttled"))
    plan = report.get("plan")
    if plan:
        rows.append(("Plan", f"N0 {plan.get('n0')}, max unavailable {plan.get('maxUnavailable')}, "
                             f"max surge {plan.get('maxSurge')}, R_min {plan.get('rMin')}, "
                             f"at most {plan.get('maxInFlight')} in flight; order "
                             + ", ".join(str(i) for i in plan.get("order") or [])))
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]

    failure = report.get("failure")
    if failure and str(failure.get("message") or "") not in str(report.get("message") or ""):
        lines += ["", f"**Failed:** instance {_cell(failure.get('instanceId'))}: "
                      f"{_cell(failure.get('code'))} {_cell(failure.get('message'))} "
                      f"(last states {_cell(_states(failure.get('states')))})"]
    warnings = report.get("warnings") or []
    if warnings:
        lines += ["", "#### Warnings", ""] + [f"- {_cell(w)}" for w in warnings]

    instances = report.get("instances") or []
    if instances:
        lines += ["", "#### Instances", "",
                  "| Instance | Name | Zone | Action | Reimage start | Reimage end | Ready | "
                  "Out of service | Last states | Detail |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in instances:
            error = row.get("error") or {}
            detail = row.get("reason")
            if error:
                code, message = str(error.get("code") or ""), str(error.get("message") or "")
                detail = message if code in message else f"{code} {message}".strip()
            lines.append("| " + " | ".join(_cell(v) for v in (
                row.get("id"), row.get("name"), row.get("zone"), row.get("action"),
                row.get("reimageStart"), row.get("reimageEnd"), row.get("readyTime"),
                _seconds(row.get("outOfServiceSeconds")), _states(row.get("lastStates")),
                detail)) + " |")

    settings = report.get("settings") or {}
    if settings:
        lines += ["", "#### Settings", "", "| Parameter | Value |", "|---|---|"]
        for name, value in settings.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            lines.append(f"| {_cell(name)} | {_cell('' if value is None else json.dumps(value) if isinstance(value, bool) else value)} |")
    return "\n".join(lines) + "\n"


def _summary_path(report: dict, environ: Mapping[str, str]) -> str:
    folder = environ.get("AGENT_TEMPDIRECTORY", "").strip() or tempfile.gettempdir()
    # The Extensions tab titles the summary with its file name.
    stem = "cycle-vmss " + re.sub(r"[^\w.-]", "_", str(report.get("scaleSet") or "run"))
    path, n = os.path.join(folder, stem + ".md"), 1
    while os.path.exists(path):  # the template may run more than once in a job
        n += 1
        path = os.path.join(folder, f"{stem} ({n}).md")
    return path


def publish(report: dict, environ: Mapping[str, str] | None = None,
            out: IO[str] | None = None) -> str:
    """Output variables, warnings, the uploaded summary and the task result; returns the
    summary file's path."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    for name, value in outputs(report).items():
        emit(command("task.setvariable", value, variable=name, isOutput="true"))
    for warning in report.get("warnings") or []:
        emit(command("task.logissue", str(warning), type="warning"))

    path = _summary_path(report, environ)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(summary_markdown(report))
    emit(command("task.uploadsummary", path))

    result = report.get("result")
    if result in ("failed", "refused"):
        # A failed instance already has its error issue (PipelinesLog); anything else is said here.
        if result == "refused" or not ids_with_action(report, "failed"):
            emit(command("task.logissue", str(report.get("message") or result), type="error"))
        emit(command("task.complete", f"cycle-vmss: {result}", result="Failed"))
    elif result == "cancelled":
        emit(command("task.logissue", str(report.get("message") or "cancelled"), type="warning"))
    out.flush()
    return path


def _refusal(raw: Mapping[str, str | None], message: str) -> dict:
    """A report for a run refused before it began (bad input): outputs and summary still exist."""
    return {"tool": "cycle-vmss", "result": "refused", "message": message,
            "resourceGroup": raw.get("resource_group"), "scaleSet": raw.get("scale_set_name"),
            "durationSeconds": 0, "instances": [], "warnings": []}


def main(flags: Mapping[str, str | None] | None = None, *,
         environ: Mapping[str, str] | None = None, out: IO[str] | None = None,
         cancelled: threading.Event | None = None) -> int:
    """One run on Azure Pipelines; returns the exit code (SPEC section 5).

    `flags` are the CLI's flags keyed by field name (None = not given); `CYCLE_VMSS_*` variables
    fill the rest. The template passes everything through variables, so a bad value is named as
    the template's parameter (`resourceGroupName`); a script that passes flags sees flag names."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    mask_secrets(environ, out)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    raw = {**raw_from_env(environ), **given}
    try:
        settings = build_settings(raw, Spelling.CLI if given else Spelling.PIPELINE)
    except SettingError as error:
        publish(_refusal(raw, str(error)), environ, out)
        return 2

    from cycle_vmss.report import exit_code
    from cycle_vmss.runner import execute

    try:
        chosen = credential(environ)
    except ValueError:  # every value is present, so azure-identity refused the tenant id
        tenant = environ.get("AZURESUBSCRIPTION_TENANT_ID", "").strip()
        publish(_refusal(raw, f"AZURESUBSCRIPTION_TENANT_ID: {tenant!r} is not accepted; expected "
                              "the service connection's tenant id (a GUID or a domain such as "
                              "contoso.onmicrosoft.com)"), environ, out)
        return 2
    if cancelled is None:
        cancelled = threading.Event()
        install_signal_handlers(cancelled)
    log = PipelinesLog(out)
    try:
        report = execute(settings, credential=chosen, listener=log, cancelled=cancelled)
    finally:
        log.close()
    publish(report, environ, out)
    return exit_code(report)
