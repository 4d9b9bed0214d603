"""The JSON run report of SPEC section 5 (shape documented in `cycle_vmss.events`)."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone

from .compute import Instance
from .decide import Failure, Status, Track
from .health import states

EXIT_CODES = {"succeeded": 0, "dry-run": 0, "failed": 1, "refused": 2, "cancelled": 130}


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _seconds(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 1)


def instance_row(track: Track, first: Instance) -> dict:
    """One instance of the set as it was at the start, with what the run did to it."""
    last = track.last or first
    error = None
    if track.status is Status.FAILED or (track.error_code and track.status is not Status.DONE):
        error = {"code": track.error_code, "message": track.error_message}
    return {
        "id": track.id, "name": first.name, "zone": first.zone, "faultDomain": first.fault_domain,
        "action": track.status.value,
        "reason": track.reason,
        "reimageStart": iso(track.started),
        "reimageEnd": iso(track.op_end),
        "readyTime": iso(track.ready_since if track.status is Status.DONE else None),
        "reimageSeconds": _seconds(track.started, track.op_end),
        "outOfServiceSeconds": _seconds(track.started, track.ready_since if track.status is Status.DONE
                                        else None),
        "lastStates": states(last),
        "error": error,
    }


def failure_dict(failure: Failure | None) -> dict | None:
    if failure is None:
        return None
    return {"instanceId": failure.instance_id, "code": failure.code, "message": failure.message,
            "states": failure.states}


def ids_with_action(report: dict, action: str) -> list[str]:
    """Ids of the report's instances with `action` ("reimaged", "failed", "skipped"), for the
    front ends' outputs. Instances outside `instance-ids` are not skips a user needs to see."""
    return [str(row.get("id")) for row in report.get("instances") or []
            if row.get("action") == action and row.get("reason") != "out of scope"]


def write_report(report: dict, path: str) -> None:
    """Write atomically: a reader never sees half a report, even if the run is killed."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cycle-vmss-report-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def exit_code(report: dict) -> int:
    return EXIT_CODES.get(report.get("result", ""), 1)

