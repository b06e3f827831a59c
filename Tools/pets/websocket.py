"""An order's status stream on the Notifier: `ws://HOST:PORT/ws?orderId=ID&token=T` (its clientCallbackUrl)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.sync.client import connect

FINAL_STATUSES = {"success", "failed"}
FOLLOW_TIMEOUT = 30.0


def repoint(callback_url: str, notifier_url: str) -> str:
    """The callback URL pointed at the Notifier at `notifier_url` (the public URL may name another host or port)."""
    target = urlsplit(notifier_url)
    given = urlsplit(callback_url)
    scheme = "wss" if target.scheme == "https" else "ws"
    return urlunsplit((scheme, target.netloc, given.path, given.query, given.fragment))


def read_until(ws, statuses: set[str], timeout: float, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Reads messages (text frames of JSON), appending them to `seen`, until one has a status in `statuses`;
    returns that one. Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no WebSocket message with status in {sorted(statuses)} within {timeout}s; "
                                 f"got {seen}")
        try:
            message = ws.recv(timeout=remaining)
        except TimeoutError:
            continue
        assert isinstance(message, str), f"expected a text frame, got {message!r}"
        seen.append(json.loads(message))
        if seen[-1].get("status") in statuses:
            return seen[-1]


def read_until_final(ws, timeout: float = FOLLOW_TIMEOUT) -> list[dict[str, Any]]:
    """Every message from an open connection up to and including the final one (success or failed)."""
    seen: list[dict[str, Any]] = []
    read_until(ws, FINAL_STATUSES, timeout, seen)
    return seen


def follow(url: str, timeout: float = FOLLOW_TIMEOUT) -> list[dict[str, Any]]:
    """Connects to an order's stream at `url` and returns every message up to and including the final one."""
    with connect(url, open_timeout=10, close_timeout=2) as ws:
        return read_until_final(ws, timeout)
