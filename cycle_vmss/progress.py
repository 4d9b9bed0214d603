"""What a person sees while the CLI runs, and the summary at the end.

On a terminal: the events scroll above a live status block (done, in flight with elapsed time,
pending, ready against R_min) drawn by `rich`. In a log (stdout not a TTY): one timestamped line
per event, heartbeats included, so a CI log shows the run's pace. `print_summary` renders the
final `Report` as a table of every instance with its times.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cycle_vmss.events import Event
from cycle_vmss.report import Report, iso, state_slashes


def _clock(instant: float) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def describe(event: Event) -> str | None:
    """One line for an event; None for events shown only in the live block."""
    d = event.data or {}
    iid = event.instance_id
    kind = event.kind
    if kind == "phase":
        return f"== {event.message}"
    if kind == "plan":
        return plan_line(d)
    if kind == "skipped":  # one instance, or (no id) the instances outside instance-ids
        return f"instance {iid}: skipped ({event.message})" if iid is not None else event.message
    if kind == "started":
        return f"instance {iid}: {event.message or 'reimage started'}"
    if kind == "state":
        return f"instance {iid}: {state_slashes(d)}"
    if kind == "done":
        return f"instance {iid}: done (reimaged and ready)"
    if kind == "failed":
        if event.message.startswith(f"instance {iid}"):  # the engine's line already names it
            return f"FAILED {event.message}"
        code = f" [{d['code']}]" if d.get("code") else ""
        return f"instance {iid}: FAILED{code} {event.message}".rstrip()
    if kind == "removed":
        return f"instance {iid}: removed by someone else"
    if kind == "capacity":
        return f"capacity {d.get('from')} -> {d.get('to')}"
    if kind == "waiting":
        return f"waiting: {event.message}"
    if kind == "output":  # a line of pre-reimage-command or post-ready-command
        return f"instance {iid}: {event.message}"
    if kind == "heartbeat":
        return heartbeat_line(d)
    if kind == "finished":
        return None
    return f"{kind}: {event.message}".rstrip(": ")


def plan_line(plan: dict) -> str:
    surge = plan.get("surgeTo")
    order = ", ".join(str(i) for i in plan.get("order") or []) or "(nothing to do)"
    return (f"plan: N0={plan.get('n0')} max-unavailable={plan.get('maxUnavailable')} "
            f"max-surge={plan.get('maxSurge')} R_min={plan.get('rMin')} "
            f"in flight at most {plan.get('maxInFlight')}; "
            f"{'surge to ' + str(surge) + ' first; ' if surge else ''}order: {order}")


ETA_AFTER = 3  # instances done before the pace so far says anything about the time left


def eta_seconds(first_start: float | None, done: int, remaining: int, now: float) -> float | None:
    """The time left at the pace so far (instances done per second since the first start, which
    already counts how many go at once); None until ETA_AFTER are done."""
    if first_start is None or done < ETA_AFTER or remaining <= 0 or now <= first_start:
        return None
    return remaining * (now - first_start) / done


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"about {max(1, round(seconds / 60))} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


def heartbeat_line(d: dict, eta: float | None = None) -> str:
    """One line of progress; R_min only once the plan has settled it."""
    ready = f"; {d['ready']} ready" if d.get("ready") is not None else ""
    r_min = f" (R_min {d['r_min']})" if d.get("r_min") is not None else ""
    left = f"; {eta_text(eta)}" if eta is not None else ""
    return (f"progress: {d.get('done', 0)} done, {d.get('in_flight', 0)} in flight, "
            f"{d.get('pending', 0)} pending{ready}{r_min}{left}")


class TerminalProgress:
    """A Listener for the CLI. Use as a context manager so the live block starts and stops."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.live_mode = self.console.is_terminal if live is None else live
        self._lock = threading.Lock()
        self._live: Live | None = None
        self.in_flight: dict[str, float] = {}
        self.done: set[str] = set()
        self.ended: set[str] = set()  # failed or removed
        self.order: list[str] = []
        self.counts: dict[str, Any] = {}
        self.phase = "starting"
        self.first_start: float | None = None

    # --- Listener --------------------------------------------------------------------------
    def event(self, event: Event) -> None:
        with self._lock:
            self._track(event)
            line = describe(event)
            if event.kind == "heartbeat":
                line = heartbeat_line(event.data, self._eta(event.time))
            if line is None:
                return
            if self.live_mode:
                if event.kind != "heartbeat":  # the live block already shows it
                    self.console.print(Text(line, style=_style(event.kind)))
            else:
                self.console.print(f"{_clock(event.time)} {line}", markup=False, highlight=False)
                self.console.file.flush()

    def _track(self, event: Event) -> None:
        iid = event.instance_id
        if event.kind == "phase":
            self.phase = event.message
        elif event.kind == "plan":
            self.order = [str(i) for i in event.data.get("order") or []]
            self.counts.setdefault("r_min", event.data.get("rMin"))
        elif event.kind == "started" and iid:
            self.in_flight[iid] = event.time
            if self.first_start is None:
                self.first_start = event.time
        elif event.kind in ("done", "failed", "removed") and iid:
            self.in_flight.pop(iid, None)
            (self.done if event.kind == "done" else self.ended).add(iid)
        elif event.kind == "heartbeat":
            self.counts.update(event.data)

    def _pending(self) -> int:
        return len([i for i in self.order if i not in self.done and i not in self.in_flight
                    and i not in self.ended])

    def _eta(self, now: float) -> float | None:
        return eta_seconds(self.first_start, len(self.done), self._pending() + len(self.in_flight), now)

    # --- live block ------------------------------------------------------------------------
    def __enter__(self) -> "TerminalProgress":
        if self.live_mode:
            self._live = Live(get_renderable=self._render, console=self.console,
                              refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> Group:
        with self._lock:
            now = time.time()
            ready = f"ready {self.counts['ready']} " if self.counts.get("ready") is not None else ""
            r_min = f"(R_min {self.counts['r_min']})" if self.counts.get("r_min") is not None else ""
            head = Text.assemble(
                (f"{self.phase}  ", "bold"),
                (f"{len(self.done)} done", "green"),
                "  ", (f"{len(self.in_flight)} in flight", "yellow"),
                "  ", f"{self._pending()} pending",
                "  ", ready + r_min,
                "  ", (eta_text(self._eta(now)), "cyan"))
            lines = [Text(f"  > instance {iid}  {_elapsed(now - start)}", style="yellow")
                     for iid, start in sorted(self.in_flight.items(), key=lambda kv: kv[1])]
            return Group(head, *lines)


def _style(kind: str) -> str:
    return {"failed": "bold red", "done": "green", "skipped": "yellow", "removed": "yellow",
            "phase": "bold", "waiting": "dim"}.get(kind, "")


def _time_of(t: float | None) -> str:
    return "" if t is None else iso(t)[11:19]


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.0f}s"


def _first_words(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_summary(report: Report, stream: IO[str] | None = None) -> None:
    """The final report as a person reads it: the outcome, then every instance with its times."""
    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a log has no width; do not truncate the table to 80 columns
        console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True, width=200)
    result = report.result
    style = {"succeeded": "bold green", "paused": "bold cyan", "dry-run": "bold cyan", "failed": "bold red",
             "refused": "bold red", "cancelled": "bold yellow"}.get(result, "bold")
    # A failure or refusal is said once, on stderr, by the front end: not repeated here.
    headline = {"refused": "nothing was changed (the error is below)",
                "failed": "(the error is below)"}.get(result, report.message)
    console.print(Text.assemble((f"{result.upper()}", style), "  ", headline))
    where = " ".join(part for part in (
        f"scale set {report.scale_set} in {report.resource_group}",
        f"(subscription {report.subscription_id})" if report.subscription_id else "") if part)
    console.print(f"{where}, {report.duration_seconds:.0f}s", markup=False)
    if report.plan:
        console.print(plan_line(report.plan), markup=False)
    capacity, requests = report.capacity, report.requests
    known = (f"capacity before {capacity.before}, during {capacity.during}, after {capacity.after}; "
             if capacity.before is not None else "")
    console.print(f"{known}requests: {requests.reads} reads, {requests.writes} writes, "
                  f"{requests.throttled} throttled", markup=False)
    for warning in report.warnings:
        console.print(Text("warning: " + warning, style="yellow"))
    if report.in_scope_rows:
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for name in ("id", "name", "zone", "action", "started", "reimaged", "ready",
                     "out of service", "detail"):
            table.add_column(name, no_wrap=name != "detail")
        for row in report.in_scope_rows:
            detail = row.reason or ""
            if row.error is not None:  # the code here; the whole message is the headline above
                detail = row.error.code or _first_words(row.error.message)
            table.add_row(
                row.id, row.name or "", row.zone or "",
                Text(row.action, style={"reimaged": "green", "failed": "red",
                                        "in-flight": "yellow"}.get(row.action, "")),
                _time_of(row.reimage_start), _time_of(row.reimage_end),
                _time_of(row.ready_time), _seconds(row.out_of_service_seconds), detail)
        console.print(table)
    if report.out_of_scope_line:
        console.print(report.out_of_scope_line, markup=False)
    failure = report.failure
    if failure and failure.message not in report.message:
        console.print(Text(
            f"failed instance {failure.instance_id}: {failure.code or ''} "
            f"{failure.message} (last states {state_slashes(failure.states)})",
            style="red"))
