"""The invariants (issue 6, and the zone rule of issue 17), checked from the simulator's own record (`history()` and its
request log), never from the engine's report (the report is only read where invariant 5 asks
what it *says*). The budget is computed here again from the scenario and the raw settings, so a
mistake in the engine's own budget arithmetic cannot hide itself.

A `Case` is one randomized run: the scenario dict given to the simulator and the raw settings
as a user typed them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

SET_PATH_PART = "/virtualMachineScaleSets/"
NAME = "vmss-demo"


@dataclass(frozen=True)
class Case:
    scenario: dict
    raw: dict  # settings as strings, keyed by field name
    # gate-url's refusals: (from, to) seconds after the run began, in which it answers 503
    gate_closed: tuple[tuple[int, int], ...] | None = None
    # pre-reimage-command / post-ready-command in virtual time: which run, how long each takes,
    # and the instances whose commands fail ({"pre": bool, "post": bool, "seconds", "fail"})
    commands: dict | None = None

    def setting(self, name: str, default: str) -> str:
        return self.raw.get(name, default)


@dataclass(frozen=True)
class Budget:
    unavailable: int
    surge: int  # effective (configured + automatic)
    cap: int

    def r_min(self, n0: int, ignore_availability: bool) -> int:
        return max(n0 - self.unavailable, 0 if ignore_availability else 1)


def _resolve(text: str, n0: int, up: bool) -> int:
    if text.endswith("%"):
        exact = int(text[:-1]) * n0 / 100
        return math.ceil(exact) if up else math.floor(exact)
    return int(text)


def budget_for(case: Case, n0: int) -> Budget:
    """SPEC section 4, written out again: percentages of N0 (unavailable down, surge up), both 0
    -> unavailable 1, automatic surge so that R_min + 1 instances exist, cap max(1, u + s)."""
    unavailable = _resolve(case.setting("max_unavailable", "1"), n0, up=False)
    surge = _resolve(case.setting("max_surge", "0"), n0, up=True)
    if unavailable == 0 and surge == 0:
        unavailable = 1
    ignore = case.setting("ignore_availability", "false") == "true"
    rmin = max(n0 - unavailable, 0 if ignore else 1)
    auto = max(0, rmin + 1 - (n0 + surge)) if n0 else 0
    return Budget(unavailable, surge + auto, max(1, unavailable + surge + auto))


# --- reading the simulator's record ----------------------------------------------------------

class Record:
    """The simulator's history and request log, with the questions the invariants ask."""

    def __init__(self, backend, case: Case) -> None:
        self.h = backend.history()
        self.requests = backend.requests()
        self.capacity_now = backend.capacity
        self.case = case
        self.specs = {str(s["id"]): s for s in case.scenario["instances"]}
        events = [e for e in self.h["events"] if "skipped" not in e]
        # History keys are per instance: an earlier holder of a reused id is `<id>#<n>`.
        self.deleted_by_event = {self.holder(e["delete_instance"], e["time"]): e["time"]
                                 for e in events if "delete_instance" in e}
        self.added_at = [e["time"] for e in events for _ in range(e.get("add_instances") or 0)]
        self.event_adds = sum(e.get("add_instances") or 0 for e in events)
        # Azure's own doing, not the run's: instances its automatic repairs replaced, and when.
        # (By history key: a replaced instance's id may have been reused since.)
        self.replaced = {self.holder(r["instance"], r["start"]): r["start"]
                         for r in self.h["repairs"]["done"] if r["action"] == "Replace"}

    def holder(self, iid: str, t: float) -> str:
        """The history key of the instance that had id `iid` at `t`."""
        return next(k for k in self.h["instances"] if k.split("#")[0] == iid and self.exists(k, t))

    def original(self, iid: str) -> str:
        """The history key of the scenario's instance `iid` (its id may have been reused)."""
        return iid if self.h["instances"][iid]["created"] is None else f"{iid}#1"

    def spec(self, key: str) -> dict:
        """The scenario's spec of the instance with this history key ({} for a new one)."""
        return self.specs.get(key.split("#")[0], {}) if self.h["instances"][key]["created"] is None else {}

    def exists(self, iid: str, t: float) -> bool:
        rec = self.h["instances"][iid]
        return (rec["created"] is None or rec["created"] <= t) and (rec["deleted"] is None or rec["deleted"] > t)

    def ready(self, iid: str, t: float) -> bool:
        if not self.exists(iid, t):
            return False
        for start, end in self.h["instances"][iid]["not_ready"]:
            if start <= t and (end is None or t < end):
                return False
        return True

    def deleting(self, iid: str, t: float) -> bool:
        at = self.deleted_by_event.get(iid)
        return at is not None and at <= t

    def list_times(self) -> list[float]:
        return [r["time"] for r in self.requests if r["method"] == "GET" and r["status"] == 200
                and r["path"].endswith("/virtualMachines")]

    def first_list(self) -> float | None:
        times = self.list_times()
        return times[0] if times else None

    def surge_created(self) -> set[str]:
        """Instances created by the run's own capacity change (PATCH), not by events."""
        return {i for i, r in self.h["instances"].items() if r.get("created_by") == "capacity"}

    def n0_at(self, t: float) -> int:
        """Instances in service at t: existing, not stopped or deallocated, not being deleted,
        not the run's own surge."""
        n = 0
        surge = self.surge_created()
        for iid, rec in self.h["instances"].items():
            spec = self.spec(iid)
            if not self.exists(iid, t) or self.deleting(iid, t) or iid in surge:
                continue
            if spec.get("power", "running") != "running":
                continue
            n += 1
        return n

    def reimage_requests(self) -> list[tuple[str, int]]:
        """(instance id, status) of every per-instance reimage request the simulator saw."""
        return [(iid, r["status"]) for r in self.requests if (iid := _reimaged(r)) is not None]

    def steady(self, iid: str, a: float, b: float) -> bool | None:
        """True: ready at every instant of [a, b]; False: existing and not ready at any of them;
        None: it changed in between, or did not exist throughout."""
        rec = self.h["instances"][iid]
        if (rec["created"] is not None and rec["created"] > a) or \
                (rec["deleted"] is not None and rec["deleted"] <= b):
            return None
        overlapping = [(s, e) for s, e in rec["not_ready"] if s <= b and (e is None or e > a)]
        if not overlapping:
            return True
        return False if any(s <= a and (e is None or e > b) for s, e in overlapping) else None

    def pass_window(self, iid: str, t: float) -> tuple[float, int]:
        """For the reimage of `iid` accepted at `t`: when the list its pass acted on began (the
        pages just before that pass's reimage requests; the run's first list when the pass used
        preflight's), and the index of the request in the log."""
        reqs = self.requests
        j = next(n for n, r in enumerate(reqs) if r["time"] >= t and _reimaged(r) == iid)
        n = j - 1
        while n >= 0 and _reimaged(reqs[n]) is not None:
            n -= 1
        start = None
        while n >= 0 and reqs[n]["method"] == "GET" and \
                reqs[n]["path"].endswith(("/virtualMachines", "/instanceView")):
            start, n = reqs[n]["time"], n - 1
        return (start if start is not None else self.first_list()), j

    def needless_zone_outage(self, k: int, candidates: set[str]) -> tuple[str, str] | None:
        """Takeout `k` reimaged the last ready instance of its zone while the engine's list showed
        another in-scope instance it could take instead, in a zone that would keep a ready one:
        (that instance, its zone), else None. Judged on what the list could show: over the
        pass's window everything named was ready, or not ready, throughout; anything that
        changed within it is given the benefit of the doubt."""
        takeouts, inst = self.h["takeouts"], self.h["instances"]
        x, t = takeouts[k]["instance"], takeouts[k]["time"]
        if not takeouts[k]["was_ready"]:
            return None  # unready: started first, it empties nothing
        s, j = self.pass_window(x, t)
        if any(a < t and (e is None or e > s) for a, e in inst[x]["not_ready"]):
            return None  # the list may have shown it unready
        ours = {o["instance"]: o["time"] for o in takeouts[:k]}
        planned = {iid for r in self.requests[:j] if r["time"] >= s and (iid := _reimaged(r))}
        zone = inst[x]["zone"]
        for m, rec in inst.items():
            if m == x or rec["zone"] != zone or (rec["created"] is not None and rec["created"] > t) \
                    or (rec["deleted"] is not None and rec["deleted"] <= s):
                continue  # another zone's, or not there while the pass ran
            if self.steady(m, s, t) is not False and not (m in ours and self.steady(m, ours[m], t) is False):
                return None  # it may have been ready in the list: the zone kept one
        untouched = {i for i in inst if i not in ours and i not in planned and i != x
                     and not self.deleting(i, t) and self.steady(i, s, t)}
        # (An instance created during the run is none of the run's, even with an id the run
        # began with: Azure reuses a deleted instance's id.)
        for y in sorted(i for i in candidates & untouched if inst[i]["created"] is None):
            if y != x and any(w != y and inst[w]["zone"] == inst[y]["zone"] for w in untouched):
                return y, inst[y]["zone"]
        return None

    def write_times(self, method: str, suffix: str = "") -> list[float]:
        return [r["time"] for r in self.requests if r["method"] == method and r["status"] < 300
                and r["path"].endswith(suffix)]


def _reimaged(request: dict) -> str | None:
    """The instance a per-instance reimage request names, or None for any other request."""
    parts = request["path"].rstrip("/").split("/")
    if request["method"] == "POST" and parts[-1] in ("reimage", "reimageall") and \
            len(parts) >= 3 and parts[-3] == "virtualMachines":
        return parts[-2]
    return None


# --- the invariants ----------------------------------------------------------------------------

def check(case: Case, backend, report: dict, decided: dict[str, float] | None = None) -> Record:
    """Raise AssertionError naming the first broken invariant; returns the record read.
    `decided`: when the engine took an instance out, where that comes before its reimage
    request (its pre-reimage-command's start)."""
    rec = Record(backend, case)
    h = rec.h
    specs = rec.specs
    t0 = rec.first_list()
    result = report["result"]
    ignore_avail = case.setting("ignore_availability", "false") == "true"
    scope = set(case.raw["instance_ids"].split()) if case.raw.get("instance_ids") else set(specs)
    untouchable = {i for i, s in specs.items()
                   if i not in scope or s.get("protect_from_scale_set_actions")
                   or s.get("power", "running") != "running"}

    if t0 is None or result == "refused":
        # Never listed, or refused at preflight: nothing may have been written.
        writes = [r for r in rec.requests if r["method"] != "GET"]
        assert writes == [], f"refused/unlisted run wrote: {writes}"
        return rec

    n0 = rec.n0_at(t0)
    budget = budget_for(case, n0)
    # An instance someone else deletes leaves N0 as its deletion begins (the engine sees it
    # `deleting` and counts it removed), not when the deletion ends.
    removed_from_n0 = {i: at for i, at in rec.deleted_by_event.items()
                       if h["instances"][i]["deleted"] is not None and rec.exists(i, t0)
                       and not rec.deleting(i, t0) and rec.spec(i).get("power", "running") == "running"}
    removed_from_n0.update({i: at for i, at in rec.replaced.items() if at > t0 and i not in removed_from_n0
                            and (spec := rec.spec(i)) and spec.get("power", "running") == "running"})

    def r_min(t: float) -> int:
        gone = sum(1 for at in removed_from_n0.values() if at <= t)
        return budget.r_min(n0 - gone, ignore_avail)

    # 1. A ready instance was taken out only while >= R_min others were ready. Readiness that
    #    changed after the engine's last list and before its request (only a Retry-After or
    #    back-off sleep lets virtual time pass there) could not be seen, and is allowed for.
    takeouts = h["takeouts"]
    lists = rec.list_times()
    for k, takeout in enumerate(takeouts):
        if not takeout["was_ready"]:
            continue
        T, iid = takeout["time"], takeout["instance"]
        need = r_min(T)
        if takeout["others_ready"] >= need:
            continue
        # The engine decided on the list before it took the instance out: with a pre-command,
        # before that command began, not before the reimage request that followed it. That
        # list began at its first page: a list Azure throttled part way is resumed a Retry-After
        # later, so what its first pages showed may have changed by its last.
        if iid in (decided or {}):
            seen = [t for t in lists if t <= decided[iid]]
            L = seen[-1] if seen else T
        else:
            L = rec.pass_window(iid, T)[0]
        if not rec.ready(iid, L):
            continue  # the engine saw it unready: started first, at no cost to the budget
        ours_between = {t["instance"] for t in takeouts[:k] if L <= t["time"] <= T}
        unseen = sum(1 for other in h["instances"] if other != iid and other not in ours_between
                     and rec.ready(other, L) and not rec.ready(other, T))
        assert takeout["others_ready"] + unseen >= need, (
            f"invariant 1: instance {iid} taken out at +{T - h['start']:.1f}s with "
            f"{takeout['others_ready']} others ready (R_min {need}, N0 {n0})")

    # 2. Never more reimages in flight than the cap.
    assert h["max_reimages_in_flight"] <= budget.cap, (
        f"invariant 2: {h['max_reimages_in_flight']} reimages in flight, cap {budget.cap}")

    # 3. No instance reimaged twice (but once more after its reimage was preempted); nothing out
    #    of scope, protected or stopped touched; no whole-set call; only the run's own surge
    #    instances deleted (Azure's repairs replace instances of their own accord).
    assert h["whole_set_reimages"] == 0, "invariant 3: a whole-set reimage call"
    for iid, r in h["instances"].items():
        assert [x["status"] for x in r["reimages"][:-1]] in ([], ["Canceled"]), (
            f"invariant 3: instance {iid} reimaged {len(r['reimages'])} times: {r['reimages']}")
    asked = rec.reimage_requests()
    touched = sorted({i for i, _ in asked} & untouchable)
    assert not touched, f"invariant 3: reimage requested for untouchable instances {touched}"
    surge_created = rec.surge_created()
    # Capacity is absolute in ARM: an addition or removal by someone else between the run's
    # reading of the set and its own capacity change (only Retry-After sleeps let virtual time
    # pass there) cannot be told apart from ours. The README names this limit; such runs skip
    # the surge-attribution checks.
    patches = rec.write_times("PATCH")
    raced = False
    if patches:
        reads = [r["time"] for r in rec.requests if r["method"] == "GET" and r["status"] == 200
                 and r["path"].endswith(SET_PATH_PART + NAME) and r["time"] <= patches[0]]
        before_patch = [t for t in lists if t <= patches[0]]
        since = min(reads[-1] if reads else h["start"], before_patch[-1] if before_patch else h["start"])
        raced = any(since < e["time"] <= patches[0] for e in h["events"]
                    if "skipped" not in e and ("add_instances" in e or "delete_instance" in e))
        raced = raced or any(since < at <= patches[0] for at in rec.replaced.values())
    for iid, r in h["instances"].items():
        if r.get("deleted_by") in ("request", "scale-in") and not raced:
            assert iid in surge_created, f"invariant 3: instance {iid} was deleted by the run but is not a surge instance"

    # 6. A zone's last ready instance was reimaged only when no other zone could give one: a
    #    zone is never taken wholly out of service by the run while another choice exists.
    #    Not judged with a pre-reimage-command: it drains an instance (out of service for the
    #    engine) before Azure shows any change, and this record holds only Azure's view.
    drained_first = bool(case.commands and case.commands.get("pre"))
    for k in range(0 if drained_first else len(takeouts)):
        choice = rec.needless_zone_outage(k, scope - untouchable)
        assert choice is None, (
            f"invariant 6: instance {takeouts[k]['instance']} took zone "
            f"{h['instances'][takeouts[k]['instance']]['zone']} wholly out of service at "
            f"+{takeouts[k]['time'] - h['start']:.1f}s while {choice[0]} (zone {choice[1]}) could go")

    # 4. Every in-scope instance ends reimaged and ready, skipped, removed, or the run failed
    #    naming what stopped it; within the timeouts' bound.
    end = h["now"]
    if result == "succeeded":
        for iid in sorted(scope - untouchable):
            iid = rec.original(iid)
            r = h["instances"][iid]
            if iid in rec.deleted_by_event and (r["deleted"] is not None or rec.deleting(iid, end)) \
                    or iid in rec.replaced:
                continue  # removed by someone else, or replaced by Azure's repairs
            assert r["reimages"] and r["reimages"][-1]["status"] == "Succeeded", (
                f"invariant 4: run succeeded but instance {iid} has reimages {r['reimages']}")
            op_end = r["reimages"][-1]["end"]
            ready_after = rec.ready(iid, op_end) or any(
                e is not None and op_end <= e <= end and rec.ready(iid, e) for _, e in r["not_ready"])
            assert ready_after, f"invariant 4: instance {iid} never ready after its reimage"
    else:
        assert not benign(case), f"invariant 4: a run with only recoverable faults {result}: {report['message']}"
        assert result in ("failed",), f"invariant 4: unexpected result {result}: {report['message']}"
        failure = report.get("failure") or {}
        assert failure.get("message"), f"invariant 4: failed run without a failure: {report['message']}"
        named = failure.get("instanceId")
        assert named is None or named in h["instances"], f"invariant 4: failure names unknown {named}"
    timeout = int(case.setting("timeout_minutes", "30")) * 60
    poll = int(case.setting("poll_interval_seconds", "10"))
    retry = max(case.scenario.get("faults", {}).get("retry_after_seconds", 1),
                60 if case.scenario.get("compute_limits") == "azure" else 0) * 8 + 10
    bound = (len(specs) + rec.event_adds + 4) * (timeout + 2 * poll + retry)
    assert end - h["start"] <= bound, f"invariant 4: the run took {end - h['start']:.0f}s > {bound}s"

    # 5. On success the capacity is back (give or take what others added or removed); on a
    #    failure the report says where the run left it.
    initial = len(specs)
    removed = sum(1 for i in rec.deleted_by_event if i not in surge_created  # theirs, not ours
                  and (h["instances"][i]["deleted"] is not None or rec.deleting(i, end)))
    if result == "succeeded":
        live_surge = [i for i in surge_created if h["instances"][i]["deleted"] is None]
        assert raced or not live_surge, f"invariant 5: surge instances {live_surge} left after success"
        assert raced or rec.capacity_now == initial + rec.event_adds - removed, (
            f"invariant 5: capacity {rec.capacity_now} after success, started at {initial} "
            f"(+{rec.event_adds} added, -{removed} removed by others)")
    else:
        cap = report["capacity"]
        if cap["after"] != cap["before"]:
            assert any("capacity" in w for w in report["warnings"]), (
                f"invariant 5: capacity left at {cap['after']} (from {cap['before']}) without a warning")
        if not rec.deleted_by_event and not rec.event_adds and cap["after"] is not None:
            assert rec.capacity_now == cap["after"], (
                f"invariant 5: report says capacity {cap['after']}, the set has {rec.capacity_now}")
    return rec


def benign(case: Case) -> bool:
    """Only faults the run must ride out (429s, a 409 on a first reimage, instances removed or
    added by others, stopped and protected instances), with every instance fast enough for the
    timeout: such a run must succeed."""
    s = case.scenario
    if s.get("faults", {}).get("server_error_rate"):
        return False
    timeout = int(case.setting("timeout_minutes", "30")) * 60
    if case.gate_closed and sum(b - a for a, b in case.gate_closed) * 3 > timeout:
        return False  # refused long enough to fail the run, or to leave it no time
    if case.commands and (case.commands["fail"] or 2 * case.commands["seconds"] * 3 > timeout):
        return False
    if any("health" in e for e in s.get("events", [])):
        return False
    for spec in s["instances"]:
        if spec.get("on_reimage", "ok") not in ("ok", "preempted") \
                or spec.get("health", "healthy") != "healthy" or "timings" in spec:
            return False
    # One preemption is ridden out (asked once more); a second one fails the instance.
    preempts = Counter([str(e["preempt_operation"]) for e in s.get("events", []) if "preempt_operation" in e]
                       + [str(i["id"]) for i in s["instances"] if i.get("on_reimage") == "preempted"])
    if any(n > 1 for n in preempts.values()):
        return False
    t = s["timings"]
    faults = s.get("faults", {})
    throttled = faults.get("throttle_reads_every") or faults.get("throttle_writes_every")
    # Compute's token buckets refill every minute: a 429 from one waits at most 60 s.
    buckets = 8 * 60 if s.get("compute_limits") == "azure" else 0
    # A fresh health is seen once it is reported and the stale one is no longer shown.
    seen_healthy = max(t["health_seconds"], t.get("stale_health_seconds", 0))
    slowest = (max(t["reimage_seconds"] + t["boot_seconds"] + seen_healthy, t["create_seconds"])
               + int(case.setting("min_ready_seconds", "0"))
               + 3 * int(case.setting("poll_interval_seconds", "10"))
               + (8 * faults.get("retry_after_seconds", 1) if throttled else 0) + buckets)
    return slowest * 2 < int(case.setting("timeout_minutes", "30")) * 60
