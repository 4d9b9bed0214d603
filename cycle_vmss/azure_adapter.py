"""The ComputePort over the real Azure SDK: the only module that calls Azure.

Everything Azure-specific stays here: the SDK's paging for the instance list, its long-running
operation pollers (each advances in its own thread, honouring Retry-After; a reimage's is asked
one turn at a time instead, since the engine's list follows it: `AskedOperation`), azure-core's
retry policy for 429 and 5xx (bounded: a long Retry-After comes back as `Throttled`, for the
engine to wait out), and the translation of SDK errors into `cycle_vmss.compute` errors.
A per-retry pipeline policy counts every real HTTP request, retries and operation polls
included, so the report's request counts are what Azure actually saw; it also keeps what Azure
said is left of its read and write budgets. The SDK's models map to the engine's observations
in module-level functions, which the simulator's in-process port reuses on the bodies the
simulator would send.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ServiceRequestError,
    AzureError as SdkAzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy, RetryPolicy
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.compute.models import (
    OrchestrationServiceStateInput,
    Sku,
    VirtualMachineScaleSetUpdate,
    VirtualMachineScaleSetVMInstanceRequiredIDs,
)

from cycle_vmss.compute import (
    HEALTH_EXTENSION_TYPES,
    AuthenticationFailed,
    AzureError,
    ComputePort,
    Conflict,
    Forbidden,
    Instance,
    Locked,
    NotFound,
    Operation,
    OperationState,
    OperationStatus,
    PartialList,
    RequestCounts,
    ScaleSet,
    Throttled,
    preempted,
)
from cycle_vmss.credentials import PUBLIC_ARM_ENDPOINT, credential_scope

_READ_METHODS = ("GET", "HEAD")
T = TypeVar("T")

# azure-core's defaults sleep a whole Retry-After (Azure sends 60 to 1200 s), up to three times,
# inside one SDK call, deaf to cancel and to the run's timeouts. So an answer (429, 5xx) is
# retried at most SDK_RETRIES times, a lost connection at most SDK_CONNECT_RETRIES times (a
# network blip of a few seconds is ridden out), each wait (Retry-After or backoff) at most
# SDK_WAIT_MAX: no SDK call sleeps more than 5 s in all, and a longer Retry-After is the
# engine's to wait.
SDK_RETRIES = 2
SDK_CONNECT_RETRIES = 3
SDK_WAIT_MAX = 1.0
# A 429 without Retry-After: "users can successfully invoke API calls 1 min after getting
# throttled" (Microsoft Learn, Compute throttling limits).
DEFAULT_RETRY_AFTER = 60.0
# Gauges in x-ms-ratelimit-remaining-resource that are not a request budget: Azure shows the
# scale set's queue at 0 on answers that throttle nothing (azure-recordings,
# vmss_vm_reimage_post_202_headers.json).
_NOT_BUDGETS = ("VmssQueuedVMOperations",)


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds a 429's Retry-After asks for (delta-seconds or an HTTP date)."""
    value = headers.get("Retry-After")
    if value is None:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def budget_left(header: str | None) -> int | None:
    """The fewest requests left in the budgets of an x-ms-ratelimit-remaining-resource value
    (`Microsoft.Compute/<bucket>;<count>,...`); None when it names none."""
    counts = []
    for part in (header or "").split(","):
        name, _, count = part.strip().rpartition(";")
        if name and not name.endswith(_NOT_BUDGETS) and count.isdigit():
            counts.append(int(count))
    return min(counts, default=None)


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's retry policy with every wait bounded. Its knobs bound the backoff
    (`retry_backoff_max`) but not a Retry-After, which it sleeps whole: so a response whose
    Retry-After is longer than SDK_WAIT_MAX is not retried here; it goes back to the caller
    (a `Throttled` error, or a status poll that `_PatientPolling` asks again later)."""

    def __init__(self) -> None:
        super().__init__(retry_total=SDK_RETRIES + SDK_CONNECT_RETRIES,
                         retry_connect=SDK_CONNECT_RETRIES, retry_read=SDK_CONNECT_RETRIES,
                         retry_status=SDK_RETRIES, retry_backoff_max=SDK_WAIT_MAX)

    def is_retry(self, settings: dict, response: PipelineResponse) -> bool:
        wait = self.get_retry_after(response)
        if wait is not None and wait > SDK_WAIT_MAX:
            return False
        return super().is_retry(settings, response)


class RequestCounter(HTTPPolicy):
    """Counts each HTTP attempt (placed after the retry policy, so retries count too), and
    keeps what the answers to the last accepted write and the last read said is left of
    Azure's budgets for them."""

    def __init__(self, counts: RequestCounts) -> None:
        super().__init__()
        self.counts = counts
        self.writes_left: int | None = None
        self.reads_left: int | None = None
        self._lock = threading.Lock()  # pollers run in their own threads

    def send(self, request: PipelineRequest) -> PipelineResponse:
        is_read = request.http_request.method.upper() in _READ_METHODS
        with self._lock:
            if is_read:
                self.counts.reads += 1
            else:
                self.counts.writes += 1
        response = self.next.send(request)
        status = response.http_response.status_code
        if status == 429:
            with self._lock:
                self.counts.throttled += 1
        elif status < 400:
            left = budget_left(response.http_response.headers.get("x-ms-ratelimit-remaining-resource"))
            if is_read:
                self.reads_left = left
            else:
                self.writes_left = left
        return response


def throttled_poll(asked: float, left: float) -> Throttled:
    """What `Operation.status()` raises while its status poll waits out a Retry-After of
    `asked` seconds, `left` of them still to go."""
    return Throttled(f"Azure throttled the status poll (Retry-After {asked:.0f} s)",
                     code="TooManyRequests", retry_after=left)


class _PatientPolling(ARMPolling):
    """ARMPolling that rides out a throttled status poll: azure-core would end the operation
    as failed on the 429; this asks again once its Retry-After has passed, and meanwhile
    `throttled()` says so. Its waits end when the port closes (the run is over), and the
    poller's thread is a daemon: a poller asleep in a long Retry-After never holds up a cancel
    or the process's exit."""

    def __init__(self, closed: threading.Event, interval: float, endpoint: str) -> None:
        super().__init__(interval, path_format_arguments={"endpoint": endpoint})
        self._closed = closed
        self._quiet: tuple[float, float] | None = None  # (Retry-After, monotonic end) while waiting

    def request_status(self, status_link: str) -> PipelineResponse:
        asked_again = False
        while True:
            response = super().request_status(status_link)
            status = response.http_response.status_code
            if status == 401 and not asked_again and _arm_code(response) == "ExpiredAuthenticationToken":
                asked_again = True  # as `_once_more_if_token_expired` does for other calls
                continue
            if status != 429:
                return response
            delay = retry_after(response.http_response.headers)
            self._quiet = (delay, time.monotonic() + delay)
            try:
                self._sleep(delay)
            finally:
                self._quiet = None

    def throttled(self) -> Throttled | None:
        """While the poll waits out a Retry-After: the error saying so, else None."""
        quiet = self._quiet  # set and cleared by the poller's thread
        if quiet is None:
            return None
        asked, until = quiet
        return throttled_poll(asked, max(until - time.monotonic(), 0.0))

    def _sleep(self, delay: float) -> None:
        if self._closed.wait(delay):
            raise SdkAzureError("stopped following the operation: the run is over")


class _Paused(Exception):
    """Raised where azure-core's polling loop would sleep: `_AskedPolling.ask` stops there."""


class _AskedPolling(ARMPolling):
    """ARMPolling that reads the status only when asked, in the asker's thread. The LROPoller's
    own thread ends at once (`run` does nothing); each `ask()` is one turn of azure-core's loop
    (`ARMPolling.run`): one status GET, and once the operation has ended, azure-core's own end
    (the final GET, or its HttpResponseError for a failed or canceled operation). A 429 is
    raised as `Throttled` instead of slept through; an expired token is asked once more."""

    def __init__(self, interval: float, endpoint: str) -> None:
        super().__init__(interval, path_format_arguments={"endpoint": endpoint})

    def run(self) -> None:
        """Nothing: the engine asks (`ask`) when the list cannot tell how the operation stands."""

    def ask(self) -> None:
        try:
            super().run()
        except _Paused:
            pass

    def _delay(self) -> None:
        raise _Paused

    def request_status(self, status_link: str) -> PipelineResponse:
        response = super().request_status(status_link)
        if (response.http_response.status_code == 401
                and _arm_code(response) == "ExpiredAuthenticationToken"):
            response = super().request_status(status_link)
        if response.http_response.status_code == 429:
            delay = retry_after(response.http_response.headers)
            raise throttled_poll(delay, delay)
        return response


def _ended(err: HttpResponseError, lro_status: str) -> OperationStatus:
    """The status of an operation azure-core's poller ended with `err`."""
    code, message = _error_parts(err)
    state = OperationState.PREEMPTED if preempted(lro_status, code) else OperationState.FAILED
    return OperationStatus(state, code or f"HTTP{err.status_code}", message)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _error_parts(err: SdkAzureError) -> tuple[str | None, str]:
    """ARM's error code and message from an SDK exception, without the SDK's multi-line dump."""
    if isinstance(err, HttpResponseError) and err.error is not None:
        code, message, target = err.error.code, _one_line(err.error.message), err.error.target
        if target and target not in message:  # what Azure found at fault, when it says so
            message = f"{message} (target: {target})"
        if code or message:
            return code, message
    message = getattr(err, "message", None) or str(err)
    # Only the first line: the SDK appends the code, message and response body on later lines.
    return None, _one_line(message.splitlines()[0] if message else "")


def _arm_code(response: PipelineResponse) -> str | None:
    """ARM's error code in a response's body, if it has one."""
    try:
        return response.http_response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _once_more_if_token_expired(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn`, asked once more when ARM answered 401 ExpiredAuthenticationToken. ARM did nothing
    with the request, and azure-identity hands out its cached token until the second it
    expires, so one on its way at that second arrives expired; by now it gives a fresh one."""
    try:
        return fn(*args, **kwargs)
    except ClientAuthenticationError as err:
        if _error_parts(err)[0] != "ExpiredAuthenticationToken":
            raise
    return fn(*args, **kwargs)


# How azure-identity says a source of credentials is simply not there (no CLI, no variables, no
# managed identity), as opposed to one that was there and failed.
_UNAVAILABLE = re.compile(r"unavailable|could not be found|not installed|to be installed|not found|no accounts|"
                          r"az login|azd auth login|connect-azaccount", re.I)


def _token_failure(text: str) -> str:
    """One line from azure-identity's report of a failed token request. A chain lists each
    credential it tried (tab-indented); the last one is the one that stopped it. When none of
    them was even available, naming all eight helps nobody: say how to sign in."""
    tried = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    hint = ("sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
            "AZURE_CLIENT_SECRET (or a federated token file)")
    if tried and all(_UNAVAILABLE.search(line) for line in tried):
        return f"no Azure credentials found here: {hint}, or run where a managed identity is assigned"
    if len(tried) > 1:
        names = ", ".join(line.split(":", 1)[0] for line in tried)
        return f"no Azure sign-in worked (tried {names}; last: {_one_line(tried[-1])}); {hint}"
    reason = tried[0] if tried else (text.splitlines() or [""])[0]
    return f"could not get an Azure token: {_one_line(reason)}; {hint}"


def _network_cause(err: ServiceRequestError) -> str:
    """What urllib3 saw, in a few words a person knows ("connection refused"), not its repr."""
    text = str(err)
    for pattern, cause in ((r"Connection refused", "connection refused"),
                           (r"Name or service not known|nodename nor servname|getaddrinfo failed|"
                            r"Temporary failure in name resolution", "the name did not resolve in DNS"),
                           (r"CERTIFICATE_VERIFY_FAILED|certificate verify failed",
                            "its TLS certificate is not trusted (REQUESTS_CA_BUNDLE)"),
                           (r"timed out", "the connection timed out"),
                           (r"ProxyError|Unable to connect to proxy", "the proxy refused or failed")):
        if re.search(pattern, text):
            return cause
    return _one_line(text.split(": ", 1)[-1])[:120]


def map_error(err: SdkAzureError, arm_endpoint: str = PUBLIC_ARM_ENDPOINT) -> AzureError:
    """An SDK exception as one of our errors. The message is what Azure said, in one line
    ("404 ResourceNotFound: The Resource ... was not found."); callers add which resource.
    A request that never reached Azure says so, with the endpoint and what to check."""
    if isinstance(err, ServiceRequestError):
        return AzureError(f"cannot reach Azure Resource Manager at {arm_endpoint} "
                          f"({_network_cause(err)}): a network problem, not an answer from Azure; "
                          f"check the network, any proxy (HTTPS_PROXY), DNS, and the arm-endpoint "
                          f"setting or AZURE_RESOURCE_MANAGER_ENDPOINT", code="NetworkError")
    code, message = _error_parts(err)
    status = getattr(err, "status_code", None)
    said = " ".join(str(p) for p in (status, code) if p) + (": " if status or code else "") + message
    if isinstance(err, ClientAuthenticationError) and status in (None, 401):
        if status is None:
            return AuthenticationFailed(_token_failure(str(err)), code=code)
        return AuthenticationFailed(said, code=code or "Unauthorized", status=status)
    if status == 403:
        return Forbidden(said, code=code or "AuthorizationFailed", status=status)
    if isinstance(err, HttpResponseError) and status == 429:
        headers = err.response.headers if err.response is not None else {}
        return Throttled(said, code=code or "TooManyRequests", retry_after=retry_after(headers))
    if isinstance(err, ResourceNotFoundError) or status == 404:
        return NotFound(said, code=code or "NotFound", status=404)
    if (isinstance(err, ResourceExistsError) or status == 409) and code == "ScopeLocked":
        return Locked(said, code=code, status=409)  # a resource lock, not a busy resource
    if isinstance(err, ResourceExistsError) or status == 409:
        return Conflict(said, code=code or "Conflict", status=409)
    return AzureError(said, code=code, status=status)


def _status(statuses: list | None, prefix: str) -> tuple[str, float | None]:
    """`ProvisioningState/failed/OSProvisioningTimedOut` -> ("failed", its time) (the error
    code reaches the run through the operation's status)."""
    for status in statuses or []:
        parts = (status.code or "").split("/")
        if parts[0] == prefix and len(parts) > 1:
            return parts[1].lower(), _epoch(status.time)
    return "", None


def _epoch(time: Any) -> float | None:
    return time.timestamp() if time is not None else None


def _view_states(view: Any) -> dict:
    """Provisioning, power and health, with the times Azure gives them, from an instance view
    (either kind of VM)."""
    statuses = view.statuses if view is not None else None
    health, health_time = None, None
    if view is not None and view.vm_health is not None and view.vm_health.status is not None:
        code = view.vm_health.status.code or ""
        health = code.split("/", 1)[1].lower() if "/" in code else code.lower() or None
        health_time = _epoch(view.vm_health.status.time)
    provisioning, provisioning_time = _status(statuses, "ProvisioningState")
    return {"provisioning": provisioning, "provisioning_time": provisioning_time,
            "power": _status(statuses, "PowerState")[0], "health": health,
            "health_time": health_time}


def _observed(props: Any) -> dict:
    """Provisioning, power, health and the OS disk's time from a VM's expanded instance view
    (either kind of VM)."""
    view = props.instance_view if props is not None else None
    observed = _view_states(view)
    if not observed["provisioning"] and props is not None and props.provisioning_state:
        observed["provisioning"] = props.provisioning_state.lower()
    observed["os_disk_time"] = _os_disk_time(props, view)
    return observed


def _os_disk_time(props: Any, view: Any) -> float | None:
    """When the OS disk was provisioned: its instance-view status `ProvisioningState/succeeded`
    time. A reimage gives the instance a new OS disk from the image (a new disk name, as the
    recorded bodies show), so the time moves to the reimage. The OS disk is the one named in
    the storage profile; without one, the first disk listed (Azure lists it first)."""
    disks = (view.disks or []) if view is not None else []
    profile = props.storage_profile if props is not None else None
    name = profile.os_disk.name if profile is not None and profile.os_disk is not None else None
    disk = next((d for d in disks if name and d.name == name), disks[0] if disks else None)
    if disk is None:
        return None
    for status in disk.statuses or []:
        if (status.code or "").lower().startswith("provisioningstate/succeeded"):
            return _epoch(status.time)
    return None


def instance_from_sdk(vm: Any) -> Instance:
    """Turn one `VirtualMachineScaleSetVM` of an instanceView list into the engine's Instance."""
    props = vm.properties
    view = props.instance_view if props is not None else None
    protection = props.protection_policy if props is not None else None
    return Instance(
        id=str(vm.instance_id if vm.instance_id is not None else vm.name),
        name=vm.name or "",
        zone=(vm.zones or [None])[0],
        fault_domain=view.platform_fault_domain if view is not None else None,
        protected=bool(protection and protection.protect_from_scale_set_actions),
        time_created=props.time_created if props is not None else None,
        latest_model_applied=props.latest_model_applied if props is not None else None,
        **_observed(props),
    )


def instance_from_vm(vm: Any) -> Instance:
    """Turn one `VirtualMachine` of a Flexible set's instanceView list into the engine's
    Instance: its name is its id. A VM resource has no protection policy: the scale set's VM
    list carries it (`AzureComputePort.protected_instances`)."""
    props = vm.properties
    view = props.instance_view if props is not None else None
    fault_domain = view.platform_fault_domain if view is not None else None
    if fault_domain is None and props is not None:
        fault_domain = props.platform_fault_domain
    return Instance(
        id=vm.name or "",
        name=vm.name or "",
        zone=(vm.zones or [None])[0],
        fault_domain=fault_domain,
        standby=bool(view is not None and view.is_vm_in_standby_pool),
        time_created=props.time_created if props is not None else None,
        **_observed(props),
    )


def instance_from_view(instance_id: str, view: Any) -> Instance:
    """One instance's own instance view (`VirtualMachineInstanceView` or
    `VirtualMachineScaleSetVMInstanceView`) as an Instance with its states."""
    return Instance(id=instance_id, name=instance_id, fault_domain=view.platform_fault_domain,
                    **_view_states(view))


def unlisted_health(instances: tuple[Instance, ...], scale_set: ScaleSet) -> tuple[Instance, ...]:
    """A Flexible set's VM list in which no VM carries vmHealth although the model has the
    health extension: Azure left it out of the list (the single-VM instance view keeps it),
    so each instance says its health was not listed."""
    if not scale_set.health_extension or any(i.health is not None for i in instances):
        return instances
    return tuple(replace(i, health_listed=False) for i in instances)


def scale_set_from_sdk(vmss: Any, subscription_id: str, resource_group: str,
                       scale_set_name: str) -> ScaleSet:
    """Turn a `VirtualMachineScaleSet` (the set named `scale_set_name`) into the engine's ScaleSet."""
    props = vmss.properties
    mode = props.orchestration_mode if props is not None else None
    policy = props.upgrade_policy if props is not None else None
    upgrade = policy.mode if policy is not None else None
    os_policy = policy.automatic_os_upgrade_policy if policy is not None else None
    profile = props.virtual_machine_profile if props is not None else None
    extensions = (profile.extension_profile.extensions or []) if profile is not None and \
        profile.extension_profile is not None else []
    health = None
    for ext in extensions:
        kind = ext.properties.type if ext.properties is not None else None
        if kind in HEALTH_EXTENSION_TYPES:
            health = kind
    return ScaleSet(
        id=vmss.id or "",
        name=vmss.name or scale_set_name,
        resource_group=resource_group,
        subscription_id=subscription_id,
        location=vmss.location or "",
        orchestration_mode=str(mode.value if hasattr(mode, "value") else mode or "Uniform"),
        capacity=int(vmss.sku.capacity or 0) if vmss.sku is not None else 0,
        upgrade_mode=str(upgrade.value if hasattr(upgrade, "value") else upgrade or "Manual"),
        health_extension=health,
        provisioning=str(props.provisioning_state or "").lower() if props is not None else "",
        automatic_repairs=bool(props is not None and props.automatic_repairs_policy is not None
                               and props.automatic_repairs_policy.enabled),
        automatic_os_upgrade=bool(os_policy is not None and os_policy.enable_automatic_os_upgrade),
    )


def repairs_state(view: Any) -> str | None:
    """The AutomaticRepairs `serviceState` of a `VirtualMachineScaleSetInstanceView`'s
    `orchestrationServices` (REST spec example VirtualMachineScaleSet_GetInstanceView), or None."""
    for service in view.orchestration_services or []:
        name = getattr(service.service_name, "value", service.service_name)
        if str(name).lower() == "automaticrepairs":
            state = service.service_state
            return str(getattr(state, "value", state))
    return None


def rolling_forward(latest: Any) -> bool:
    """Whether a `RollingUpgradeStatusInfo` (or an `UpgradeOperationHistoricalStatusInfo` of
    the OS upgrade history) says a rolling upgrade is running."""
    running = latest.properties.running_status if latest.properties is not None else None
    code = running.code if running is not None else None
    return str(getattr(code, "value", code) or "").lower() == "rollingforward"


class PolledOperation(Operation):
    """An accepted long-running operation; its LROPoller polls in its own thread."""

    def __init__(self, poller: LROPoller, what: str, polling: _PatientPolling) -> None:
        self.poller = poller
        self.what = what
        self._polling = polling
        self._final: OperationStatus | None = None
        # Set by the poller's thread when polling has ended, before any callback of the engine's
        # runs: `poller.done()` stays False until that thread has exited, after the callbacks.
        self._ended = threading.Event()
        poller.add_done_callback(lambda _polling_method: self._ended.set())

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """`callback()` runs in the poller's thread once the operation has finished (at once if
        it already has): the engine uses it to end its sleep instead of noticing a poll later."""
        self.poller.add_done_callback(lambda _polling_method: callback())

    def status(self) -> OperationStatus:
        if self._final is not None:
            return self._final
        if not (self._ended.is_set() or self.poller.done()):
            throttled = self._polling.throttled()
            if throttled is not None:
                raise throttled
            return OperationStatus(OperationState.IN_PROGRESS)
        try:
            self.poller.result(timeout=0)  # polling has ended: returns or re-raises at once
        except HttpResponseError as err:
            self._final = _ended(err, self.poller.status())
        except SdkAzureError as err:
            # The poll itself broke (network, token): the outcome is unknown, so it is not success.
            self._final = OperationStatus(OperationState.FAILED, type(err).__name__,
                                          f"could not follow {self.what}: {_error_parts(err)[1]}")
        else:
            self._final = OperationStatus(OperationState.SUCCEEDED)
        return self._final


class AskedOperation(Operation):
    """An accepted reimage that no poller follows: the engine's list does, and `status()` reads
    the operation (one GET, in the caller's thread) only when asked. It never calls back."""

    def __init__(self, what: str, polling: _AskedPolling, port: "AzureComputePort") -> None:
        self.what = what
        self._polling = polling
        self._port = port
        self._final: OperationStatus | None = None
        self._quiet: tuple[float, float] = (0.0, 0.0)  # the last Retry-After, and its end

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Never called back: nothing reads the operation between the engine's asks."""

    def status(self) -> OperationStatus:
        if self._final is not None:
            return self._final
        now = time.monotonic()
        if now < self._quiet[1]:  # not asked again before its Retry-After has passed
            raise throttled_poll(self._quiet[0], self._quiet[1] - now)
        try:
            self._polling.ask()
        except Throttled as err:
            self._quiet = (err.retry_after, now + err.retry_after)
            raise
        except HttpResponseError as err:
            self._final = _ended(err, self._polling.status())
            return self._final
        except SdkAzureError as err:  # not read (network, token): asked again next pass
            raise map_error(err, self._port.arm_endpoint) from None
        if not self._polling.finished():
            return OperationStatus(OperationState.IN_PROGRESS)
        self._final = OperationStatus(OperationState.SUCCEEDED)
        return self._final


class AzureComputePort(ComputePort):
    """The engine's port to one scale set through azure-mgmt-compute."""

    def __init__(self, credential: TokenCredential, subscription_id: str, resource_group: str,
                 scale_set_name: str, *, arm_endpoint: str | None = None,
                 polling_interval: float = 10, connection_verify: str | bool | None = None,
                 **client_kwargs: Any) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.scale_set_name = scale_set_name
        self.arm_endpoint = (arm_endpoint or PUBLIC_ARM_ENDPOINT).rstrip("/")
        self.polling_interval = polling_interval
        self.counts = RequestCounts()
        self.scale_set: ScaleSet | None = None  # as preflight read it: its mode picks the APIs
        self._counter = RequestCounter(self.counts)
        self._closed = threading.Event()  # ends the pollers' waits
        self._partial: dict[str, PartialList] = {}  # a list throttled part way, by kind
        if connection_verify is not None:
            client_kwargs["connection_verify"] = connection_verify
        self.client = ComputeManagementClient(
            credential, subscription_id, base_url=self.arm_endpoint,
            credential_scopes=[credential_scope(self.arm_endpoint)],
            retry_policy=BoundedRetryPolicy(), per_retry_policies=[self._counter],
            polling_interval=polling_interval, **client_kwargs)

    @property
    def writes_left(self) -> int | None:
        return self._counter.writes_left

    @property
    def reads_left(self) -> int | None:
        return self._counter.reads_left

    def _begin(self, what: str, begin: Callable[..., LROPoller], *args: Any,
               **kwargs: Any) -> PolledOperation:
        """Start a long-running operation, followed by its own poller that rides out throttling."""
        polling = _PatientPolling(self._closed, self.polling_interval, self.arm_endpoint)
        return PolledOperation(self._call(begin, *args, polling=polling, **kwargs), what, polling)

    def _begin_asked(self, what: str, begin: Callable[..., LROPoller], *args: Any) -> AskedOperation:
        """Start a reimage whose status is read only when the engine asks (`AskedOperation`)."""
        polling = _AskedPolling(self.polling_interval, self.arm_endpoint)
        self._call(begin, *args, polling=polling)
        return AskedOperation(what, polling, self)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return _once_more_if_token_expired(fn, *args, **kwargs)
        except SdkAzureError as err:
            raise map_error(err, self.arm_endpoint) from None

    def get_scale_set(self) -> ScaleSet:
        vmss = self._call(self.client.virtual_machine_scale_sets.get,
                          self.resource_group, self.scale_set_name)
        self.scale_set = scale_set_from_sdk(vmss, self.subscription_id, self.resource_group,
                                            self.scale_set_name)
        return self.scale_set

    def _flexible(self) -> ScaleSet | None:
        """The scale set when it is Flexible (its instances are then VMs, reached through the
        single-VM APIs), else None. The mode is read from the set itself by `get_scale_set`
        (the engine's preflight), never configured; before that read the port speaks Uniform."""
        ss = self.scale_set
        return ss if ss is not None and ss.orchestration_mode == "Flexible" else None

    def rolling_upgrade_in_progress(self) -> bool:
        try:
            latest = self.client.virtual_machine_scale_set_rolling_upgrades.get_latest(
                self.resource_group, self.scale_set_name)
        except ResourceNotFoundError:
            return False  # no rolling upgrade has ever run on this set
        except SdkAzureError as err:
            raise map_error(err, self.arm_endpoint) from None
        return rolling_forward(latest)

    def os_upgrade_in_progress(self) -> bool:
        history = self._call(lambda: list(self.client.virtual_machine_scale_sets.get_os_upgrade_history(
            self.resource_group, self.scale_set_name)))
        return any(rolling_forward(entry) for entry in history)

    def list_instances(self) -> tuple[Instance, ...]:
        flexible = self._flexible()
        if flexible is not None:
            vms = self._read_list("vms", lambda: self.client.virtual_machines.list(
                self.resource_group, filter=f"'virtualMachineScaleSet/id' eq '{flexible.id}'",
                expand="instanceView"), instance_from_vm)
            return unlisted_health(tuple(vms), flexible)
        return tuple(self._read_list("instances", lambda: self.client.virtual_machine_scale_set_vms.list(
            self.resource_group, self.scale_set_name, expand="instanceView"), instance_from_sdk))

    def protected_instances(self) -> frozenset[str]:
        listed = self._read_list("protection", lambda: self.client.virtual_machine_scale_set_vms.list(
            self.resource_group, self.scale_set_name), instance_from_sdk)
        return frozenset(i.id for i in listed if i.protected)

    def _read_list(self, kind: str, pager: Callable[[], ItemPaged],
                   convert: Callable[[Any], Instance]) -> list[Instance]:
        """Every page of a list, following nextLink; a list throttled part way resumes at the
        throttled page on the next call while the pages before are fresh."""
        partial = self._partial.pop(kind, None)
        if partial is not None and not partial.fresh(time.monotonic()):
            partial = None
        items = list(partial.items) if partial else []
        first_read = partial.read_at if partial else time.monotonic()
        kept = len(items)

        def read_pages() -> None:
            del items[kept:]  # asked once more: from where the first try began
            for page in pager().by_page(continuation_token=partial.resume_at if partial else None):
                items.extend(map(convert, page))
        try:
            _once_more_if_token_expired(read_pages)
        except SdkAzureError as err:
            mapped = map_error(err, self.arm_endpoint)
            if isinstance(mapped, Throttled) and err.continuation_token:
                self._partial[kind] = PartialList(items, err.continuation_token, first_read)
            raise mapped from None
        return items

    def instance_views(self, instance_ids: list[str]) -> tuple[Instance, ...]:
        views = []
        for instance_id in instance_ids:
            try:
                if self._flexible() is not None:
                    view = self._call(self.client.virtual_machines.instance_view,
                                      self.resource_group, instance_id)
                else:
                    view = self._call(self.client.virtual_machine_scale_set_vms.get_instance_view,
                                      self.resource_group, self.scale_set_name, instance_id)
            except NotFound:
                continue  # gone: the next list tells the engine so
            views.append(instance_from_view(instance_id, view))
        return tuple(views)

    def begin_reimage(self, instance_id: str, *, all_disks: bool = False) -> Operation:
        what = f"the reimage{'all' if all_disks else ''} of instance {instance_id}"
        if self._flexible() is not None:
            if all_disks:  # preflight refuses reimage-all on Flexible before any write
                raise ValueError("a Flexible scale set's VMs have no reimageall operation")
            return self._begin_asked(what, self.client.virtual_machines.begin_reimage,
                                     self.resource_group, instance_id)
        vms = self.client.virtual_machine_scale_set_vms
        begin = vms.begin_reimage_all if all_disks else vms.begin_reimage
        return self._begin_asked(what, begin, self.resource_group, self.scale_set_name, instance_id)

    def begin_manual_upgrade(self, instance_id: str) -> Operation:
        what = f"the upgrade of instance {instance_id} to the latest model"
        if self._flexible() is not None:  # preflight refuses apply-latest-model there first
            raise ValueError("a Flexible scale set's VMs have no latest-model upgrade")
        return self._begin(what, self.client.virtual_machine_scale_sets.begin_update_instances,
                           self.resource_group, self.scale_set_name,
                           VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=[instance_id]))

    def begin_set_capacity(self, capacity: int) -> Operation:
        what = f"the capacity change to {capacity}"
        return self._begin(what, self.client.virtual_machine_scale_sets.begin_update,
                           self.resource_group, self.scale_set_name,
                           VirtualMachineScaleSetUpdate(sku=Sku(capacity=capacity)))

    def automatic_repairs_state(self) -> str | None:
        return repairs_state(self._call(self.client.virtual_machine_scale_sets.get_instance_view,
                                        self.resource_group, self.scale_set_name))

    def begin_set_automatic_repairs(self, action: str, *, quick: bool = False) -> Operation:
        # quick: a cancelled run must still end within seconds, so no retry and short network
        # timeouts (azure-core's per-call options)
        bounded = {"retry_total": 0, "connection_timeout": 0.5, "read_timeout": 1.0} if quick else {}
        return self._begin(f"the {action.lower()} of automatic repairs",
                           self.client.virtual_machine_scale_sets.begin_set_orchestration_service_state,
                           self.resource_group, self.scale_set_name,
                           OrchestrationServiceStateInput(service_name="AutomaticRepairs",
                                                          action=action), **bounded)

    def begin_delete_instances(self, instance_ids: list[str]) -> Operation:
        what = f"the deletion of instances {', '.join(instance_ids)}"
        return self._begin(what, self.client.virtual_machine_scale_sets.begin_delete_instances,
                           self.resource_group, self.scale_set_name,
                           VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=list(instance_ids)))

    def close(self) -> None:
        self._closed.set()
        self.client.close()
