"""The simulator's HTTP layer: thin handlers over the backend, and the HTTPS server.

A handler parses the request, calls one backend verb and renders its snapshot with `bodies`
(202 + Azure-AsyncOperation/Location for long-running POSTs, the error envelope for every
`ArmError`, Azure's common headers on every response). It never touches backend state itself.
With the scenario's `scale_sets`, `SubscriptionApp` sends each request to its set's app.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import threading
import time
import traceback
import base64
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import bodies, routes
from .backend import Backend, ScaleSetSnapshot, VmSnapshot
from .errors import ArmError, BadRequest, NotFound
from .identity import EntraError, GitHubError, Identity
from .subscription import Subscription

API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
JSON = "application/json; charset=utf-8"
# Headers every Compute response carries in the recordings (azure-recordings/index.md).
_COMMON_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Expires": "-1",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # first value of each parameter, names as sent
    headers: Any  # case-insensitive mapping (http.client.HTTPMessage)
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def param(self, name: str) -> str | None:
        """A query parameter, matched case-insensitively as ARM does."""
        for key, value in self.query.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, json.dumps(payload).encode(), {"Content-Type": JSON, **(headers or {})})


def _route_error(status: int, code: str, message: str) -> ArmError:
    return ArmError(message, code=code, status=status)


class SimulatorApp:
    """Routes (from `routes.ROUTES`) -> handler methods of this class, plus the checks each area
    needs. Independent of sockets, so it can be exercised directly."""

    def __init__(self, backend: Backend, identity: Identity, *, introspection=None) -> None:
        """`introspection`: what `/_simulator/requests` and `/history` show (the backend's own
        record by default; a fleet's `Subscription` for all its sets)."""
        self.backend = backend
        self.identity = identity
        self._introspection = introspection or backend
        self.faults = backend.faults
        self.randomness = backend.randomness
        self.scenario = backend.scenario
        self.subscription_id: str = self.scenario.subscription_id
        # the opaque `p` ARM puts on operation URLs
        self._operation_p = self.randomness.request_guid()

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Any, body: bytes, *,
               refused: ArmError | None = None) -> Response:
        """`refused`: the answer, whatever the route (a fleet refuses what no set can serve)."""
        request = parse_request(method, target, headers, body)
        path = request.path
        route, params, allowed = routes.match(method, path)
        request.params = params
        if refused is not None:
            response = self._render_arm_error(refused)
        elif route is None:
            response = self._render_arm_error(self._no_route(method, path, allowed))
        elif route.area == "arm":
            response = self._arm(route, request)
        else:
            response = self._guarded(getattr(self, route.handler), request)
        correlation = headers.get("x-ms-correlation-request-id") or self.randomness.request_guid()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        response.headers = {
            **_COMMON_HEADERS,
            "x-ms-request-id": self.randomness.request_guid(),
            "x-ms-correlation-request-id": correlation,
            "x-ms-routing-request-id": f"LOCALSIMULATOR:{stamp}:{correlation}",
            **response.headers,
        }
        if route is None or route.area != "simulator":
            # Every request seen except introspection itself (`/_simulator/requests`).
            self.backend.record_request(method, path, response.status)
        return response

    @staticmethod
    def _no_route(method: str, path: str, allowed: list[str]) -> ArmError:
        if allowed:
            return ArmError(
                f"The simulator answers {', '.join(allowed)} on '{path}', not {method}.",
                code="MethodNotAllowed", status=405, headers={"Allow": ", ".join(allowed)})
        return _route_error(404, "RouteNotFound",
                            f"The simulator has no route for '{method} {path}'. "
                            "See cycle_vmss/simulator/routes.py for what it serves.")

    def _guarded(self, handler, request: Request) -> Response:
        try:
            return handler(request)
        except EntraError as exc:
            return Response.json(exc.status, exc.body, {"Cache-Control": "no-store, no-cache"})
        except GitHubError as exc:
            return Response.json(exc.status, exc.body)
        except ArmError as exc:
            return self._render_arm_error(exc)
        except Exception as exc:  # a simulator bug must be loud, and must not hang the client
            traceback.print_exc(file=sys.stderr)
            return self._render_arm_error(_route_error(
                500, "InternalServerError", f"Simulator bug: {type(exc).__name__}: {exc}"))

    @staticmethod
    def _render_arm_error(error: ArmError) -> Response:
        return Response.json(error.status, error.body(), {k: str(v) for k, v in error.headers.items()})

    def _arm(self, route: routes.Route, request: Request) -> Response:
        kind = "read" if route.method == "GET" else "write"

        def checked(req: Request) -> Response:
            claims = self.identity.authenticate_arm(req.header("Authorization"))
            api_version = req.param("api-version")
            if not api_version:
                raise BadRequest("The api-version query parameter (?api-version=) is required for "
                                 "all requests.", code="MissingApiVersionParameter")
            if not API_VERSION.fullmatch(api_version):
                raise BadRequest(f"The api-version '{api_version}' is invalid. The supported "
                                 "versions are dated, like '2026-04-01'.",
                                 code="InvalidApiVersionParameter")
            subscription = req.params.get("subscription", self.subscription_id)
            if subscription.lower() != self.subscription_id.lower():
                raise NotFound(f"The subscription '{subscription}' could not be found.",
                               code="SubscriptionNotFound")
            self.identity.authorize_arm(claims, route.action, routes.arm_scope(req.path))
            self.faults.admit(kind, route.method, req.path)
            return getattr(self, route.handler)(req)

        response = self._guarded(checked, request)
        if response.status != 401:  # an error's own headers (a 429's bucket at 0) win
            response.headers = {**self.faults.ratelimit_headers(kind, route.method, request.path),
                                **response.headers}
        return response

    # -- helpers -----------------------------------------------------------------------------
    def _base(self, request: Request) -> str:
        host = request.header("Host")
        return f"https://{host}" if host else self.identity.base_url

    def _operation_url(self, request: Request, op_id: str, *, monitor: bool = False) -> str:
        api_version = request.param("api-version")
        monitor_part = "&monitor=true" if monitor else ""
        path = routes.OPERATION.format(subscription=self.subscription_id,
                                       location=self.scenario.location, op_id=op_id)
        return (f"{self._base(request)}{path}"
                f"?p={self._operation_p}{monitor_part}&api-version={api_version}")

    def _accepted(self, request: Request, op_id: str) -> Response:
        """202, empty body, as Compute answers every long-running POST."""
        return Response(202, b"", {
            "Azure-AsyncNotification": "Enabled",
            "Azure-AsyncOperation": self._operation_url(request, op_id),
            "Location": self._operation_url(request, op_id, monitor=True),
        })

    def _updated(self, request: Request, scale_set: ScaleSetSnapshot, op_id: str) -> Response:
        """200 and the set, with the operation to poll (SDK 39 takes PATCH only as 200)."""
        return Response.json(200, bodies.scale_set(self.scenario, scale_set),
                             {"Azure-AsyncOperation": self._operation_url(request, op_id)})

    def _accepted_reimage(self, request: Request, instance_id: str, op_id: str) -> Response:
        delay = self.faults.take_response_delay(instance_id)
        if delay:  # the fault: accepted and running, but the client hears nothing for a while
            time.sleep(delay)
        return self._accepted(request, op_id)


    def _instance_view(self, vm: VmSnapshot) -> Response:
        return Response.json(200, bodies.instance_view(self.scenario, vm))

    @staticmethod
    def _json_body(request: Request, *, required: bool) -> dict | None:
        """The JSON object sent, None for no body (the SDK sends none, older clients send an
        empty body with a JSON content type)."""
        if not request.body.strip():
            if required:
                raise BadRequest("The request content was invalid and could not be deserialized: "
                                 "'Missing request content'.", code="InvalidRequestContent")
            return None
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            raise BadRequest(f"The request content was invalid and could not be deserialized: "
                             f"'{exc}'.", code="InvalidRequestContent") from None
        if not isinstance(payload, dict):
            raise BadRequest("The request content must be a JSON object.", code="InvalidRequestContent")
        return payload

    @staticmethod
    def _instance_ids(payload: dict | None, *, required: bool) -> list[str] | None:
        ids = None if payload is None else payload.get("instanceIds")
        if ids is None:
            if required:
                # Compute names the parameter in a top-level `target`, as in the InvalidParameter
                # error Microsoft Learn quotes ("Azure Virtual Desktop: troubleshoot host pool
                # creation": "target": "adminUsername").
                raise BadRequest("Required parameter 'instanceIds' is missing (null).",
                                 code="InvalidParameter", target="instanceIds",
                                 details=[{"code": "InvalidParameter", "target": "instanceIds",
                                           "message": "instanceIds is required."}])
            return None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("Parameter 'instanceIds' must be a list of instance id strings.",
                             code="InvalidParameter", target="instanceIds")
        return ids

    @staticmethod
    def _expand_instance_view(request: Request) -> bool:
        return (request.param("$expand") or "").lower() == "instanceview"

    # -- ARM handlers (one backend verb each) ------------------------------------------------
    def get_scale_set(self, request: Request) -> Response:
        p = request.params
        return Response.json(200, bodies.scale_set(self.scenario,
                                                   self.backend.get_scale_set(p["rg"], p["name"])))

    def update_scale_set(self, request: Request) -> Response:
        p = request.params
        scale_set, op_id = self.backend.update_scale_set(p["rg"], p["name"],
                                                         self._json_body(request, required=True))
        return self._updated(request, scale_set, op_id)

    def put_scale_set(self, request: Request) -> Response:
        p = request.params
        scale_set, op_id = self.backend.put_scale_set(p["rg"], p["name"],
                                                      self._json_body(request, required=True))
        return self._updated(request, scale_set, op_id)

    def get_scale_set_instance_view(self, request: Request) -> Response:
        p = request.params
        scale_set, vms = self.backend.get_scale_set_instance_view(p["rg"], p["name"])
        return Response.json(200, bodies.scale_set_instance_view(self.scenario, scale_set, vms))

    def latest_rolling_upgrade(self, request: Request) -> Response:
        p = request.params
        return Response.json(200, bodies.rolling_upgrade(
            self.scenario, self.backend.latest_rolling_upgrade(p["rg"], p["name"])))

    def os_upgrade_history(self, request: Request) -> Response:
        p = request.params
        return Response.json(200, bodies.os_upgrade_history(
            self.scenario, *self.backend.os_upgrade_history(p["rg"], p["name"])))

    def delete_instances(self, request: Request) -> Response:
        p = request.params
        ids = self._instance_ids(self._json_body(request, required=True), required=True)
        return self._accepted(request, self.backend.delete_instances(p["rg"], p["name"], ids))

    def reimage_set(self, request: Request, *, all_disks: bool = False) -> Response:
        p = request.params
        ids = self._instance_ids(self._json_body(request, required=False), required=False)
        return self._accepted(request, self.backend.reimage_set(p["rg"], p["name"], ids,
                                                                all_disks=all_disks))

    def manual_upgrade(self, request: Request) -> Response:
        """`{"instanceIds": [...]}` (REST: VirtualMachineScaleSets_UpdateInstances): 202 and an
        operation, as Compute's other POSTs on instances."""
        p = request.params
        ids = self._instance_ids(self._json_body(request, required=True), required=True)
        return self._accepted(request, self.backend.manual_upgrade(p["rg"], p["name"], ids))

    def reimage_set_all(self, request: Request) -> Response:
        return self.reimage_set(request, all_disks=True)

    def set_orchestration_service_state(self, request: Request) -> Response:
        """`{"serviceName": "AutomaticRepairs", "action": "Suspend" | "Resume"}` (REST spec
        example VirtualMachineScaleSet_SetOrchestrationServiceState): 202, as Compute's POSTs."""
        p = request.params
        payload = self._json_body(request, required=True)
        return self._accepted(request, self.backend.set_orchestration_service_state(
            p["rg"], p["name"], payload.get("serviceName"), payload.get("action")))

    def list_instances(self, request: Request) -> Response:
        request, after = self._page_request(request)
        p = request.params
        expand = self._expand_instance_view(request)
        return self._paged(request, self.backend.list_instances(p["rg"], p["name"], after=after),
                           lambda vm: bodies.scale_set_vm(self.scenario, vm, expand=expand))

    def list_vms(self, request: Request) -> Response:
        """Flexible: `virtualMachines?$filter='virtualMachineScaleSet/id' eq '...'&$expand=instanceView`."""
        request, after = self._page_request(request)
        expand = self._expand_instance_view(request)
        return self._paged(request, self.backend.list_vms(
            request.params["rg"], vmss_filter=request.param("$filter"),
            expand_instance_view=expand, after=after),
            lambda vm: bodies.vm(self.scenario, vm, expand=expand, listed=True))

    def get_vm(self, request: Request) -> Response:
        p = request.params
        vm = self.backend.get_vm(p["rg"], p["vm_name"])
        return Response.json(200, bodies.vm(self.scenario, vm,
                                            expand=self._expand_instance_view(request)))

    def get_vm_instance_view(self, request: Request) -> Response:
        p = request.params
        return self._instance_view(self.backend.get_vm(p["rg"], p["vm_name"]))

    def reimage_vm(self, request: Request) -> Response:
        p = request.params
        self._json_body(request, required=False)  # optional VirtualMachineReimageParameters; unused
        op_id = self.backend.reimage_vm(p["rg"], p["vm_name"])
        return self._accepted_reimage(request, p["vm_name"], op_id)

    # Compute writes a list's nextLink as the path, `api-version` and an opaque `$skiptoken`
    # alone ("virtualMachines?api-version=2016-03-30&$skiptoken=...", quoted by a Compute
    # engineer in Azure/azure-xplat-cli#2961): `$filter` and `$expand` live in the token, so
    # a client that rebuilt the next request from its own parameters would lose them. The SDK
    # follows nextLink verbatim, absolute.
    @staticmethod
    def _page_request(request: Request) -> tuple[Request, str | None]:
        """The request a page answers and the last instance already listed: a `$skiptoken`
        brings back the first page's `$filter` and `$expand`, whatever the URL carries."""
        token = request.param("$skiptoken")
        if not token:
            return request, None
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            query, after = dict(state["query"]), str(state["after"])
        except (ValueError, KeyError, TypeError):
            raise BadRequest(f"The value '{token}' of parameter '$skiptoken' is not valid.",
                             code="InvalidParameter", target="$skiptoken") from None
        query["api-version"] = request.param("api-version") or ""
        return replace(request, query=query), after

    def _paged(self, request: Request, page_and_after, render) -> Response:
        """One page, each instance as `render` shows it, with a nextLink while more follow."""
        vms, after = page_and_after
        page: dict[str, Any] = {"value": [render(vm) for vm in vms]}
        if after is not None:
            kept = {k: v for k, v in request.query.items() if k.lower() != "api-version"}
            token = base64.urlsafe_b64encode(
                json.dumps({"query": kept, "after": after}).encode()).decode()
            page["nextLink"] = (f"{self._base(request)}{request.path}"
                                f"?api-version={request.param('api-version')}&$skiptoken={token}")
        return Response.json(200, page)

    def get_instance(self, request: Request) -> Response:
        p = request.params
        vm = self.backend.get_instance(p["rg"], p["name"], p["instance_id"])
        return Response.json(200, bodies.scale_set_vm(
            self.scenario, vm, expand=self._expand_instance_view(request)))

    def get_instance_view(self, request: Request) -> Response:
        p = request.params
        return self._instance_view(self.backend.get_instance_view(p["rg"], p["name"],
                                                                  p["instance_id"]))

    def update_instance(self, request: Request) -> Response:
        """PUT of a scale-set VM (its protection policy): 200, the VM, and an operation."""
        p = request.params
        vm, op_id = self.backend.update_instance(p["rg"], p["name"], p["instance_id"],
                                                 self._json_body(request, required=True))
        return Response.json(200, bodies.scale_set_vm(self.scenario, vm, expand=False),
                             {"Azure-AsyncOperation": self._operation_url(request, op_id)})

    def reimage(self, request: Request, *, all_disks: bool = False) -> Response:
        p = request.params
        self._json_body(request, required=False)  # optional reimage input (e.g. tempDisk); unused
        op_id = self.backend.reimage(p["rg"], p["name"], p["instance_id"], all_disks=all_disks)
        return self._accepted_reimage(request, p["instance_id"], op_id)

    def reimage_all(self, request: Request) -> Response:
        return self.reimage(request, all_disks=True)

    def operation(self, request: Request) -> Response:
        status = self.backend.operation_status(request.params["op_id"])
        if (request.param("monitor") or "").lower() != "true":
            return Response.json(200, bodies.operation(status))
        if status.status == "InProgress":
            return Response(202, b"", {"Location": self._operation_url(
                request, request.params["op_id"], monitor=True)})
        return Response(200, b"")  # the monitor URL's final answer: 200, no body

    # -- Resource Manager itself (for `az cloud register` / `az login`) ----------------------
    def cloud_metadata(self, request: Request) -> Response:
        """`/metadata/endpoints`: this cloud's endpoints, in the single-cloud shape that
        api-version 2022-09-01 returns."""
        if not request.param("api-version"):
            raise BadRequest("The api-version query parameter (?api-version=) is required for "
                             "all requests.", code="MissingApiVersionParameter")
        base = self._base(request)
        return Response.json(200, {
            "name": "CycleVmssSimulator",
            "portal": base,
            "authentication": {
                "loginEndpoint": self.identity.authority_host,
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "resourceManager": f"{base}/",
            "suffixes": {},
        })

    def _subscription(self) -> dict:
        return {
            "id": f"/subscriptions/{self.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": self.subscription_id,
            "tenantId": self.identity.tenant_id,
            "displayName": "cycle-vmss simulator",
            "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                     "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        }

    def list_subscriptions(self, request: Request) -> Response:
        return Response.json(200, {"value": [self._subscription()],
                                   "count": {"type": "Total", "value": 1}})

    def get_subscription(self, request: Request) -> Response:
        return Response.json(200, self._subscription())

    def list_tenants(self, request: Request) -> Response:
        tenant = self.identity.tenant_id
        return Response.json(200, {"value": [{"id": f"/tenants/{tenant}", "tenantId": tenant,
                                              "tenantCategory": "Home"}],
                                   "count": {"type": "Total", "value": 1}})

    # -- Entra, GitHub, introspection --------------------------------------------------------
    def openid_configuration(self, request: Request) -> Response:
        return Response.json(200, self.identity.openid_configuration(request.params["tenant"]),
                             {"Cache-Control": "max-age=86400, private"})

    def jwks(self, request: Request) -> Response:
        return Response.json(200, self.identity.jwks(request.params["tenant"]))

    def instance_discovery(self, request: Request) -> Response:
        return Response.json(200, self.identity.instance_discovery())

    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}
        headers = {"Cache-Control": "no-store, no-cache"}
        if request.header("client-request-id"):
            headers["client-request-id"] = request.header("client-request-id")
        return Response.json(200, self.identity.issue_token(request.params["tenant"], form), headers)

    def github_token(self, request: Request) -> Response:
        return Response.json(200, self.identity.issue_github_token(
            request.header("Authorization"), request.param("audience")))

    def simulator_requests(self, request: Request) -> Response:
        return Response.json(200, self._introspection.requests())

    def simulator_history(self, request: Request) -> Response:
        return Response.json(200, self._introspection.history())


def parse_request(method: str, target: str, headers: Any, body: bytes) -> Request:
    split = urlsplit(target)
    # Clients join `arm_endpoint` (with its trailing slash) and "/metadata/...": ARM takes
    # the doubled slash, so do we.
    path = re.sub(r"/{2,}", "/", split.path) or "/"
    query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    return Request(method, path, query, headers, body)


class SubscriptionApp:
    """Several scale sets behind one endpoint (the scenario's `scale_sets`): each ARM request
    goes to its set's `SimulatorApp`, found by `Subscription.route`; the rest (Entra, GitHub,
    metadata, and ARM paths no set owns, which then answer not found) to the first set's.
    `/_simulator/requests` and `/history` show every set (the `Subscription`'s)."""

    def __init__(self, subscription: Subscription, identity: Identity) -> None:
        self.subscription = subscription
        self.apps = {id(b): SimulatorApp(b, identity, introspection=subscription)
                     for b in subscription.backends}
        self.first = self.apps[id(subscription.backends[0])]

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Response:
        request = parse_request(method, target, headers, body)
        route, _, _ = routes.match(method, request.path)
        if route is None or route.area != "arm":
            return self.first.handle(method, target, headers, body)
        try:
            # a list's next page carries its `$filter` in the `$skiptoken` only
            request, _ = SimulatorApp._page_request(request)
            backend = self.subscription.route(method, request.path, request.param("$filter"))
        except ArmError as error:  # a bad token, or a list no one set can serve
            return self.first.handle(method, target, headers, body, refused=error)
        app = self.apps[id(backend)] if backend is not None else self.first
        return app.handle(method, target, headers, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Azure's front doors allow
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is dropped after this

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add
        # ~40 ms to every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.do_handshake()  # in this connection's thread, never in the accept loop
        super().setup()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.app.handle(self.command, self.path, self.headers, body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are recorded by the backend; stderr stays for real problems


class HttpsServer(ThreadingHTTPServer):
    """ThreadingHTTPServer over TLS; `close()` also drops idle keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.app: SimulatorApp | None = None
        self._refuse_until = 0.0  # time.monotonic() before which new connections are dropped
        super().__init__(address, _Handler)

    def refuse_connections(self, seconds: float) -> None:
        """An outage: drop every open connection now, and close each new one at once (before
        TLS) for `seconds`; clients see their connection reset, as when a front door restarts."""
        self._refuse_until = time.monotonic() + seconds
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def verify_request(self, request, client_address) -> bool:
        return time.monotonic() >= self._refuse_until

    def server_bind(self) -> None:
        super().server_bind()
        # The handshake is deferred to the connection's own thread (see _Handler.setup).
        self.socket = self._context.wrap_socket(self.socket, server_side=True,
                                                do_handshake_on_connect=False)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # SSL, reset, timeout: a client that went away or
            return                      # did not trust our CA, not a simulator bug
        super().handle_error(request, client_address)

    def close(self) -> None:
        self.shutdown()
        self._drop_connections()
        self.server_close()
