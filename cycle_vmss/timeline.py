"""Pictures of a run, drawn from its JSON report: an SVG timeline and a Mermaid Gantt chart.

Both show each instance's time out of service (from its reimage request until it was ready, or
until the run ended for a failed or in-flight one), grouped by zone. The SVG adds the budget: how
many of the run's instances were out of service at each moment, against `max-unavailable`.
Everything here is a pure function of the report's JSON form, so a report from any front end
(or an old run) can be drawn again with `cycle-vmss timeline REPORT.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence
from xml.sax.saxutils import escape

MERMAID_LIMIT = 50_000  # characters: Mermaid's default maxTextSize; longer charts do not render
ROW_PER_INSTANCE_UP_TO = 100  # instances: beyond this, bars share rows and charts are grouped
MERMAID_GROUPS_PER_ZONE = 30  # at most this many grouped bars per zone in a large Mermaid chart

COLOURS = {"reimaged": "#2e7d32", "failed": "#c62828", "in-flight": "#f9a825"}
LABELS = {"reimaged": "reimaged", "failed": "failed", "in-flight": "still in flight at the end"}


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


@dataclass(frozen=True)
class Bar:
    """One instance's time out of service."""

    index: int  # position in the report's instance list (Mermaid's task id)
    id: str
    name: str  # the VM name when it is not the id, else ""
    zone: str  # "" when the set is not zonal
    action: str
    start: datetime
    end: datetime


def bars(report: dict) -> list[Bar]:
    """Every instance the run took out of service, in the report's order."""
    end_of_run = report.get("endTime")
    out = []
    for n, row in enumerate(report.get("instances") or []):
        start = parse_time(row.get("reimageStart"))
        if start is None:
            continue
        # A failed or in-flight instance stayed out of service until the run ended.
        unready_until = end_of_run if row.get("action") in ("failed", "in-flight") else row.get("reimageEnd")
        end = parse_time(row.get("readyTime") or unready_until or end_of_run) or start
        name = row.get("name") or ""
        out.append(Bar(n, str(row.get("id")), "" if name == str(row.get("id")) else name,
                       str(row.get("zone") or ""), str(row.get("action") or ""), start,
                       max(end, start)))
    return out


def _zone_title(zone: str) -> str:
    return f"zone {zone}" if zone else "no zone"


def _by_zone(items: list[Bar]) -> dict[str, list[Bar]]:
    zones: dict[str, list[Bar]] = {}
    for bar in items:
        zones.setdefault(_zone_title(bar.zone), []).append(bar)
    return dict(sorted(zones.items()))


# --- Mermaid ----------------------------------------------------------------------------------

def _mermaid_name(text: str) -> str:
    return re.sub(r"[:;#,]", " ", text).strip()


def _mermaid_tag(actions: set[str]) -> str:
    if "failed" in actions:
        return "crit, "
    if "in-flight" in actions:
        return "active, "
    return "done, "


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def mermaid_gantt(report: dict, limit_chars: int = MERMAID_LIMIT) -> list[str]:
    """A Mermaid Gantt chart, one section per zone: a bar per instance up to a hundred; beyond,
    a bar per group of instances that started close together in a zone (said above the chart),
    so that the chart stays within Mermaid's `limit_chars`."""
    items = bars(report)
    if not items:
        return ["No instance was taken out of service."]
    head = ["```mermaid", "gantt", "    title Time out of service", "    dateFormat YYYY-MM-DD HH:mm:ss",
            "    axisFormat %H:%M:%S"]
    per_zone = MERMAID_GROUPS_PER_ZONE
    while True:
        note, body = _mermaid_body(items, per_zone)
        lines = note + head + body + ["```"]
        if per_zone <= 1 or sum(len(line) + 1 for line in lines) <= limit_chars:
            return lines
        per_zone //= 2


def _mermaid_body(items: list[Bar], per_zone: int) -> tuple[list[str], list[str]]:
    body: list[str] = []
    if len(items) <= ROW_PER_INSTANCE_UP_TO:
        for zone, members in _by_zone(items).items():
            body.append(f"    section {zone}")
            body += [f"    {_mermaid_name(f'{b.id} {b.name}')} : {_mermaid_tag({b.action})}"
                     f"i{b.index}, {_stamp(b.start)}, {_stamp(b.end)}" for b in members]
        return [], body
    groups = 0
    for zone, members in _by_zone(items).items():
        body.append(f"    section {zone}")
        members = sorted(members, key=lambda b: (b.start, b.index))
        size = -(-len(members) // per_zone)  # instances per bar, rounded up
        for k in range(0, len(members), size):
            group = members[k:k + size]
            label = f"{len(group)} instances" if len(group) > 1 else f"instance {group[0].id}"
            body.append(f"    {_mermaid_name(label)} : {_mermaid_tag({b.action for b in group})}"
                        f"g{groups}, {_stamp(group[0].start)}, {_stamp(max(b.end for b in group))}")
            groups += 1
    note = [f"{len(items):,} instances were out of service at some point: each bar stands for the "
            f"instances of a zone that started together (from the first start to the last "
            f"ready), so the chart stays small enough to render. Every instance is in the run "
            f"report, and `cycle-vmss timeline REPORT.json` draws them one by one.", ""]
    return note, body


# --- SVG --------------------------------------------------------------------------------------

WIDTH = 1000
LEFT = 150  # the label column
RIGHT = 20
TOP = 62  # title and legend
ZONE_GAP = 8
BUDGET_HEIGHT = 110
AXIS_HEIGHT = 28
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400)  # seconds between axis ticks: clock-friendly steps


def _tick_step(span: float, wanted: int = 8) -> int:
    for step in _TICK_STEPS:
        if span / step <= wanted:
            return step
    return _TICK_STEPS[-1]


def _pack(members: list[Bar]) -> list[list[Bar]]:
    """Bars into as few rows as they fit in without overlapping (first row that is free)."""
    rows: list[list[Bar]] = []
    for bar in sorted(members, key=lambda b: (b.start, b.index)):
        for row in rows:
            if row[-1].end <= bar.start:
                row.append(bar)
                break
        else:
            rows.append([bar])
    return rows


def out_of_service_steps(items: list[Bar]) -> list[tuple[datetime, int]]:
    """How many of the run's instances were out of service from each instant on."""
    changes: dict[datetime, int] = {}
    for b in items:
        changes[b.start] = changes.get(b.start, 0) + 1
        changes[b.end] = changes.get(b.end, 0) - 1
    level, steps = 0, []
    for moment in sorted(changes):
        level += changes[moment]
        steps.append((moment, level))
    return steps


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def svg(report: dict) -> str:
    """The run as an SVG picture: a lane per zone with each instance's time out of service, and
    below it the number out of service over time against the budget."""
    items = bars(report)
    run_start = parse_time(report.get("startTime"))
    run_end = parse_time(report.get("endTime"))
    starts = [b.start for b in items] + ([run_start] if run_start else [])
    ends = [b.end for b in items] + ([run_end] if run_end else [])
    t0 = min(starts) if starts else datetime(1970, 1, 1, tzinfo=timezone.utc)
    t1 = max(ends) if ends else t0
    span = max((t1 - t0).total_seconds(), 1.0)
    plot = WIDTH - LEFT - RIGHT

    def x(moment: datetime) -> float:
        return round(LEFT + (moment - t0).total_seconds() / span * plot, 1)

    one_per_row = len(items) <= ROW_PER_INSTANCE_UP_TO
    row_h, bar_h = (16, 12) if one_per_row else (5, 4)
    out: list[str] = []
    y = TOP
    for zone, members in _by_zone(items).items():
        rows = [[b] for b in members] if one_per_row else _pack(members)
        title = f"{zone}: {len(members)} instance{'s' if len(members) != 1 else ''}"
        out.append(f'<text x="6" y="{y + 12}" class="zone">{escape(title)}</text>')
        y += 16  # the zone's title sits on a line of its own, above its rows
        height = len(rows) * row_h
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot}" height="{height}" fill="#f5f5f5"/>')
        for r, row in enumerate(rows):
            top = y + r * row_h + (row_h - bar_h) / 2
            if one_per_row:
                label = f"{row[0].id} {row[0].name}".strip()
                out.append(f'<text x="{LEFT - 6}" y="{top + bar_h - 2}" class="id">{escape(label)}</text>')
            for b in row:
                width = max(x(b.end) - x(b.start), 1.0)
                tip = (f"<title>{escape(b.id)}: {b.action}, {b.start:%H:%M:%S} to "
                       f"{b.end:%H:%M:%S} UTC</title>") if one_per_row else ""
                out.append(f'<rect x="{x(b.start)}" y="{top}" width="{width:.1f}" height="{bar_h}" '
                           f'class="{b.action if b.action in COLOURS else "reimaged"}">{tip}</rect>')
        y += height + ZONE_GAP
    if not items:
        out.append(f'<text x="{LEFT}" y="{y + 14}" class="id" text-anchor="start">No instance was '
                   f'taken out of service.</text>')
        y += 24
    budget_top = y + 10
    out += _budget_panel(report, items, x, budget_top)
    axis_y = budget_top + BUDGET_HEIGHT
    out += _axis(t0, span, x, TOP, axis_y)
    height = axis_y + AXIS_HEIGHT
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        "<style>.zone{font-weight:bold}.id{text-anchor:end}.tick{fill:#555}"
        + "".join(f".{k}{{fill:{v}}}" for k, v in COLOURS.items())
        + ".grid{stroke:#ddd}.limit{stroke:#c62828;stroke-dasharray:6 3}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        *_title(report, items),
        *out,
        "</svg>",
        "",
    ])


def _title(report: dict, items: list[Bar]) -> list[str]:
    result = report.get("result") or "?"
    duration = report.get("durationSeconds")
    done = sum(1 for b in items if b.action == "reimaged")
    text = (f"{report.get('scaleSet') or '?'} in {report.get('resourceGroup') or '?'}: {result}, "
            f"{done} reimaged" + (f" in {_duration(duration)}" if duration is not None else ""))
    legend, lx = [], LEFT
    for action, colour in COLOURS.items():
        legend.append(f'<rect x="{lx}" y="34" width="12" height="12" class="{action}"/>'
                      f'<text x="{lx + 16}" y="44">{LABELS[action]}</text>')
        lx += 30 + 7 * len(LABELS[action])
    legend.append(f'<line x1="{lx}" y1="40" x2="{lx + 24}" y2="40" class="limit"/>'
                  f'<text x="{lx + 30}" y="44">max-unavailable</text>')
    return [f'<text x="6" y="20" font-size="15" font-weight="bold">{escape(text)}</text>', *legend]


def _budget_panel(report: dict, items: list[Bar], x, top: float) -> list[str]:
    plan = report.get("plan") or {}
    limit = plan.get("maxUnavailable")
    steps = out_of_service_steps(items)
    peak = max([level for _, level in steps] + [limit or 0, plan.get("maxInFlight") or 0, 1])
    inner = BUDGET_HEIGHT - 26

    def y(level: float) -> float:
        return round(top + 10 + inner - level / peak * inner, 1)

    out = [f'<text x="6" y="{top + 22}" class="zone">out of service</text>',
           f'<text x="6" y="{top + 36}">(this run)</text>',
           f'<line x1="{LEFT}" y1="{y(0)}" x2="{WIDTH - RIGHT}" y2="{y(0)}" stroke="#999"/>',
           f'<text x="{LEFT - 6}" y="{y(0) + 4}" class="id">0</text>',
           f'<text x="{LEFT - 6}" y="{y(peak) + 4}" class="id">{peak}</text>']
    if steps:
        points, level = [], 0
        for moment, new in steps:
            points += [f"{x(moment)},{y(level)}", f"{x(moment)},{y(new)}"]
            level = new
        # Closed along the zero line: a filled area reads at a glance, even where it meets the limit.
        points.append(f"{x(steps[-1][0])},{y(0)}")
        out.append(f'<polygon points="{" ".join(points)}" fill="#90caf9" stroke="#1565c0" '
                   f'stroke-width="1"/>')
    if limit is not None:
        out.append(f'<line x1="{LEFT}" y1="{y(limit)}" x2="{WIDTH - RIGHT}" y2="{y(limit)}" '
                   f'class="limit"><title>max-unavailable {limit}</title></line>')
        out.append(f'<text x="{WIDTH - RIGHT}" y="{y(limit) - 3}" text-anchor="end" '
                   f'fill="#c62828">max-unavailable {limit} (R_min {plan.get("rMin", "?")} of '
                   f'{plan.get("n0", "?")})</text>')
    return out


def _axis(t0: datetime, span: float, x, top: float, bottom: float) -> list[str]:
    step = _tick_step(span)
    first = t0.replace(microsecond=0)
    offset = -(first.timestamp() % step) % step  # the first tick on a whole multiple of the step
    out = []
    moment = first + timedelta(seconds=offset)
    while moment <= t0 + timedelta(seconds=span):
        if moment >= t0:
            out.append(f'<line x1="{x(moment)}" y1="{top}" x2="{x(moment)}" y2="{bottom}" class="grid"/>'
                       f'<text x="{x(moment)}" y="{bottom + 14}" text-anchor="middle" class="tick">'
                       f'{moment:%H:%M:%S}</text>')
        moment += timedelta(seconds=step)
    out.append(f'<text x="{WIDTH - RIGHT}" y="{bottom + 26}" text-anchor="end" class="tick">UTC</text>')
    return out


# --- `cycle-vmss timeline` --------------------------------------------------------------------

PROG = "cycle-vmss timeline"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description=(
        "Draw a run report (written by --report-file, or the action's report-file output) as an "
        "SVG timeline: each instance's time out of service by zone, and the budget."))
    parser.add_argument("report", metavar="REPORT.json", help="a cycle-vmss run report")
    parser.add_argument("-o", "--output", metavar="FILE.svg",
                        help="where to write the picture (default: the report's name with .svg)")
    parser.error = lambda message: sys.exit(_fail(message))  # type: ignore[method-assign]
    args = parser.parse_args(list(argv))
    try:
        with open(args.report, encoding="utf-8") as f:
            report = json.load(f)
    except OSError as err:
        return _fail(f"{args.report}: cannot read it ({err.strerror or err})")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return _fail(f"{args.report}: not a run report (not JSON: {err})")
    if not isinstance(report, dict) or not isinstance(report.get("instances"), list):
        return _fail(f"{args.report}: not a run report (no instances list); expected the JSON "
                     f"that --report-file writes")
    output = args.output or os.path.splitext(args.report)[0] + ".svg"
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(svg(report))
    except OSError as err:
        return _fail(f"{output}: cannot write it ({err.strerror or err})")
    print(output)
    return 0
