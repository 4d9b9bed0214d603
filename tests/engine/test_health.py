"""Readiness: the score bits, ready at 7 (extension) or 3 (none), initializing = wait."""

from __future__ import annotations

import itertools

import pytest

from cycle_vmss.compute import Instance, ScaleSet
from cycle_vmss.health import (
    HealthSourceRefused, Readiness, is_ready, readiness, resolve_source, score,
)
from cycle_vmss.settings import HealthSource

EXT, NONE = HealthSource.EXTENSION, HealthSource.NONE


def vm(provisioning="succeeded", power="running", health="healthy") -> Instance:
    return Instance("0", "vmss_0", provisioning=provisioning, power=power, health=health)


@pytest.mark.parametrize("instance, expected", [
    (vm(), 7),
    (vm(health=None), 3),
    (vm(provisioning="updating"), 6),
    (vm(power="stopped", health=None), 1),
    (vm(provisioning="failed", health="unknown"), 2),
    (vm(provisioning="", power="", health=None), 0),
])
def test_score_bits(instance, expected):
    assert score(instance) == expected


@pytest.mark.parametrize("instance, ext, none", [
    (vm(), Readiness.READY, Readiness.READY),
    (vm(health="initializing"), Readiness.WAIT, Readiness.READY),
    (vm(health="unknown"), Readiness.NOT_READY, Readiness.READY),
    (vm(health="unhealthy"), Readiness.NOT_READY, Readiness.READY),
    (vm(health=None), Readiness.NOT_READY, Readiness.READY),  # no vmHealth reported yet
    (vm(provisioning="updating", health="initializing"), Readiness.NOT_READY, Readiness.NOT_READY),
    (vm(power="starting", health=None), Readiness.NOT_READY, Readiness.NOT_READY),
    (vm(provisioning="failed"), Readiness.NOT_READY, Readiness.NOT_READY),
])
def test_readiness_per_source(instance, ext, none):
    assert readiness(instance, EXT) is ext
    assert readiness(instance, NONE) is none


@pytest.mark.parametrize("source", [EXT, NONE])
def test_is_ready_is_readiness_ready(source):
    for prov, power, health in itertools.product(
            ["succeeded", "updating", "failed", ""], ["running", "stopped", "starting", ""],
            ["healthy", "unhealthy", "initializing", "unknown", None]):
        inst = vm(provisioning=prov, power=power, health=health)
        assert is_ready(inst, source) == (readiness(inst, source) is Readiness.READY), inst


def _set(extension):
    return ScaleSet("/subscriptions/s/resourceGroups/rg/providers/x/vmss", "vmss", "rg", "s",
                    "eastus", "Uniform", 3, health_extension=extension)


def test_auto_uses_the_extension_when_the_model_has_one():
    assert resolve_source(HealthSource.AUTO, _set("ApplicationHealthWindows")) is EXT
    assert resolve_source(HealthSource.NONE, _set(None)) is NONE


@pytest.mark.parametrize("source", [HealthSource.AUTO, HealthSource.EXTENSION])
def test_no_extension_is_refused_naming_it_and_the_escape(source):
    with pytest.raises(HealthSourceRefused) as err:
        resolve_source(source, _set(None))
    message = str(err.value)
    assert "ApplicationHealthLinux" in message and "ApplicationHealthWindows" in message
    assert "health-source: none" in message
