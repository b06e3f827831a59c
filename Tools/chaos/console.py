"""The run's progress lines, timed from the start, one at a time whatever thread writes them."""

from __future__ import annotations

import threading
import time

_print_lock = threading.Lock()
_t0 = time.monotonic()


def log(message: str) -> None:
    with _print_lock:
        print(f"[chaos {time.monotonic() - _t0:7.1f}s] {message}", flush=True)
