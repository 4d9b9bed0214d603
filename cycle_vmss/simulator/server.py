"""The simulator as a running HTTPS service: in a thread for tests, or as a process (`__main__`).

    with running_simulator({"instances": 3}) as sim:
        client = ComputeManagementClient(credential, sim.info["subscription_id"],
                                         base_url=sim.info["arm_endpoint"], ...)
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..clock import SystemClock
from .backend import Backend
from .http import HttpsServer, SimulatorApp, SubscriptionApp
from .identity import Identity
from .scenario import Scenario, load_scenario
from .subscription import Subscription
from .tls import SERVER_NAMES, ThrowawayCA

# The keys of the JSON line (docs/simulator.md), in the order printed.
INFO_KEYS = ("arm_endpoint", "authority_host", "ca_bundle", "tenant_id", "client_id",
             "client_secret", "subscription_id", "resource_group", "scale_set_name",
             "github_oidc_url", "github_oidc_token")


@dataclass
class SimulatorHandle:
    """What a client of a running simulator needs. `info` is the JSON line's dict; it also
    carries `forbidden_client_id`, an app that authenticates but has no role (ARM answers 403)."""

    info: dict[str, str]
    backend: Backend  # the first (or only) scale set's
    identity: Identity
    server: HttpsServer | None = None
    subscription: Subscription | None = None  # every set (the scenario's `scale_sets`)

    def refuse_connections(self, seconds: float) -> None:
        """Drop open connections and refuse new ones for `seconds` (an outage of the endpoint)."""
        self.server.refuse_connections(seconds)

    def env(self) -> dict[str, str]:
        """Environment for a client process (azure-identity's EnvironmentCredential and ours)."""
        return {
            "AZURE_AUTHORITY_HOST": self.info["authority_host"],
            "AZURE_RESOURCE_MANAGER_ENDPOINT": self.info["arm_endpoint"],
            "REQUESTS_CA_BUNDLE": self.info["ca_bundle"],
            "AZURE_TENANT_ID": self.info["tenant_id"],
            "AZURE_CLIENT_ID": self.info["client_id"],
            "AZURE_CLIENT_SECRET": self.info["client_secret"],
            "AZURE_SUBSCRIPTION_ID": self.info["subscription_id"],
        }

    def requests(self) -> list[dict]:
        """What `/_simulator/requests` returns: with `scale_sets`, every set's requests."""
        return self._record().requests()

    def history(self) -> dict:
        """What `/_simulator/history` returns: with `scale_sets`, each set's by its name."""
        return self._record().history()

    def _record(self):
        fleet = self.subscription is not None and self.subscription.scenario.scale_sets
        return self.subscription if fleet else self.backend

    def get_json(self, path: str) -> Any:
        """GET a path of the simulator over its own HTTPS (for introspection from tests)."""
        context = ssl.create_default_context(cafile=self.info["ca_bundle"])
        url = self.info["arm_endpoint"].rstrip("/") + path
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:  # noqa: S310
            return json.load(answer)


@contextmanager
def running_simulator(scenario: str | dict | Scenario | None = None, *, host: str = "127.0.0.1",
                      port: int = 0) -> Iterator[SimulatorHandle]:
    """Serve HTTPS on host:port (0 = any free port) in a daemon thread until the block ends."""
    loaded = load_scenario(scenario)
    subscription = Subscription(loaded, SystemClock())
    backend = subscription.backends[0]
    # A non-loopback bind (a Docker network gateway in the action's self-test) must be in the
    # certificate too, or clients on that network fail the TLS check.
    ca = ThrowawayCA(SERVER_NAMES if host in SERVER_NAMES else SERVER_NAMES + (host,))
    try:
        server = HttpsServer((host, port), ca.server_context())
        url_host = f"[{host}]" if ":" in host else host
        base_url = f"https://{url_host}:{server.server_port}"
        identity = Identity(
            base_url=base_url, tenant_id=loaded.tenant_id, client_id=loaded.client_id,
            client_secret=loaded.client_secret, github_oidc_token=loaded.github_oidc_token,
            subscription_id=loaded.subscription_id, randomness=backend.randomness,
            token_lifetime_seconds=loaded.token_lifetime_seconds,
            github_token_lifetime_seconds=loaded.github_oidc_token_lifetime_seconds,
            denied_actions=loaded.denied_actions,
        )
        server.app = SubscriptionApp(subscription, identity) if loaded.scale_sets \
            else SimulatorApp(backend, identity)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"simulator-{server.server_port}", daemon=True)
        thread.start()
        try:
            info = {
                "arm_endpoint": base_url + "/",
                "authority_host": base_url,
                "ca_bundle": ca.ca_bundle,
                "tenant_id": loaded.tenant_id,
                "client_id": loaded.client_id,
                "client_secret": loaded.client_secret,
                "subscription_id": loaded.subscription_id,
                "resource_group": loaded.resource_group,
                "scale_set_name": loaded.scale_set_name,
                "github_oidc_url": identity.github_oidc_url,
                "github_oidc_token": loaded.github_oidc_token,
                "forbidden_client_id": identity.forbidden_client_id,
            }
            if loaded.scale_sets:  # the first set's are above, as a one-set scenario's
                info["scale_sets"] = [{"resource_group": s.resource_group,
                                       "scale_set_name": s.scale_set_name}
                                      for s in loaded.scale_sets]
            yield SimulatorHandle(info=info, backend=backend, identity=identity, server=server,
                                  subscription=subscription)
        finally:
            server.close()
            thread.join(timeout=5)
    finally:
        ca.close()
