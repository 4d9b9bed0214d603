"""A throwaway certificate authority for the simulator's HTTPS.

Clients trust it through `ca_bundle` (a PEM file: `REQUESTS_CA_BUNDLE` or `connection_verify=`);
nothing is added to the system's trust store, and the files vanish with `close()`.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import trustme

# Names a client may use to reach a simulator bound on the loopback interface.
SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


class ThrowawayCA:
    """A fresh CA and one server certificate, written to a private temporary directory."""

    def __init__(self, names: tuple[str, ...] = SERVER_NAMES) -> None:
        self._ca = trustme.CA(organization_name="cycle-vmss simulator")
        self._cert = self._ca.issue_cert(*names)
        self._dir = tempfile.TemporaryDirectory(prefix="cycle-vmss-sim-")
        self.ca_bundle = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_bundle)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context

    def close(self) -> None:
        self._dir.cleanup()
