"""When an instance is ready, as the original script scored it.

Score bits over the instance view: `ProvisioningState/succeeded` = 1, `PowerState/running` = 2,
`HealthState/healthy` = 4. Health source `extension`: ready at 7; `none`: ready when bits 1 and 2
are set (the health bit is ignored). `HealthState/initializing` means the verdict is not in yet
(wait); `unknown` and `unhealthy` mean not ready. After a reimage, a health counts only when it
was reported after the reimage ended (`ready_after_reimage`).
"""

from __future__ import annotations

from enum import Enum

from .compute import HEALTH_EXTENSION_TYPES, Instance, ScaleSet
from .settings import HealthSource

PROVISIONED, RUNNING, HEALTHY = 1, 2, 4


class Readiness(str, Enum):
    READY = "ready"
    WAIT = "initializing"  # the health probe has not decided yet
    NOT_READY = "not ready"


def score(instance: Instance) -> int:
    return ((PROVISIONED if instance.provisioning == "succeeded" else 0)
            | (RUNNING if instance.power == "running" else 0)
            | (HEALTHY if instance.health == "healthy" else 0))


def readiness(instance: Instance, source: HealthSource) -> Readiness:
    """`source` is the resolved one (`extension` or `none`), never `auto`. An instance whose
    list left vmHealth out is judged as with `none`: there is no health to wait for."""
    s = score(instance)
    if source is HealthSource.NONE or not instance.health_listed:
        return Readiness.READY if s & 3 == 3 else Readiness.NOT_READY
    if s == 7:
        return Readiness.READY
    if s == 3 and instance.health == "initializing":
        return Readiness.WAIT
    return Readiness.NOT_READY


def is_ready(instance: Instance, source: HealthSource) -> bool:
    """`readiness(...) is READY`, spelled out: the rules ask it of every instance on every list."""
    return (instance.provisioning == "succeeded" and instance.power == "running"
            and (not _health_counts(instance, source) or instance.health == "healthy"))


def _health_counts(instance: Instance, source: HealthSource) -> bool:
    return source is not HealthSource.NONE and instance.health_listed


def ready_after_reimage(instance: Instance, source: HealthSource) -> bool:
    """`is_ready` for an instance whose reimage has ended: where its health counts, it must
    also have been reported since (`health_is_fresh`)."""
    return is_ready(instance, source) and (not _health_counts(instance, source)
                                           or health_is_fresh(instance))


def health_is_fresh(instance: Instance) -> bool:
    """Whether vmHealth was reported at or after the instance's provisioning last succeeded,
    which for an instance just reimaged is when its reimage ended: Azure may go on showing the
    old health, with its old time, for a while after. Both times are Azure's, from the same
    instance view, so no clock of this machine takes part: a local time (such as when the
    engine first saw the operation succeed) would be off by any clock skew, and late by up to
    a poll, long enough to call a health reported meanwhile stale for good. Azure sends both
    times; without one there is nothing to compare, and the health is taken as it is."""
    if instance.health_time is None or instance.provisioning_time is None:
        return True
    return instance.health_time >= instance.provisioning_time


def states(instance: Instance) -> dict:
    """The three states a user reads in messages and the report."""
    return {"provisioning": instance.provisioning or None, "power": instance.power or None,
            "health": instance.health}


def describe(instance: Instance) -> str:
    """`provisioning succeeded, power running, health unhealthy` for one-line messages."""
    st = states(instance)
    return ", ".join(f"{k} {v if v is not None else 'none'}" for k, v in st.items())


class HealthSourceRefused(Exception):
    """Preflight refusal: the set has no Application Health extension for this health source."""


def resolve_source(source: HealthSource, scale_set: ScaleSet) -> HealthSource:
    """`auto` -> `extension` when the model has an Application Health extension; refuses
    (`extension` or `auto` without one) naming the missing extension and the `none` escape."""
    if source is HealthSource.NONE:
        return source
    if scale_set.health_extension:
        return HealthSource.EXTENSION
    names = " or ".join(HEALTH_EXTENSION_TYPES)
    raise HealthSourceRefused(
        f"scale set {scale_set.name} has no Application Health extension ({names}) in its model, "
        f"so health-source: {source.value} cannot tell when an instance is healthy; add the "
        f"extension, or set health-source: none to count an instance ready when it is "
        f"provisioned and running")
