"""Polling until something holds."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition", retrying: tuple[type[BaseException], ...] = ()) -> Any:
    """Calls `predicate` every `interval` seconds until it returns something truthy, and returns that; fails with
    `message` and the last value after `timeout` seconds. An exception of a `retrying` type (a service restarting)
    counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except retrying as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s (last: {last!r})")
