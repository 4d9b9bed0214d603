"""The two baseline policies, driven against the simulator's backend in virtual time.

They are deliberately small drivers of their own, not the engine: what they measure is the
policy, on the same durations and the same order the engine used.

- `run_batch`: fixed batches of k (as Azure's rolling upgrades do): start k reimages, then poll
  like the engine (one paged list per poll plus the status of operations not yet seen finished)
  until the slowest of the batch is seen done; then the next batch.
- `run_script`: the original PowerShell script: one instance at a time, then every 15 s one
  instance-view GET per instance of the set, until every instance is ready; then the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from cycle_vmss.compute import ComputePort, OperationState
from cycle_vmss.health import is_ready
from cycle_vmss.settings import HealthSource
from cycle_vmss.simulator import bodies


@dataclass(frozen=True)
class BaselineRun:
    makespan: float  # virtual seconds from the first call to the last instance seen done
    done_at: dict[str, float]  # instance id -> virtual seconds after the start it was seen done


class BaselineFailed(RuntimeError):
    pass


def run_batch(port: ComputePort, clock, order: list[str], k: int, poll: float = 10.0) -> BaselineRun:
    t0 = clock.now()
    done_at: dict[str, float] = {}
    for b in range(0, len(order), k):
        batch = order[b:b + k]
        ops = {i: port.begin_reimage(i) for i in batch}
        succeeded: set[str] = set()
        while True:
            clock.sleep(poll)
            ready = {i.id for i in port.list_instances() if is_ready(i, HealthSource.EXTENSION)}
            for i in batch:
                if i in succeeded:
                    continue
                status = ops[i].status()
                if status.state is OperationState.SUCCEEDED:
                    succeeded.add(i)
                elif status.finished:
                    raise BaselineFailed(f"reimage of {i} ended {status.state.value}")
            for i in batch:
                if i not in done_at and i in succeeded and i in ready:
                    done_at[i] = clock.now() - t0
            if all(i in done_at for i in batch):
                break
    return BaselineRun(max(done_at.values(), default=0.0), done_at)


def _view_ready(view: dict) -> bool:
    """The script's score over one instance view: provisioning succeeded + running + healthy = 7."""
    codes = {s.get("code", "") for s in view.get("statuses", [])}
    health = ((view.get("vmHealth") or {}).get("status") or {}).get("code")
    return ("ProvisioningState/succeeded" in codes and "PowerState/running" in codes
            and health == "HealthState/healthy")


def run_script(backend, rg: str, name: str, sub: str, clock, order: list[str], all_ids: list[str],
               poll: float = 15.0, timeout: float = 1800.0) -> BaselineRun:
    """Requests are admitted and recorded in the backend's log with the paths HTTP would use, so
    the same request accounting applies to every policy."""
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"

    def poll_all() -> bool:
        ready = True
        for i in all_ids:
            backend.faults.admit("read")
            view = bodies.instance_view(backend.scenario, backend.get_instance(rg, name, i))
            backend.record_request("GET", f"{base}/virtualMachines/{i}/instanceView", 200)
            ready = _view_ready(view) and ready
        return ready

    t0 = clock.now()
    done_at: dict[str, float] = {}
    if not poll_all():  # the script's initial health gate
        raise BaselineFailed("not every instance was ready at the start")
    for i in order:
        backend.faults.admit("write")
        backend.reimage(rg, name, i)
        backend.record_request("POST", f"{base}/virtualMachines/{i}/reimage", 202)
        started = clock.now()
        while True:
            clock.sleep(poll)
            if poll_all():
                break
            if clock.now() - started > timeout:
                raise BaselineFailed(f"instance {i} not ready within {timeout:.0f} s")
        done_at[i] = clock.now() - t0
    return BaselineRun(max(done_at.values(), default=0.0), done_at)
