"""The tool on GitHub Actions: log groups, annotations, outputs and the step summary.

Everything a user of the action sees is rendered here from the engine's events and the run
`Report`; `entrypoint.py` only wires inputs, settings, run and outputs.
Workflow commands go through `actions-toolkit`, which escapes them as `@actions/core` does.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import replace
from datetime import datetime, timezone
from typing import IO, Mapping

from actions_toolkit import core
from actions_toolkit.command import Command

from cycle_vmss.events import Event
from cycle_vmss.report import PHASE_TITLES, InstanceError, InstanceRow, Report
from cycle_vmss.settings import SETTINGS, Settings, camel
from cycle_vmss.timeline import mermaid_gantt

ANNOTATIONS_PER_TYPE = 10  # GitHub shows at most 10 errors and 10 warnings per step
SUMMARY_LIMIT = 1_000_000  # GitHub refuses a step summary over 1 MiB; keep a margin
DEFAULT_REPORT_NAME = "cycle-vmss-report.json"
_ICONS = {"succeeded": "✅", "paused": "⏸️", "dry-run": "📝", "failed": "❌", "refused": "⛔",
          "cancelled": "⏹️"}
CONTINUE_SETTING = "skip-reimaged-since:"  # as a workflow's `with:` spells it


# --- time -----------------------------------------------------------------------------------

def _clock(t: float | None) -> str:
    return "–" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S")


def duration_text(seconds: float | None) -> str:
    """`1 h 2 min`, `3 min 4 s`, `5 s`."""
    if seconds is None:
        return "–"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _states(states: Mapping[str, str | None] | None) -> str:
    if not states:
        return "–"
    return ", ".join(f"{k} {v}" for k, v in states.items() if v) or "–"


# --- the live log ---------------------------------------------------------------------------

class GitHubLog:
    """A Listener that writes the engine's events as log lines inside `::group::` sections:
    one per phase, and within the rolling phase one per instance started, so each reimage folds
    with what followed it. Annotations are not written here but from the report (`annotations`),
    so they can be counted and aggregated."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out
        self._open: str | None = None  # title of the open group
        self._lock = threading.Lock()  # the OIDC callback may print a mask from another thread
        self._started = 0
        self._seen: dict[str, InstanceRow] = {}  # what the events said, for cancelled_report
        self._first: float | None = None

    def _write(self, line: str) -> None:
        (self.out or sys.stdout).write(line + "\n")
        (self.out or sys.stdout).flush()

    def _group(self, title: str) -> None:
        if self._open == title:
            return
        if self._open:
            self._write(str(Command("endgroup", {}, "")))
        self._write(str(Command("group", {}, title)))
        self._open = title

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._write(str(Command("endgroup", {}, "")))
                self._open = None

    def line(self, text: str) -> None:
        with self._lock:
            self._write(_no_command(text))

    def event(self, event: Event) -> None:
        with self._lock:
            self._event(event)

    def _track(self, e: Event) -> None:
        self._first = self._first if self._first is not None else e.time
        if e.instance_id is None:
            return
        row = self._seen.get(e.instance_id) or InstanceRow(id=e.instance_id, action="not-started")
        if e.kind == "started":
            row = replace(row, action="in-flight", reimage_start=e.time)
        elif e.kind == "done":
            row = replace(row, action="reimaged", ready_time=e.time)
        elif e.kind == "failed":
            row = replace(row, action="failed", error=InstanceError(e.data.get("code"), e.message))
        elif e.kind in ("skipped", "removed"):
            row = replace(row, action=e.kind, reason=e.message or None)
        elif e.kind == "state":
            row = replace(row, last_states=dict(e.data))
        self._seen[e.instance_id] = row

    def cancelled_report(self, settings: Settings) -> Report:
        """A report built from the events alone, for a run whose engine did not return in time
        after a cancel (a request still hanging): what started, what finished, what was left."""
        with self._lock:
            report = Report.refused("cancelled while a request to Azure was still waiting; "
                                    "instances as the log saw them", settings=settings,
                                    start=self._first)
            return replace(report, result="cancelled", instances=tuple(self._seen.values()))

    def _event(self, e: Event) -> None:
        self._track(e)
        stamp = _clock(e.time)
        who = f"instance {e.instance_id}: " if e.instance_id is not None else ""
        if e.kind == "phase":
            self._group(PHASE_TITLES.get(e.message, e.message))
            return
        if e.kind == "started":
            self._started += 1
            self._group(f"Reimage instance {e.instance_id} (#{self._started})")
            text = e.message or "reimage started"
        elif e.kind == "plan":
            p = e.data
            text = (f"plan: {p.get('n0')} in service at the start, max unavailable "
                    f"{p.get('maxUnavailable')}, max surge {p.get('maxSurge')}, at least "
                    f"{p.get('rMin')} ready, at most {p.get('maxInFlight')} in flight; order "
                    f"{', '.join(map(str, p.get('order') or [])) or '(none)'}")
        elif e.kind == "state":
            text = _states(e.data)
        elif e.kind == "done":
            text = "ready again"
        elif e.kind in ("failed", "skipped", "waiting"):
            text = f"{e.kind}: {e.message}"
        elif e.kind == "removed":
            text = "removed by someone else"
        elif e.kind == "capacity":
            text = f"capacity {e.data.get('from')} -> {e.data.get('to')}"
        elif e.kind == "heartbeat":
            d = e.data
            text = (f"progress: {d.get('done')} done, {d.get('in_flight')} in flight, "
                    f"{d.get('pending')} pending; {d.get('ready')} ready (at least "
                    f"{d.get('r_min')} needed)")
        elif e.kind == "finished":
            return
        else:
            text = e.message or e.kind
        self._write(_no_command(f"{stamp} {who}{text}"))

    def finish(self, report: Report) -> None:
        """The results group: one line per instance, then the run's message."""
        with self._lock:
            self._group(PHASE_TITLES["results"])
            for row in report.instances:
                extra = f" ({row.reason})" if row.reason else ""
                self._write(_no_command(
                    f"instance {row.id}: {row.action}{extra}; out of service "
                    f"{duration_text(row.out_of_service_seconds)}; {_states(row.last_states)}"))
            self._write(_no_command(f"{report.result}: {report.message}"))
            if (resume := report.continue_line(CONTINUE_SETTING)) is not None:
                self._write(_no_command(resume))
        self.close()


def _no_command(text: str) -> str:
    """One plain log line that the runner cannot read as a workflow command."""
    text = re.sub(r"[\r\n]+", " ", str(text))
    return text.replace("::", ": :") if text.lstrip().startswith("::") else text


# --- annotations ----------------------------------------------------------------------------

def command(kind: str, message: str, title: str | None = None) -> str:
    """One workflow command line (`::error title=...::message`), escaped by actions-toolkit."""
    return str(Command(kind, {"title": title} if title else {}, message))


def _with_states(message: str, states: Mapping[str, str | None] | None) -> str:
    """` Last states: ...` unless the engine's message already names them."""
    return "" if "last states" in message.lower() else f" Last states: {_states(states)}."


def _capped(messages: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
    """At most ANNOTATIONS_PER_TYPE: the first ones as they are, the rest in one last line."""
    if len(messages) <= ANNOTATIONS_PER_TYPE:
        return messages
    keep = messages[:ANNOTATIONS_PER_TYPE - 1]
    rest = messages[ANNOTATIONS_PER_TYPE - 1:]
    titles = ", ".join(title for title, _ in rest)
    return keep + [(f"cycle-vmss: {len(rest)} more {what}",
                    f"{len(rest)} more {what} (see the step summary and the report): {titles}")]


def annotations(report: Report) -> list[str]:
    """Workflow-command lines: failures as errors naming the instance and its last states,
    skips, leftover surge and other warnings as warnings; never more than 10 of each."""
    rows = report.instances
    result = report.result
    errors: list[tuple[str, str]] = []
    for row in rows:
        if row.action != "failed":
            continue
        err = row.error or InstanceError(None, None)
        # The engine's message already names the instance and usually the code: say each once.
        message = str(err.message or "not ready in time").rstrip(".").removeprefix(f"instance {row.id}: ")
        code = f"{err.code}: " if err.code and err.code not in message else ""
        errors.append((f"instance {row.id}",
                       f"Instance {_named(row)} failed: {code}{message}."
                       + _with_states(message, row.last_states)))
    if result in ("failed", "refused") and not errors:
        errors.append(("run", report.message or f"The run {result}."))
    warnings: list[tuple[str, str]] = []
    if result == "cancelled":
        in_flight = report.ids("in-flight")
        warnings.append(("cancelled", "The run was cancelled" + (
            f"; still reimaging in Azure: {', '.join(in_flight)}" if in_flight else "") + "."))
    # Instances outside `instance-ids` were never asked for: not a warning (as on Azure Pipelines).
    for row in rows:
        if row.action == "skipped" and row.in_scope:
            warnings.append((f"instance {row.id}",
                             f"Instance {_named(row)} skipped: {row.reason or 'not eligible'}."))
    warnings += [("warning", w) for w in report.warnings]
    lines = []
    for kind, items, what in (("error", errors, "failed instances"), ("warning", warnings, "warnings")):
        for title, message in _capped(items, what):
            shown = title if title.startswith("cycle-vmss") else f"cycle-vmss: {title}"
            lines.append(command(kind, message, shown))
    return lines


# --- outputs --------------------------------------------------------------------------------

def write_outputs(values: dict[str, str]) -> None:
    """`Report.outputs` through GITHUB_OUTPUT (`name<<delimiter` blocks); the runner reads them
    after the step. Outside a runner (a local `docker run`, where that file is not there) they
    are printed instead."""
    path = os.environ.get("GITHUB_OUTPUT", "").strip()
    if not path or not os.path.isfile(path):
        for name, value in values.items():
            sys.stdout.write(f"output {name}: {value}\n")
        return
    for name, value in values.items():
        core.set_output(name, value)


# --- the step summary -----------------------------------------------------------------------

def _settings_rows(settings: Mapping[str, object]) -> list[str]:
    rows = []
    for spec in SETTINGS:
        key = spec.pipeline or camel(spec.cli)
        if key not in settings:
            continue
        value = settings[key]
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        shown = "(all)" if spec.field == "instance_ids" and value in (None, "") else value
        shown = "–" if shown is None else shown
        if isinstance(shown, bool):
            shown = str(shown).lower()
        rows.append(f"| `{spec.action}` | {_cell(shown)} |")
    return rows


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _paragraph(text: str, label: str = "") -> list[str]:
    """A paragraph; lines after the first (a YAML snippet to paste) go in a code block."""
    first, *rest = text.strip().split("\n")
    out = [f"{label}{_cell(first)}", ""]
    if rest:
        out += ["```yaml", *rest, "```", ""]
    return out


def _other_name(row: InstanceRow) -> str:
    """The instance's VM name when it is not its id (Uniform); a Flexible set's id is the name."""
    name = row.name or ""
    return "" if name == row.id else name


def _named(row: InstanceRow) -> str:
    other = _other_name(row)
    return f"{row.id} ({other})" if other else row.id


def cause_and_fix(report: Report) -> tuple[str, str] | None:
    """What went wrong and what to do, for a run that did not succeed."""
    result, rows, message = report.result, report.instances, report.message
    rg, vmss = report.resource_group, report.scale_set
    not_done = [r.id for r in rows if r.action in ("failed", "in-flight", "not-started")]
    rerun = (f" To continue with the instances not yet reimaged, run again with `instance-ids: "
             f"{' '.join(not_done)}`." if not_done and len(not_done) < len(rows) else "")
    before, after = report.capacity.before, report.capacity.after
    leftover = ""
    if before is not None and after is not None and after > before:
        leftover = (f" The surge capacity was kept ({after} instead of {before}); once the set "
                    f"is healthy, scale it back with `az vmss scale -g {rg} -n {vmss} "
                    f"--new-capacity {before}`.")
    if result == "failed":
        failure = report.failure
        if failure is not None and failure.instance_id is not None:
            text = (failure.message or message).rstrip(".")
            cause = (f"Instance {failure.instance_id} failed: "
                     f"{failure.code + ': ' if failure.code else ''}{text}."
                     + _with_states(text, failure.states))
        else:
            cause = message
        fix = ("Look at the instance in the Azure portal (boot diagnostics, the extensions' "
               "status, the Application Health probe); fix the image or the extension, or raise "
               "`timeout-minutes` if it only needs longer." + rerun + leftover)
        return cause, fix
    if result == "refused":
        lowered = message.lower()
        if "aadsts" in lowered or "authenticat" in lowered or "credential" in lowered:
            fix = ("Check the sign-in inputs: `client-id` and `tenant-id` with `permissions: "
                   "id-token: write` and a federated credential for this repository, or "
                   "`client-secret`, or `creds`.")
        elif "authorizationfailed" in lowered or "does not have authorization" in lowered:
            fix = ("Grant the identity a role with `Microsoft.Compute/virtualMachineScaleSets/*` "
                   "on the scale set or its resource group (e.g. Virtual Machine Contributor).")
        else:
            fix = "Nothing was changed. Correct what the message names and run again."
        return message, fix
    if result == "cancelled":
        in_flight = report.ids("in-flight")
        cause = "The run was cancelled (the workflow was cancelled or its job timed out)."
        if in_flight:
            cause += f" Reimages already started finish in Azure on their own: {', '.join(in_flight)}."
        return cause, ("Run again when the scale set is healthy." + rerun + leftover).strip()
    return None


def summary_markdown(report: Report, max_rows: int | None = None) -> str:
    """The step summary: result, cause and fix, settings, instances, chart, totals."""
    result = report.result
    rows = list(report.instances)
    reimaged = sum(1 for r in rows if r.action == "reimaged")
    vmss, rg = report.scale_set or "?", report.resource_group or "?"
    out = [f"## {_ICONS.get(result, '')} cycle-vmss {result}: `{vmss}`".replace("  ", " "), ""]
    if report.message:
        out += _paragraph(report.message)
    out += [f"Resource group `{rg}`, subscription `{report.subscription_id or '?'}`: "
            f"{reimaged} of {len(rows)} instances reimaged in {duration_text(report.duration_seconds)}.", ""]
    found = cause_and_fix(report)
    if found:
        cause, fix = found
        out += _paragraph(cause, "**Cause:** ") + _paragraph(fix, "**Fix:** ")
    if (resume := report.continue_line(CONTINUE_SETTING)) is not None:
        out += _paragraph(resume, "**Continue:** ")

    out += ["### Settings", "", "| Input | Value |", "|---|---|"]
    out += _settings_rows(report.settings)
    out.append("")

    out += ["### Instances", ""]
    if rows:
        listed = list(report.in_scope_rows)
        # Over the size limit, keep the instances that need attention and say what was left out.
        shown = listed
        if max_rows is not None and len(listed) > max_rows:
            urgent = [r for r in listed if r.action != "reimaged"]
            shown = (urgent + [r for r in listed if r.action == "reimaged"])[:max_rows]
        out += ["| Instance | Zone | Action | Reimage started | Reimage ended | Ready | Out of service | Last states |",
                "|---|---|---|---|---|---|---|---|"]
        for r in shown:
            action = r.action
            if r.reason:
                action += f" ({r.reason})"
            if r.error is not None and r.error.code:
                action += f": {r.error.code}"
            other = _other_name(r)
            out.append(f"| {_cell(r.id)}{f' `{_cell(other)}`' if other else ''} | {_cell(r.zone or '–')} "
                       f"| {_cell(action)} | {_clock(r.reimage_start)} | {_clock(r.reimage_end)} "
                       f"| {_clock(r.ready_time)} | {duration_text(r.out_of_service_seconds)} "
                       f"| {_cell(_states(r.last_states))} |")
        if len(shown) < len(listed):
            out.append("")
            out.append(f"{len(listed) - len(shown)} more instances are in the report file (the "
                       "step summary is limited to 1 MiB).")
        if report.out_of_scope_line:
            out += ["", _cell(report.out_of_scope_line) + "."]
        out += ["", "### Time out of service", ""]
        # Every instance, not only the rows shown: the chart groups large runs to stay renderable.
        out += mermaid_gantt(report.as_dict())
    else:
        out.append("No instances were looked at.")
    out.append("")

    requests, capacity = report.requests, report.capacity
    out += ["### Totals", "", "| | |", "|---|---|",
            f"| Duration | {duration_text(report.duration_seconds)} ({_clock(report.start_time)} "
            f"to {_clock(report.end_time)} UTC) |",
            f"| ARM requests | {requests.reads} reads, {requests.writes} writes, "
            f"{requests.throttled} throttled |"]
    if capacity.before is not None:
        out.append(f"| Capacity | {capacity.before} before, {capacity.during} during, "
                   f"{capacity.after} after |")
    out.append("")
    return "\n".join(out)


def render_summary(report: Report, limit: int = SUMMARY_LIMIT) -> str:
    """`summary_markdown`, with fewer instance rows until it fits GitHub's limit."""
    text = summary_markdown(report)
    rows = len(report.instances)
    while len(text.encode("utf-8")) > limit and rows > 0:
        rows //= 2
        text = summary_markdown(report, max_rows=rows)
    return text


def write_summary(markdown: str, path: str | None = None) -> None:
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if path and os.path.isdir(os.path.dirname(os.path.abspath(path))):  # none outside a runner
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")
