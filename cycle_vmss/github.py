"""The tool on GitHub Actions: log groups, annotations, outputs and the step summary.

Everything a user of the action sees is rendered here from the engine's events and the run
report (shapes in `cycle_vmss.events`); `entrypoint.py` only wires inputs, credential and run.
Workflow commands go through `actions-toolkit`, which escapes them as `@actions/core` does.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from datetime import datetime, timezone
from typing import IO, Iterable

from actions_toolkit import core
from actions_toolkit.command import Command

from cycle_vmss.events import Event
from cycle_vmss.report import ids_with_action
from cycle_vmss.settings import SETTINGS

OUTPUTS = ("result", "reimaged-instances", "failed-instances", "skipped-instances",
           "duration-seconds", "report-file")
ANNOTATIONS_PER_TYPE = 10  # GitHub shows at most 10 errors and 10 warnings per step
SUMMARY_LIMIT = 1_000_000  # GitHub refuses a step summary over 1 MiB; keep a margin
DEFAULT_REPORT_NAME = "cycle-vmss-report.json"
_PHASES = {"preflight": "Preflight (read only)", "surge": "Surge: raise capacity",
           "rolling": "Rolling reimage", "restore": "Restore capacity", "results": "Results"}
_ICONS = {"succeeded": "✅", "dry-run": "📝", "failed": "❌", "refused": "⛔", "cancelled": "⏹️"}


# --- time -----------------------------------------------------------------------------------

def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _clock(stamp: str | None) -> str:
    moment = _parse(stamp)
    return moment.strftime("%H:%M:%S") if moment else "–"


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


def _states(states: dict | None) -> str:
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
        self._seen: dict[str, dict] = {}  # instance id -> what the events said, for cancelled_report
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
        row = self._seen.setdefault(e.instance_id, {"id": e.instance_id, "action": "not-started"})
        if e.kind == "started":
            row.update(action="in-flight", reimageStart=_iso(e.time))
        elif e.kind == "done":
            row.update(action="reimaged", readyTime=_iso(e.time))
        elif e.kind == "failed":
            row.update(action="failed", error={"code": e.data.get("code"), "message": e.message})
        elif e.kind in ("skipped", "removed"):
            row.update(action=e.kind, reason=e.message or None)
        elif e.kind == "state":
            row["lastStates"] = dict(e.data)

    def cancelled_report(self, settings) -> dict:
        """A report built from the events alone, for a run whose engine did not return in time
        after a cancel (a request still hanging): what started, what finished, what was left."""
        from cycle_vmss.runner import refused_report

        with self._lock:
            report = refused_report(settings, "cancelled while a request to Azure was still "
                                    "waiting; instances as the log saw them",
                                    start=self._first)
            report.update(result="cancelled", instances=[dict(r) for r in self._seen.values()])
        return report

    def _event(self, e: Event) -> None:
        self._track(e)
        stamp = datetime.fromtimestamp(e.time, timezone.utc).strftime("%H:%M:%S")
        who = f"instance {e.instance_id}: " if e.instance_id is not None else ""
        if e.kind == "phase":
            self._group(_PHASES.get(e.message, e.message))
            return
        if e.kind == "started":
            self._started += 1
            self._group(f"Reimage instance {e.instance_id} (#{self._started})")
            text = "reimage started"
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

    def finish(self, report: dict) -> None:
        """The results group: one line per instance, then the run's message."""
        with self._lock:
            self._group(_PHASES["results"])
            for row in report.get("instances") or []:
                extra = f" ({row['reason']})" if row.get("reason") else ""
                self._write(_no_command(
                    f"instance {row.get('id')}: {row.get('action')}{extra}; out of service "
                    f"{duration_text(row.get('outOfServiceSeconds'))}; {_states(row.get('lastStates'))}"))
            self._write(_no_command(f"{report.get('result')}: {report.get('message') or ''}"))
        self.close()


def _no_command(text: str) -> str:
    """One plain log line that the runner cannot read as a workflow command."""
    text = re.sub(r"[\r\n]+", " ", str(text))
    return text.replace("::", ": :") if text.lstrip().startswith("::") else text


# --- annotations ----------------------------------------------------------------------------

def command(kind: str, message: str, title: str | None = None) -> str:
    """One workflow command line (`::error title=...::message`), escaped by actions-toolkit."""
    return str(Command(kind, {"title": title} if title else {}, message))


def _with_states(message: str, states: dict | None) -> str:
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


def annotations(report: dict) -> list[str]:
    """Workflow-command lines: failures as errors naming the instance and its last states,
    skips, leftover surge and other warnings as warnings; never more than 10 of each."""
    rows = report.get("instances") or []
    result = report.get("result")
    errors: list[tuple[str, str]] = []
    for row in rows:
        if row.get("action") != "failed":
            continue
        err = row.get("error") or {}
        code = f"{err.get('code')}: " if err.get("code") else ""
        message = str(err.get("message") or "not ready in time").rstrip(".")
        errors.append((f"instance {row.get('id')}",
                       f"Instance {_named(row)} failed: {code}{message}."
                       + _with_states(message, row.get("lastStates"))))
    if result in ("failed", "refused") and not errors:
        errors.append(("run", str(report.get("message") or f"The run {result}.")))
    warnings: list[tuple[str, str]] = []
    if result == "cancelled":
        in_flight = [r.get("id") for r in rows if r.get("action") == "in-flight"]
        warnings.append(("cancelled", "The run was cancelled" + (
            f"; still reimaging in Azure: {', '.join(map(str, in_flight))}" if in_flight else "") + "."))
    for row in rows:
        # Instances outside `instance-ids` were never asked for: not a warning (as on Azure Pipelines).
        if row.get("action") == "skipped" and row.get("reason") != "out of scope":
            warnings.append((f"instance {row.get('id')}",
                             f"Instance {_named(row)} skipped: "
                             f"{row.get('reason') or 'not eligible'}."))
    warnings += [("warning", str(w)) for w in report.get("warnings") or []]
    lines = []
    for kind, items, what in (("error", errors, "failed instances"), ("warning", warnings, "warnings")):
        for title, message in _capped(items, what):
            shown = title if title.startswith("cycle-vmss") else f"cycle-vmss: {title}"
            lines.append(command(kind, message, shown))
    return lines


# --- outputs --------------------------------------------------------------------------------

def outputs(report: dict, report_file: str | None, workspace: str | None = None) -> dict[str, str]:
    """The step's outputs (SPEC section 5). `report-file` is relative to the workspace when it
    lies inside it: the same relative path works in the container and in later `run` steps,
    whose working directory is the workspace too."""
    shown = report_file or ""
    if report_file and workspace:
        absolute, base = os.path.abspath(report_file), os.path.abspath(workspace)
        if os.path.commonpath([absolute, base]) == base:
            shown = os.path.relpath(absolute, base)
    duration = report.get("durationSeconds")
    return {
        "result": str(report.get("result") or "refused"),
        "reimaged-instances": json.dumps(ids_with_action(report, "reimaged")),
        "failed-instances": json.dumps(ids_with_action(report, "failed")),
        "skipped-instances": json.dumps(ids_with_action(report, "skipped")),
        "duration-seconds": str(int(round(duration))) if isinstance(duration, (int, float)) else "0",
        "report-file": shown,
    }


def write_outputs(values: dict[str, str]) -> None:
    """Through GITHUB_OUTPUT (`name<<delimiter` blocks); the runner reads them after the step."""
    for name, value in values.items():
        core.set_output(name, value)


# --- the step summary -----------------------------------------------------------------------

def _settings_rows(settings: dict) -> list[str]:
    rows = []
    for spec in SETTINGS:
        key = spec.pipeline or _camel(spec.cli)
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


def _camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(p.title() for p in rest)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _paragraph(text: str, label: str = "") -> list[str]:
    """A paragraph; lines after the first (a YAML snippet to paste) go in a code block."""
    first, *rest = text.strip().split("\n")
    out = [f"{label}{_cell(first)}", ""]
    if rest:
        out += ["```yaml", *rest, "```", ""]
    return out


def _other_name(row: dict) -> str:
    """The instance's VM name when it is not its id (Uniform); a Flexible set's id is the name."""
    name = row.get("name") or ""
    return "" if name == str(row.get("id")) else name


def _named(row: dict) -> str:
    other = _other_name(row)
    return f"{row.get('id')} ({other})" if other else str(row.get("id"))


def _gantt_name(row: dict) -> str:
    return re.sub(r"[:;#,]", " ", f"{row.get('id')} {_other_name(row)}").strip()


def gantt(report: dict, rows: Iterable[dict]) -> list[str]:
    """A Mermaid Gantt chart of each instance's time out of service, one section per zone."""
    end_of_run = report.get("endTime")
    bars: dict[str, list[str]] = {}
    for n, row in enumerate(rows):
        start = _parse(row.get("reimageStart"))
        if start is None:
            continue
        # A failed or in-flight instance stayed out of service until the run ended.
        unready_until = end_of_run if row.get("action") in ("failed", "in-flight") else row.get("reimageEnd")
        end = _parse(row.get("readyTime") or unready_until or end_of_run) or start
        tag = {"failed": "crit, ", "in-flight": "active, "}.get(row.get("action"), "done, ")
        zone = f"zone {row.get('zone')}" if row.get("zone") else "no zone"
        bars.setdefault(zone, []).append(
            f"    {_gantt_name(row)} : {tag}i{n}, {start:%Y-%m-%d %H:%M:%S}, "
            f"{max(end, start):%Y-%m-%d %H:%M:%S}")
    if not bars:
        return ["No instance was taken out of service."]
    lines = ["```mermaid", "gantt", "    title Time out of service", "    dateFormat YYYY-MM-DD HH:mm:ss",
             "    axisFormat %H:%M:%S"]
    for zone in sorted(bars):
        lines.append(f"    section {zone}")
        lines += bars[zone]
    lines.append("```")
    return lines


def cause_and_fix(report: dict) -> tuple[str, str] | None:
    """What went wrong and what to do, for a run that did not succeed."""
    result = report.get("result")
    rows = report.get("instances") or []
    message = str(report.get("message") or "")
    rg, vmss = report.get("resourceGroup"), report.get("scaleSet")
    not_done = [str(r.get("id")) for r in rows if r.get("action") in ("failed", "in-flight", "not-started")]
    rerun = (f" To continue with the instances not yet reimaged, run again with `instance-ids: "
             f"{' '.join(not_done)}`." if not_done and len(not_done) < len(rows) else "")
    capacity = report.get("capacity") or {}
    leftover = ""
    if isinstance(capacity.get("after"), int) and isinstance(capacity.get("before"), int) \
            and capacity["after"] > capacity["before"]:
        leftover = (f" The surge capacity was kept ({capacity['after']} instead of "
                    f"{capacity['before']}); once the set is healthy, scale it back with `az vmss "
                    f"scale -g {rg} -n {vmss} --new-capacity {capacity['before']}`.")
    if result == "failed":
        failure = report.get("failure") or {}
        if failure.get("instanceId") is not None:
            text = str(failure.get("message") or message).rstrip(".")
            cause = (f"Instance {failure['instanceId']} failed: "
                     f"{failure.get('code') + ': ' if failure.get('code') else ''}{text}."
                     + _with_states(text, failure.get("states")))
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
        in_flight = [str(r.get("id")) for r in rows if r.get("action") == "in-flight"]
        cause = "The run was cancelled (the workflow was cancelled or its job timed out)."
        if in_flight:
            cause += f" Reimages already started finish in Azure on their own: {', '.join(in_flight)}."
        return cause, ("Run again when the scale set is healthy." + rerun + leftover).strip()
    return None


def summary_markdown(report: dict, max_rows: int | None = None) -> str:
    """The step summary: result, cause and fix, settings, instances, chart, totals."""
    result = str(report.get("result") or "refused")
    rows = list(report.get("instances") or [])
    reimaged = sum(1 for r in rows if r.get("action") == "reimaged")
    vmss, rg = report.get("scaleSet") or "?", report.get("resourceGroup") or "?"
    out = [f"## {_ICONS.get(result, '')} cycle-vmss {result}: `{vmss}`".replace("  ", " "), ""]
    if report.get("message"):
        out += _paragraph(str(report["message"]))
    out += [f"Resource group `{rg}`, subscription `{report.get('subscriptionId') or '?'}`: "
            f"{reimaged} of {len(rows)} instances reimaged in {duration_text(report.get('durationSeconds'))}.", ""]
    found = cause_and_fix(report)
    if found:
        cause, fix = found
        out += _paragraph(cause, "**Cause:** ") + _paragraph(fix, "**Fix:** ")

    out += ["### Settings", "", "| Input | Value |", "|---|---|"]
    out += _settings_rows(report.get("settings") or {})
    out.append("")

    out += ["### Instances", ""]
    if rows:
        # Over the size limit, keep the instances that need attention and say what was left out.
        shown = rows
        if max_rows is not None and len(rows) > max_rows:
            urgent = [r for r in rows if r.get("action") != "reimaged"]
            shown = (urgent + [r for r in rows if r.get("action") == "reimaged"])[:max_rows]
        out += ["| Instance | Zone | Action | Reimage started | Reimage ended | Ready | Out of service | Last states |",
                "|---|---|---|---|---|---|---|---|"]
        for r in shown:
            action = r.get("action") or ""
            if r.get("reason"):
                action += f" ({r['reason']})"
            if (r.get("error") or {}).get("code"):
                action += f": {r['error']['code']}"
            other = _other_name(r)
            out.append(f"| {_cell(r.get('id'))}{f' `{_cell(other)}`' if other else ''} | {_cell(r.get('zone') or '–')} "
                       f"| {_cell(action)} | {_clock(r.get('reimageStart'))} | {_clock(r.get('reimageEnd'))} "
                       f"| {_clock(r.get('readyTime'))} | {duration_text(r.get('outOfServiceSeconds'))} "
                       f"| {_cell(_states(r.get('lastStates')))} |")
        if len(shown) < len(rows):
            out.append("")
            out.append(f"{len(rows) - len(shown)} more instances are in the report file (the "
                       "step summary is limited to 1 MiB).")
        out += ["", "### Time out of service", ""]
        out += gantt(report, shown)
    else:
        out.append("No instances were looked at.")
    out.append("")

    requests = report.get("requests") or {}
    capacity = report.get("capacity") or {}
    out += ["### Totals", "", "| | |", "|---|---|",
            f"| Duration | {duration_text(report.get('durationSeconds'))} ({_clock(report.get('startTime'))} "
            f"to {_clock(report.get('endTime'))} UTC) |",
            f"| ARM requests | {requests.get('reads', 0)} reads, {requests.get('writes', 0)} writes, "
            f"{requests.get('throttled', 0)} throttled |"]
    if capacity.get("before") is not None:
        out.append(f"| Capacity | {capacity.get('before')} before, {capacity.get('during')} during, "
                   f"{capacity.get('after')} after |")
    out.append("")
    return "\n".join(out)


def render_summary(report: dict, limit: int = SUMMARY_LIMIT) -> str:
    """`summary_markdown`, with fewer instance rows until it fits GitHub's limit."""
    text = summary_markdown(report)
    rows = len(report.get("instances") or [])
    while len(text.encode("utf-8")) > limit and rows > 0:
        rows //= 2
        text = summary_markdown(report, max_rows=rows)
    return text


def write_summary(markdown: str, path: str | None = None) -> None:
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")


def refusal_report(message: str, *, resource_group: str | None = None,
                   scale_set: str | None = None) -> dict:
    """The report of a run refused before it had settings (bad input, missing permission)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    from cycle_vmss import __version__
    return {
        "tool": "cycle-vmss", "version": __version__, "subscriptionId": None,
        "resourceGroup": resource_group, "scaleSet": scale_set, "orchestrationMode": None,
        "settings": {}, "startTime": now, "endTime": now, "durationSeconds": 0.0,
        "result": "refused", "message": message, "failure": None, "plan": None,
        "capacity": {"before": None, "during": None, "after": None},
        "requests": {"reads": 0, "writes": 0, "throttled": 0}, "warnings": [], "instances": [],
    }
