"""The tool on Azure Pipelines: logging commands, output variables, summary.

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

from cycle_vmss import timeline
from cycle_vmss.events import Event
from cycle_vmss.report import OUTPUTS, PHASE_TITLES, Report, exit_code, iso, state_slashes
from cycle_vmss.progress import describe  # the CLI's wording, so both logs read alike
from cycle_vmss.signals import install_signal_handlers
from cycle_vmss.settings import SettingError, Spelling, build_settings, camel, raw_from_env

# Variables that hold secrets on an agent: the service principal's key and federated token
# (AzureCLI@2 `addSpnToEnvironment`), the job's access token, an environment-credential secret.
SECRET_VARIABLES = ("servicePrincipalKey", "idToken", "SYSTEM_ACCESSTOKEN", "AZURE_CLIENT_SECRET")
OUTPUT_VARIABLES = tuple(camel(name) for name in OUTPUTS)


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
                    self.write("##[group]" + plain(PHASE_TITLES.get(event.message, event.message)))
                    self._group_open = True
                return
            if kind == "finished":
                self._end_group()
                return
            if kind == "plan":
                self._order = [str(i) for i in event.data.get("order") or []]
            line = describe(event)
            if kind == "skipped" and iid is not None:  # not the line for those out of scope
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


# --- secrets -------------------------------------------------------------------------------

def mask_secrets(environ: Mapping[str, str], out: IO[str] | None = None) -> None:
    """Tell the agent to mask every secret this process can see, before anything else prints.
    (The agent reads the command and does not log it.)"""
    out = out or sys.stdout
    values = (environ.get(name, "") for name in SECRET_VARIABLES)
    for value in dict.fromkeys(v for v in values if v.strip() and not v.startswith("$(")):
        out.write(command("task.setsecret", value) + "\n")
    out.flush()


# --- after the run -------------------------------------------------------------------------

def outputs(report: Report, report_file: str | None) -> dict[str, str]:
    """The output variables' values: the action's outputs in camelCase (arrays as JSON, so a
    later step can parse them; the report file's absolute path)."""
    return {camel(name): value for name, value in report.outputs(report_file).items()}


def _cell(value: object) -> str:
    if value is None or value == "":
        return ""
    text = re.sub(r"[\r\n]+", " ", str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _seconds(value: object) -> str:
    return "" if value is None else f"{float(value):.0f} s"  # type: ignore[arg-type]


def summary_markdown(report: Report) -> str:
    """The run as Markdown tables (the Extensions tab renders no Mermaid)."""
    lines = [f"### cycle-vmss: {_cell(report.result)}", "", _cell(report.message), "",
             "| | |", "|---|---|"]
    capacity, requests = report.capacity, report.requests
    rows = [
        ("Scale set", f"{report.scale_set or ''}"
                      + (f" ({report.orchestration_mode})" if report.orchestration_mode else "")),
        ("Resource group", report.resource_group),
        ("Subscription", report.subscription_id),
        ("Started", iso(report.start_time)),
        ("Ended", iso(report.end_time)),
        ("Duration", _seconds(report.duration_seconds)),
    ]
    if capacity.before is not None:
        rows.append(("Capacity", f"before {capacity.before}, during {capacity.during}, "
                                 f"after {capacity.after}"))
    rows.append(("Requests", f"{requests.reads} reads, {requests.writes} writes, "
                             f"{requests.throttled} throttled"))
    plan = report.plan
    if plan:
        rows.append(("Plan", f"N0 {plan['n0']}, max unavailable {plan['maxUnavailable']}, "
                             f"max surge {plan['maxSurge']}, R_min {plan['rMin']}, "
                             f"at most {plan['maxInFlight']} in flight; order "
                             + ", ".join(str(i) for i in plan["order"])))
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]

    failure = report.failure
    if failure and failure.message not in report.message:
        lines += ["", f"**Failed:** instance {_cell(failure.instance_id)}: "
                      f"{_cell(failure.code)} {_cell(failure.message)} "
                      f"(last states {_cell(state_slashes(failure.states))})"]
    if (resume := report.continue_line("skipReimagedSince:")) is not None:
        lines += ["", f"**Continue:** {_cell(resume)}"]
    if report.warnings:
        lines += ["", "#### Warnings", ""] + [f"- {_cell(w)}" for w in report.warnings]

    if report.in_scope_rows:
        lines += ["", "#### Instances", "",
                  "| Instance | Name | Zone | Action | Reimage start | Reimage end | Ready | "
                  "Out of service | Last states | Detail |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in report.in_scope_rows:
            detail = row.reason
            if row.error is not None:
                code, message = row.error.code or "", row.error.message or ""
                detail = message if code in message else f"{code} {message}".strip()
            lines.append("| " + " | ".join(_cell(v) for v in (
                row.id, row.name, row.zone, row.action,
                iso(row.reimage_start), iso(row.reimage_end), iso(row.ready_time),
                _seconds(row.out_of_service_seconds), state_slashes(row.last_states),
                detail)) + " |")
    if report.out_of_scope_line:
        lines += ["", _cell(report.out_of_scope_line) + "."]

    if report.settings:
        lines += ["", "#### Settings", "", "| Parameter | Value |", "|---|---|"]
        for name, value in report.settings.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            lines.append(f"| {_cell(name)} | {_cell('' if value is None else json.dumps(value) if isinstance(value, bool) else value)} |")
    return "\n".join(lines) + "\n"


def _summary_path(report: Report, environ: Mapping[str, str]) -> str:
    folder = environ.get("AGENT_TEMPDIRECTORY", "").strip() or tempfile.gettempdir()
    # The Extensions tab titles the summary with its file name.
    stem = "cycle-vmss " + re.sub(r"[^\w.-]", "_", report.scale_set or "run")
    path, n = os.path.join(folder, stem + ".md"), 1
    while os.path.exists(path):  # the template may run more than once in a job
        n += 1
        path = os.path.join(folder, f"{stem} ({n}).md")
    return path


def publish(report: Report, report_file: str | None, environ: Mapping[str, str] | None = None,
            out: IO[str] | None = None) -> str:
    """Output variables, warnings, the uploaded summary and the task result; returns the
    summary file's path."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    for name, value in outputs(report, report_file).items():
        emit(command("task.setvariable", value, variable=name, isOutput="true"))
    for warning in report.warnings:
        emit(command("task.logissue", warning, type="warning"))
    if (resume := report.continue_line("skipReimagedSince:")) is not None:
        emit(plain(resume))

    path = _summary_path(report, environ)
    markdown = summary_markdown(report)
    if any(row.reimage_start is not None for row in report.instances):
        # The Extensions tab renders Markdown but no Mermaid and no local images: the picture
        # goes with the job's logs (task.uploadfile), and the summary says where.
        picture = path[:-len(".md")] + ".svg"
        with open(picture, "w", encoding="utf-8") as handle:
            handle.write(timeline.svg(report.as_dict()))
        emit(command("task.uploadfile", picture))
        markdown += (f"\nA timeline of every instance's time out of service, by zone and against "
                     f"the budget, is attached to this job's logs as `{os.path.basename(picture)}` "
                     f"(Download logs).\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    emit(command("task.uploadsummary", path))

    result = report.result
    if result in ("failed", "refused"):
        # A failed instance already has its error issue (PipelinesLog); anything else is said here.
        if result == "refused" or not report.ids("failed"):
            emit(command("task.logissue", report.message or result, type="error"))
        emit(command("task.complete", f"cycle-vmss: {result}", result="Failed"))
    elif result == "cancelled":
        emit(command("task.logissue", report.message or "cancelled", type="warning"))
    out.flush()
    return path


def _refused(raw: Mapping[str, str | None], message: str) -> Report:
    """A report for a run refused before it began (bad input): outputs and summary still exist."""
    return Report.refused(message, resource_group=raw.get("resource_group"),
                          scale_set=raw.get("scale_set_name"))


def main(flags: Mapping[str, str | None] | None = None, *,
         environ: Mapping[str, str] | None = None, out: IO[str] | None = None,
         cancelled: threading.Event | None = None) -> int:
    """One run on Azure Pipelines; returns the exit code (0, 1, 2 or 130).

    `flags` are the CLI's flags keyed by field name (None = not given); `CYCLE_VMSS_*` variables
    fill the rest. The template passes everything through variables, so a bad value is named as
    the template's parameter (`resourceGroupName`); a script that passes flags sees flag names."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    mask_secrets(environ, out)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    raw = {**raw_from_env(environ), **given}
    from cycle_vmss import credentials  # the SDK's import, after the secrets are masked
    from cycle_vmss.runner import execute

    try:
        settings = build_settings(raw, Spelling.CLI if given else Spelling.PIPELINE)
        credential = credentials.for_pipeline(environ)
    except (SettingError, credentials.SetupError) as error:
        publish(_refused(raw, str(error)), None, environ, out)
        return 2
    if cancelled is None:
        cancelled = threading.Event()
        install_signal_handlers(cancelled)
    log = PipelinesLog(out)
    try:
        report = execute(settings, credential=credential, listener=log, cancelled=cancelled)
    finally:
        log.close()
    publish(report, settings.report_file, environ, out)
    return exit_code(report)
