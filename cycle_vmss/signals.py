"""Cancellation by signal, kept free of heavy imports so a front end can install it first thing:
a cancel during start-up then still ends with a report and exit 130."""

from __future__ import annotations

import signal
import threading


def install_signal_handlers(cancelled: threading.Event) -> None:
    """SIGINT and SIGTERM ask the run to stop (the engine then writes its report and exits 130).
    A second signal gives up at once, for a run stuck in a long Retry-After."""

    def handler(signum: int, frame: object) -> None:
        if cancelled.is_set():
            raise KeyboardInterrupt
        cancelled.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
