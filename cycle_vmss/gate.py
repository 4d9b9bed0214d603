"""The gate: a service-level health check (a status page, a load balancer's health endpoint, an
alert bridge) that must answer 2xx to a GET before any new reimage starts.

`Gate` is the engine's port to it, as `ComputePort` is to Azure: `HttpGate` asks the URL; tests
of the engine in virtual time may give their own. An answer is None (open: a 2xx) or a few
words saying why not, to follow "gate-url": "answered HTTP 503 Service Unavailable", "gave no
answer within 10 s", "could not be reached (...)".
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

GATE_TIMEOUT_SECONDS = 10.0


class Gate(Protocol):
    def ask(self) -> str | None: ...


class Cancelled(Exception):
    """The run was cancelled while the gate had not answered yet."""


def shown(url: str) -> str:
    """The URL as logs and reports show it: without user info or query, where tokens live."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + ("?…" if parts.query else "")


class HttpGate:
    """A GET of the URL with the standard library: the system's CA store (and SSL_CERT_FILE),
    the *_PROXY variables, redirects followed. Any 2xx opens the gate."""

    def __init__(self, url: str, timeout: float = GATE_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout

    def ask(self) -> str | None:
        request = urllib.request.Request(self.url, headers={"User-Agent": "cycle-vmss gate"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, reason = response.status, response.reason
        except urllib.error.HTTPError as err:  # a 4xx or 5xx is an answer
            status, reason = err.code, err.reason
        except OSError as err:  # URLError, a refused connection, a timeout
            cause = getattr(err, "reason", err)
            if isinstance(cause, TimeoutError):
                return f"gave no answer within {self.timeout:.0f} s"
            return f"could not be reached ({cause})"
        return None if 200 <= status < 300 else f"answered HTTP {status} {reason}".rstrip()


def ask_until_cancelled(gate: Gate, cancelled: threading.Event) -> str | None:
    """The gate's answer, asked in a thread of its own so that a cancel never waits for it
    (its GET may take the whole timeout); raises `Cancelled` then."""
    answer: list[str | None] = []

    def ask() -> None:
        try:
            answer.append(gate.ask())
        except Exception as err:  # noqa: BLE001 - a gate that cannot be asked is closed
            answer.append(f"could not be asked ({err})")

    thread = threading.Thread(target=ask, name="cycle-vmss-gate", daemon=True)
    thread.start()
    while True:
        thread.join(0.05)
        if not thread.is_alive():
            return answer[0]
        if cancelled.is_set():
            raise Cancelled()
