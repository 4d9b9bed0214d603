"""Request accounting over the simulator's request log (`Backend.requests()`): reads, writes,
the busiest 3-minute window, and whether polling kept to the economy rule (at most one paged
list per poll plus the status of in-flight operations; no per-instance instance views in the
loop). A pass may also stop at the statuses, without a list (the engine does when every slot is
busy and every operation still runs)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from cycle_vmss.simulator import routes
from .model import max_in_window

WINDOW_SECONDS = 180.0  # Compute's throttling buckets are per 3 and 30 minutes
READ_METHODS = ("GET", "HEAD")


_ROUTE_CACHE: dict[tuple[str, str], tuple[str, bool]] = {}


def _classify(entry: dict) -> tuple[str, bool]:
    """(handler name, is an ARM call) for one logged request; paths repeat, so cached."""
    path = entry["path"].split("?", 1)[0]
    key = (entry["method"], path if "/operations/" not in path else path.rsplit("/", 1)[0])
    found = _ROUTE_CACHE.get(key)
    if found is None:
        route, _, _ = routes.match(entry["method"], path)
        found = (route.handler, route.area == "arm") if route else ("unknown", False)
        _ROUTE_CACHE[key] = found
    return found


def _route(entry: dict) -> str:
    return _classify(entry)[0]


def _arm(entry: dict) -> bool:
    return _classify(entry)[1]


@dataclass
class RequestFigures:
    reads: int = 0
    writes: int = 0
    throttled: int = 0
    max_reads_3min: int = 0
    by_handler: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"reads": self.reads, "writes": self.writes, "throttled": self.throttled,
                "maxReadsIn3Min": self.max_reads_3min, "byCall": dict(sorted(self.by_handler.items()))}


def figures(log: list[dict], since: float | None = None) -> RequestFigures:
    """ARM requests only (token and introspection calls are not Azure Resource Manager load)."""
    out = RequestFigures()
    read_times = []
    counts: Counter[str] = Counter()
    for entry in log:
        if since is not None and entry["time"] < since:
            continue
        if not _arm(entry):
            continue
        counts[_route(entry)] += 1
        if entry.get("status") == 429:
            out.throttled += 1
        if entry["method"] in READ_METHODS:
            out.reads += 1
            read_times.append(entry["time"])
        else:
            out.writes += 1
    out.max_reads_3min = max_in_window(read_times, WINDOW_SECONDS)
    out.by_handler = dict(counts)
    return out


@dataclass
class Economy:
    """The rule, checked over the log. `passes` counts lists (a list starts at its first
    page); `status_only_passes` the poll instants with operation polls and no list (virtual
    time only: over HTTPS the SDK's pollers keep their own time)."""

    passes: int
    status_only_passes: int | None
    list_pages: int
    pages_per_list: int
    operation_polls: int
    operation_polls_after_seen_finished: int
    operation_polls_over_cadence: int
    per_instance_reads_in_loop: int
    ok: bool

    def as_json(self) -> dict:
        return {"passes": self.passes, "statusOnlyPasses": self.status_only_passes,
                "listPages": self.list_pages, "pagesPerList": self.pages_per_list,
                "operationPolls": self.operation_polls,
                "operationPollsAfterSeenFinished": self.operation_polls_after_seen_finished,
                "operationPollsOverCadence": self.operation_polls_over_cadence,
                "perInstanceReadsInLoop": self.per_instance_reads_in_loop, "ok": self.ok}


def economy(log: list[dict], n_instances: int, page_size: int, op_times: dict[str, tuple[float, float | None]],
            rolling_from: float, *, poll: float, sdk_poller: bool = False) -> Economy:
    """`op_times`: operation id -> (accepted at, final at) from the backend's own record.
    `rolling_from`: the instant the first reimage was accepted; reads before it are preflight.

    In process, the engine asks an in-flight operation at most once per pass (a reimage only
    when the list cannot tell how it stands): an operation may be polled at most once per
    `poll` seconds and never after a poll saw it finished. Over HTTPS a reimage is read the
    same way, and an operation the SDK's poller follows is read in its thread, on the same
    interval (a GET at once, one per interval until it sees the end); either way azure-core
    ends with one GET of the Location (monitor) URL; more than that for any operation counts
    as over cadence."""
    pages = max(1, math.ceil(n_instances / page_size))
    list_pages = ops = after_final = over = per_instance = 0
    seen_final: dict[str, int] = {}
    polls: dict[str, int] = {}
    last_poll: dict[str, float] = {}
    list_times: set[float] = set()
    poll_times: set[float] = set()
    for entry in log:
        if not _arm(entry) or entry["method"] not in READ_METHODS:
            continue
        handler = _route(entry)
        if handler == "list_instances":
            list_pages += 1
            list_times.add(entry["time"])
        elif handler == "operation":
            op_id = entry["path"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            ops += 1
            polls[op_id] = polls.get(op_id, 0) + 1
            if op_id in seen_final:
                seen_final[op_id] += 1
                if seen_final[op_id] > (1 if sdk_poller else 0):  # the SDK's one monitor GET
                    after_final += 1
            elif not sdk_poller and entry["time"] - last_poll.get(op_id, -math.inf) < poll - 1e-6:
                over += 1
            last_poll[op_id] = entry["time"]
            poll_times.add(entry["time"])
            end = (op_times.get(op_id) or (None, None))[1]
            if end is not None and entry["time"] >= end and op_id not in seen_final:
                seen_final[op_id] = 0
        elif handler in ("get_instance", "get_instance_view") and entry["time"] >= rolling_from:
            per_instance += 1
    if sdk_poller:
        for op_id, count in polls.items():
            start, end = op_times.get(op_id) or (None, None)
            if start is None or end is None:
                continue
            # at once, then one per interval until the end is seen (+1 for timer jitter), + monitor
            allowed = 1 + math.ceil((end - start) / poll) + 1 + 1
            over += max(0, count - allowed)
    passes = list_pages // pages
    status_only = None if sdk_poller else len(poll_times - list_times)
    ok = list_pages % pages == 0 and after_final == 0 and over == 0 and per_instance == 0
    return Economy(passes, status_only, list_pages, pages, ops, after_final, over, per_instance, ok)
