"""Run reports to render, typed as the engine builds them, for the front ends' tests."""

from __future__ import annotations

from datetime import datetime

from cycle_vmss.compute import RequestCounts
from cycle_vmss.report import Capacity, InstanceRow, Report

HEALTHY = {"provisioning": "succeeded", "power": "running", "health": "healthy"}


def at(stamp: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time (`2026-01-01T00:00:10Z`)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def make_row(i: int, action: str = "reimaged", **fields) -> InstanceRow:
    """Instance `i` of scale set `vmss`, reimaged from 00:00:10 to 00:03:10 and ready at 00:04:00
    unless `fields` say otherwise."""
    values = dict(id=str(i), name=f"vmss_{i}", zone=str(i % 3 + 1), fault_domain=0, action=action,
                  reimage_start=at("2026-01-01T00:00:10Z"), reimage_end=at("2026-01-01T00:03:10Z"),
                  ready_time=at("2026-01-01T00:04:00Z"), reimage_seconds=180.0,
                  out_of_service_seconds=230.0, last_states=HEALTHY)
    values.update(fields)
    return InstanceRow(**values)


def make_report(rows: list[InstanceRow], result: str = "succeeded", **fields) -> Report:
    """A 20-minute run over `vmss` in `rg` with `rows`, unless `fields` say otherwise."""
    values = dict(result=result, message=f"the run {result}", resource_group="rg", scale_set="vmss",
                  start_time=at("2026-01-01T00:00:00Z"), end_time=at("2026-01-01T00:20:00Z"),
                  duration_seconds=1200.4, subscription_id="sub", orchestration_mode="Uniform",
                  settings={"resourceGroupName": "rg", "scaleSetName": "vmss", "maxUnavailable": "1",
                            "instanceIds": None, "dryRun": False},
                  capacity=Capacity(3, 4, 3), requests=RequestCounts(40, 6, 1), instances=tuple(rows))
    values.update(fields)
    return Report(**values)
