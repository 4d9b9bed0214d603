"""`python -m bench`: every case, a Markdown table on stdout, `bench-results.json`.

Each case object in the JSON carries its inputs (seed, the durations and their summary, the
order the engine started instances in) and every figure, so the ratios can be recomputed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from cycle_vmss import __version__
from cycle_vmss.budget import resolve_budget
from cycle_vmss.settings import Budget, parse_budget
from cycle_vmss.simulator.faults import _POLICIES
from . import cases, model

SEED = 20260101
SIZES = (10, 100, 1000)
BUDGETS = ("1", "10%", "20%")
POLL = 10
SCRIPT_POLL = 15.0
# Simulating the script's policy costs ~N^2 * 33 instance-view GETs; above this the closed form
# (model.script_analytic, checked against the simulation at the smaller sizes) is used.
SCRIPT_SIMULATE_MAX_N = 100
# The batch baseline lists the whole set every poll, N instances each time; above this many
# instance observations it is computed in closed form (model.batch_analytic, checked against
# the simulation at the sizes where both run). The engine is always run: every case, N = 1000
# at k = 1 included.
BATCH_SIMULATE_MAX_OBSERVATIONS = 1_000_000

TARGET_RATIO = 1.02
TARGET_SPEEDUP = 0.15
TARGET_READS_FACTOR = 50
TARGET_WALL_N1000 = 10.0
TARGET_BENCH_WALL = 300.0  # `make bench`, every case, in under 5 minutes
TARGET_READS_N1000 = 6000  # N = 1000 at 10%: from 47,720 when every in-flight operation was polled
# The fleet: this many sets of this many instances in one subscription, rolled out at once
# (set j's durations from seed SEED + j, so set 0 is the N=100 case's), with Compute's token
# buckets and without them.
FLEET_SETS = 10
FLEET_INSTANCES = 100
FLEET_BUDGET = "10%"
FLEET_LIMITS = ("azure", "none")
# One large set under the same limits: a list of many pages meets the set's own read budget.
LARGE_SET_INSTANCES = 1000


def resolve_k(n: int, max_unavailable: str) -> int:
    """How many instances the engine may have out at once, resolved by its own budget code:
    the in-flight cap, no more than R_min leaves room for (N0 = 2 at 100% still keeps one)."""
    budget = resolve_budget(n, parse_budget(max_unavailable) or Budget(1), Budget(0), ignore_availability=False)
    return max(1, min(budget.max_in_flight, budget.n0 + budget.surge - budget.r_min))


def _r(x: float | None, nd: int = 3):
    return None if x is None else round(x, nd)


_script_cache: dict[tuple, cases.PolicyRun] = {}


def _script(durations: model.Durations, order: list[str]) -> cases.PolicyRun:
    """The script's policy ignores the budget, and its makespan and reads are sums over the
    instances (order does not change them): one simulation per set of durations."""
    key = (durations.seed, len(durations.reimage))
    if key not in _script_cache:
        _script_cache[key] = cases.run_script(durations, order)
    return _script_cache[key]


def run_case(n: int, max_unavailable: str, *, seed: int, poll: int, log=print) -> dict:
    durations = model.draw_durations(n, seed)
    k = resolve_k(n, max_unavailable)
    engine = cases.run_engine(durations, max_unavailable, poll)
    if len(engine.order) == n:
        order, order_source = engine.order, "the engine's start order in this run"
    else:
        order, order_source = cases.planned_order(durations, max_unavailable, poll), "the engine's planned order (dry run)"
    d = durations.in_order(order)
    reimage = [durations.reimage[i] for i in order]
    lb = model.lower_bound(d, k)
    ideal = model.ideal_makespan(d, k)

    batch_fig = model.batch_analytic(reimage, d, k, n, cases.PAGE_SIZE, poll)
    batch_cost = n * batch_fig.makespan / poll
    batch = cases.run_batch(durations, order, k, poll) if batch_cost <= BATCH_SIMULATE_MAX_OBSERVATIONS else cases.analytic_as_run(batch_fig)
    script_fig = model.script_analytic(d, n, SCRIPT_POLL)
    script = _script(durations, order) if n <= SCRIPT_SIMULATE_MAX_N else cases.analytic_as_run(script_fig)

    out = {
        "kind": "virtual",
        "n": n, "maxUnavailable": max_unavailable, "k": k, "pollIntervalSeconds": poll,
        "seed": seed, "pageSize": cases.PAGE_SIZE,
        "durations": {**durations.summary(),
                      "reimageSeconds": [durations.reimage[i] for i in durations.reimage],
                      "healthSeconds": [durations.health[i] for i in durations.reimage]},
        "order": order, "orderSource": order_source,
        "lowerBoundSeconds": _r(lb), "idealSeconds": _r(ideal),
        "engine": None, "makespanOverIdeal": None, "makespanOverLowerBound": None,
        "batch": {"how": batch.how, "makespanSeconds": _r(batch.makespan), **batch.requests.as_json(),
                  "wallSeconds": _r(batch.wall),
                  "analyticMakespanSeconds": _r(batch_fig.makespan), "analyticReads": batch_fig.reads},
        "speedupOverBatch": None,
        "idealSpeedupOverBatch": _r((batch.makespan - ideal) / batch.makespan, 4),
        "script": {"how": script.how, "pollSeconds": SCRIPT_POLL, "makespanSeconds": _r(script.makespan),
                   **script.requests.as_json(), "wallSeconds": _r(script.wall),
                   "analyticMakespanSeconds": _r(script_fig.makespan), "analyticReads": script_fig.reads},
        "scriptReadsOverEngineReads": None,
    }
    out["engine"] = {
        "result": engine.result, "message": engine.message,
        "makespanSeconds": _r(engine.makespan), "reportDurationSeconds": _r(engine.duration),
        **engine.requests.as_json(), "reportRequests": engine.report_requests,
        "economy": engine.economy.as_json(),
        "wallSeconds": _r(engine.wall), "decideCalls": engine.decide_calls,
        "decideMeanMs": _r(1000 * engine.decide_seconds / engine.decide_calls if engine.decide_calls else None, 4),
        "maxNotReady": engine.max_not_ready,
        "simulatedOutOfServiceMaxErrorSeconds": _r(engine.oos_max_error, 6),
    }
    out["makespanOverIdeal"] = _r(engine.makespan / ideal, 4)
    out["makespanOverLowerBound"] = _r(engine.makespan / lb, 4)
    # (batch - engine) / batch: the share of the batch policy's time the engine saves
    out["speedupOverBatch"] = _r((batch.makespan - engine.makespan) / batch.makespan, 4)
    out["scriptReadsOverEngineReads"] = _r(script.requests.reads / engine.requests.reads, 2) if engine.requests.reads else None
    log(f"  N={n:<5} max-unavailable={max_unavailable:<4} k={k:<4} engine {engine.makespan:,.0f} s "
        f"(ideal {ideal:,.0f} s, x{engine.makespan / ideal:.4f}) in {engine.wall:.2f} s wall; "
        f"batch {batch.makespan:,.0f} s ({batch.how}); script {script.makespan:,.0f} s ({script.how})", file=sys.stderr)
    return out


def run_https_case(instances: int, reimage_seconds: float, max_unavailable: str, poll: int) -> dict:
    run = cases.run_https(instances, reimage_seconds, max_unavailable, poll, resolve_k(instances, max_unavailable))
    return {
        "kind": "https", "n": run.instances, "maxUnavailable": run.max_unavailable, "k": run.k,
        "pollIntervalSeconds": run.poll,
        "durations": {"count": run.instances, "model": f"every instance: reimage {run.reimage_seconds} s, "
                      f"boot 0 s, health 0 s", "outOfServiceSeconds": run.reimage_seconds},
        "order": run.order,
        "idealSeconds": _r(run.ideal), "lowerBoundSeconds": _r(model.lower_bound([run.reimage_seconds] * run.instances, run.k)),
        "engine": {"result": run.result, "message": run.message, "wallSeconds": _r(run.wall),
                   "makespanSeconds": _r(run.makespan), **run.requests.as_json(),
                   "reportRequests": run.report_requests, "economy": run.economy.as_json()},
        "wallOverIdeal": _r(run.wall / run.ideal, 4),
        "makespanOverIdeal": _r(run.makespan / run.ideal, 4),
    }


def _fleet_run(run: cases.FleetRun) -> dict:
    sets = [{"scaleSet": r.scale_set, "seed": r.seed, "result": r.result, "message": r.message,
             "makespanSeconds": _r(r.makespan), **r.requests.as_json(),
             "throttledByBucket": r.throttled_by, "reportRequests": r.report_requests}
            for r in run.sets]
    by_bucket: dict[str, int] = {}
    for r in run.sets:
        for bucket, count in r.throttled_by.items():
            by_bucket[bucket] = by_bucket.get(bucket, 0) + count
    return {"computeLimits": run.compute_limits, "wallSeconds": _r(run.wall),
            "makespanSeconds": _r(run.makespan),
            "reads": sum(r.requests.reads for r in run.sets),
            "writes": sum(r.requests.writes for r in run.sets),
            "throttled": sum(r.requests.throttled for r in run.sets),
            "throttledByBucket": dict(sorted(by_bucket.items())),
            "lowestSubscriptionTokens": run.lowest_subscription_tokens,
            "succeeded": sum(r.result == "succeeded" for r in run.sets), "sets": sets}


def run_fleet_case(sets: int, n: int, max_unavailable: str, *, seed: int, poll: int,
                   log=print) -> dict:
    durations = [model.draw_durations(n, seed + j) for j in range(sets)]
    runs = {}
    for limits in FLEET_LIMITS:
        runs[limits] = _fleet_run(cases.run_fleet(durations, max_unavailable, poll, limits))
        log(f"  fleet: {_sets(sets)} x {n}, max-unavailable {max_unavailable}, compute_limits "
            f"{limits}: makespan {runs[limits]['makespanSeconds']:,.0f} s, "
            f"{runs[limits]['reads']:,} reads, {runs[limits]['writes']:,} writes, "
            f"{runs[limits]['throttled']:,} throttled in {runs[limits]['wallSeconds']:.1f} s wall",
            file=sys.stderr)
    limited, free = runs["azure"], runs["none"]
    return {
        "kind": "fleet", "sets": sets, "n": n, "maxUnavailable": max_unavailable,
        "k": resolve_k(n, max_unavailable), "pollIntervalSeconds": poll,
        "seeds": [d.seed for d in durations], "pageSize": cases.PAGE_SIZE,
        "durations": [d.summary() for d in durations],
        "limited": limited, "unlimited": free,
        # limited makespan / unlimited makespan: what sharing the subscription's budgets costs
        "makespanPenalty": _r(limited["makespanSeconds"] / free["makespanSeconds"], 4),
        "makespanPenaltyBySet": {a["scaleSet"]: _r(a["makespanSeconds"] / b["makespanSeconds"], 4)
                                 for a, b in zip(limited["sets"], free["sets"])},
    }


def _sets(count: int) -> str:
    return f"{count} set{'' if count == 1 else 's'}"


def _buckets(by_bucket: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in by_bucket.items()) or "—"


def render_fleet(c: dict) -> list[str]:
    limited, free = c["limited"], c["unlimited"]
    rows = ["", f"| fleet: {_sets(c['sets'])} x {c['n']} in one subscription, max-unavailable "
            f"{c['maxUnavailable']} (k {c['k']}), at once | result | makespan s, no limits | "
            "makespan s, Compute limits | penalty | reads | writes | 429s | 429s by bucket |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for a, b in zip(limited["sets"], free["sets"]):
        rows.append(f"| {a['scaleSet']} (seed {a['seed']}) | {a['result']} | "
                    f"{_fmt_s(b['makespanSeconds'])} | {_fmt_s(a['makespanSeconds'])} | "
                    f"{c['makespanPenaltyBySet'][a['scaleSet']]:.4f} | {a['reads']:,} | "
                    f"{a['writes']:,} | {a['throttled']:,} | {_buckets(a['throttledByBucket'])} |")
    rows.append(f"| all {_sets(c['sets'])} | {limited['succeeded']}/{c['sets']} succeeded | "
                f"{_fmt_s(free['makespanSeconds'])} | {_fmt_s(limited['makespanSeconds'])} | "
                f"{c['makespanPenalty']:.4f} | {limited['reads']:,} | {limited['writes']:,} | "
                f"{limited['throttled']:,} | {_buckets(limited['throttledByBucket'])} |")
    if limited["lowestSubscriptionTokens"]:
        rows.append("\nThe subscription's buckets at their lowest (tokens left; Compute's "
                    "capacities in docs/simulator.md): " + ", ".join(
                        f"{name} {tokens:,}" for name, tokens in limited["lowestSubscriptionTokens"].items())
                    + ".")
    rows.append(f"\nWithout limits: {free['reads']:,} reads, {free['writes']:,} writes, "
                f"{free['throttled']:,} 429s, {free['succeeded']}/{c['sets']} succeeded; wall "
                f"{limited['wallSeconds']:.1f} s with limits, {free['wallSeconds']:.1f} s without.")
    return rows


def _fmt_s(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def render_table(results: list[dict]) -> str:
    rows = [
        "| N | max-unavail. | k | makespan s | LB s | ideal s | makespan/ideal | batch s | faster than batch "
        "| script s | script reads | engine reads | writes | max reads/3 min | wall s | decide ms/pass |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results:
        if c["kind"] != "virtual":
            continue
        e, b, s = c["engine"], c["batch"], c["script"]
        mark = lambda how: "" if how == "simulated" else " ^a"  # noqa: E731
        common = (f"{_fmt_s(c['lowerBoundSeconds'])} | {_fmt_s(c['idealSeconds'])} | ")
        theirs = (f"{_fmt_s(b['makespanSeconds'])}{mark(b['how'])} | ")
        script = f"{_fmt_s(s['makespanSeconds'])}{mark(s['how'])} | {s['reads']:,}{mark(s['how'])} | "
        rows.append(
            f"| {c['n']} | {c['maxUnavailable']} | {c['k']} | {_fmt_s(e['makespanSeconds'])} | {common}"
            f"{c['makespanOverIdeal']:.4f} | {theirs}{100 * c['speedupOverBatch']:.1f}% | {script}"
            f"{e['reads']:,} | {e['writes']:,} | {e['maxReadsIn3Min']:,} | {e['wallSeconds']:.2f} | "
            f"{'—' if e['decideMeanMs'] is None else format(e['decideMeanMs'], '.2f')} |")
    https = [c for c in results if c["kind"] == "https"]
    if https:
        rows += ["", "| over HTTPS (real time) | k | poll s | ideal s | wall s | wall/ideal | makespan s "
                 "| makespan/ideal | ARM reads | ARM writes | result |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in https:
            e = c["engine"]
            rows.append(
                f"| {c['n']} instances, {c['durations']['outOfServiceSeconds']:g} s reimage, "
                f"max-unavailable {c['maxUnavailable']} | {c['k']} | {c['pollIntervalSeconds']} | "
                f"{c['idealSeconds']:.1f} | {e['wallSeconds']:.1f} | {c['wallOverIdeal']:.2f} | "
                f"{e['makespanSeconds']:.1f} | {c['makespanOverIdeal']:.2f} | {e['reads']} | {e['writes']} | {e['result']} |")
    for c in results:
        if c["kind"] == "fleet":
            rows += render_fleet(c)
    if any(c.get("batch", {}).get("how") == "analytic" or c.get("script", {}).get("how") == "analytic"
           for c in results):
        rows += ["", "^a computed in closed form from the policy (`bench/model.py`), not "
                 "simulated: simulating it would cost minutes of wall time; the closed form matches "
                 "the simulation exactly at the sizes where both run (see bench-results.json)."]
    return "\n".join(rows)


def evaluate_targets(results: list[dict]) -> list[dict]:
    virtual = [c for c in results if c["kind"] == "virtual"]
    out = []

    def target(name: str, cases_: list[dict], ok, figure) -> None:
        if not cases_:
            return
        failing = [f"N={c['n']} {c['maxUnavailable']}: {figure(c)}" for c in cases_ if not ok(c)]
        out.append({"target": name, "met": not failing,
                    "measured": [f"N={c['n']} {c['maxUnavailable']}: {figure(c)}" for c in cases_],
                    "misses": failing})

    target(f"makespan/ideal <= {TARGET_RATIO}", virtual,
           lambda c: c["makespanOverIdeal"] <= TARGET_RATIO, lambda c: f"{c['makespanOverIdeal']:.4f}")
    target(f"at k >= 10, at least {TARGET_SPEEDUP:.0%} faster than the batch policy",
           [c for c in virtual if c["k"] >= 10],
           lambda c: c["speedupOverBatch"] >= TARGET_SPEEDUP, lambda c: f"{100 * c['speedupOverBatch']:.1f}%")
    target("reads: at most one list (its pages) per poll plus in-flight operation polls, no per-instance views",
           virtual + [c for c in results if c["kind"] == "https"],
           lambda c: c["engine"]["economy"]["ok"],
           lambda c: (f"{c['engine']['economy']['passes']} lists x {c['engine']['economy']['pagesPerList']} pages "
                      f"+ {c['engine']['economy']['operationPolls']} operation polls"
                      + ("" if c['engine']['economy'].get('statusOnlyPasses') is None else
                         f" ({c['engine']['economy']['statusOnlyPasses']} polls without a list)")
                      + "; "
                      f"{c['engine']['economy']['operationPollsAfterSeenFinished']} polls after an operation was seen "
                      f"finished, {c['engine']['economy']['operationPollsOverCadence']} over cadence, "
                      f"{c['engine']['economy']['perInstanceReadsInLoop']} per-instance reads"))
    target(f"N = 100: at least {TARGET_READS_FACTOR}x fewer reads than the script",
           [c for c in virtual if c["n"] == 100],
           lambda c: (c["scriptReadsOverEngineReads"] or 0) >= TARGET_READS_FACTOR,
           lambda c: f"{c['scriptReadsOverEngineReads']}x")
    target(f"N = 1000 at 10%: at most {TARGET_READS_N1000:,} reads in all",
           [c for c in virtual if c["n"] == 1000 and c["maxUnavailable"] == "10%"],
           lambda c: c["engine"]["reads"] <= TARGET_READS_N1000, lambda c: f"{c['engine']['reads']:,}")
    # The list is charged to the scale set's High Cost Get policy (the simulator's reading of
    # Learn's Compute throttling limits); a subscription's bucket holds `capacity` tokens, so
    # reads within it in any 3 minutes are never throttled there, whatever the refill.
    refill, capacity = _POLICIES["list_instances"].subscription
    target(f"busiest 3 minutes within one subscription's High Cost Get budget ({capacity:,} "
           f"tokens, {refill} a minute back)", virtual,
           lambda c: c["engine"]["maxReadsIn3Min"] <= capacity, lambda c: f"{c['engine']['maxReadsIn3Min']:,}")
    target(f"N = 1000 simulation under {TARGET_WALL_N1000:g} s wall", [c for c in virtual if c["n"] == 1000],
           lambda c: c["engine"]["wallSeconds"] < TARGET_WALL_N1000, lambda c: f"{c['engine']['wallSeconds']:.2f} s")
    fleet = [c for c in results if c["kind"] == "fleet"]
    for c in fleet:  # `target` names cases by N and budget; a fleet has its own lines
        limited = c["limited"]
        figure = (f"{_sets(c['sets'])} x {c['n']} {c['maxUnavailable']}: {limited['throttled']} 429s"
                  + (f" ({_buckets(limited['throttledByBucket'])})" if limited["throttled"] else "")
                  + f", {limited['succeeded']}/{c['sets']} succeeded, makespan penalty "
                  f"{c['makespanPenalty']:.4f}")
        met = limited["throttled"] == 0 and limited["succeeded"] == c["sets"]
        out.append({"target": "fleet under Compute's limits: every rollout succeeds, no 429",
                    "met": met, "measured": [figure], "misses": [] if met else [figure]})
    return out


def render_targets(targets: list[dict]) -> str:
    lines = ["", "Targets:"]
    for t in targets:
        lines.append(f"- [{'met' if t['met'] else 'MISSED'}] {t['target']}"
                     + ("" if t["met"] else " — misses: " + "; ".join(t["misses"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(
        "Rollout time against the ideal schedule and Azure request economy, in virtual time "
        "against the simulator's backend, plus one real-time run over HTTPS."))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="instance counts (default %(default)s)")
    parser.add_argument("--max-unavailable", default=",".join(BUDGETS), help="budgets (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--poll-interval-seconds", type=int, default=POLL)
    parser.add_argument("--https-instances", type=int, default=30, help="0 skips the HTTPS case")
    parser.add_argument("--https-reimage-seconds", type=float, default=2.0)
    parser.add_argument("--https-max-unavailable", default="20%")
    parser.add_argument("--https-poll-interval-seconds", type=int, default=1)
    parser.add_argument("--fleet-sets", type=int, default=FLEET_SETS, help="0 skips the fleet case")
    parser.add_argument("--fleet-instances", type=int, default=FLEET_INSTANCES)
    parser.add_argument("--fleet-max-unavailable", default=FLEET_BUDGET)
    parser.add_argument("--large-set-instances", type=int, default=LARGE_SET_INSTANCES,
                        help="one set of this many, with and without limits (0 skips it)")
    parser.add_argument("--output", default="bench-results.json")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    budgets = [b.strip() for b in args.max_unavailable.split(",") if b.strip()]
    results: list[dict] = []
    wall0 = time.perf_counter()
    print(f"cycle-vmss bench: seed {args.seed}, poll {args.poll_interval_seconds} s", file=sys.stderr)
    for n in sizes:
        for mu in budgets:
            results.append(run_case(n, mu, seed=args.seed, poll=args.poll_interval_seconds))
    if args.fleet_sets > 0:
        results.append(run_fleet_case(args.fleet_sets, args.fleet_instances, args.fleet_max_unavailable,
                                      seed=args.seed, poll=args.poll_interval_seconds))
    if args.large_set_instances > 0:
        results.append(run_fleet_case(1, args.large_set_instances, args.fleet_max_unavailable,
                                      seed=args.seed, poll=args.poll_interval_seconds))
    if args.https_instances > 0:
        print(f"  HTTPS: {args.https_instances} instances, reimage {args.https_reimage_seconds:g} s ...", file=sys.stderr)
        results.append(run_https_case(args.https_instances, args.https_reimage_seconds,
                                      args.https_max_unavailable, args.https_poll_interval_seconds))
    bench_wall = round(time.perf_counter() - wall0, 2)
    targets = evaluate_targets(results)
    targets.append({"target": f"the whole bench under {TARGET_BENCH_WALL:g} s of wall time",
                    "met": bench_wall < TARGET_BENCH_WALL, "measured": [f"{bench_wall:.1f} s"],
                    "misses": [] if bench_wall < TARGET_BENCH_WALL else [f"{bench_wall:.1f} s"]})
    document = {
        "tool": "cycle-vmss bench", "version": __version__, "python": platform.python_version(),
        "generatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "benchWallSeconds": bench_wall,
        "definitions": {
            "makespan": "virtual seconds from the engine's start to the last instance it observed done",
            "lowerBound": "max(sum d_i / k, max d_i)",
            "ideal": "list scheduling of d_i, in the engine's start order, on k slots (instant detection)",
            "speedupOverBatch": "(batch makespan - engine makespan) / batch makespan",
            "reads": "ARM GET requests in the simulator's request log (list pages, operation polls, preflight)",
            "maxReadsIn3Min": "most ARM reads in any 180-second window",
            "fleet": "rollouts on several scale sets of one subscription at once, on one virtual "
                     "time; `limited` with compute_limits azure (the sets share the subscription's "
                     "Compute buckets), `unlimited` without; throttledByBucket: 429s by the "
                     "bucket the 429's body names; lowestSubscriptionTokens: the fewest tokens each "
                     "subscription-level bucket was left with",
            "makespanPenalty": "limited makespan / unlimited makespan (fleet: the last set's end)",
        },
        "cases": results, "targets": targets,
    }
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
    print(render_table(results))
    print(render_targets(targets))
    print(f"\nWrote {args.output} ({document['benchWallSeconds']:.1f} s).")
    return 0
