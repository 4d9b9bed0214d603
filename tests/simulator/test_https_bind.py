"""The simulator's certificate names the address it binds to, so clients on another interface
(a Docker network gateway in the action's self-test) pass the TLS check."""

import ssl
import urllib.request

from cycle_vmss.simulator.server import running_simulator


def test_a_non_default_bind_address_is_in_the_certificate():
    with running_simulator(host="127.0.0.2") as sim:
        assert sim.info["arm_endpoint"].startswith("https://127.0.0.2:")
        context = ssl.create_default_context(cafile=sim.info["ca_bundle"])
        url = sim.info["arm_endpoint"].rstrip("/") + "/_simulator/history"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert response.status == 200
