"""Bounded connections: idle or stalled HTTP connections are closed, oversized bodies refused, WebSocket sessions
capped per order and in all (each with a clear status or close code), and a flood of any of them leaves sagas on
time."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import (FISH, HTTP_TIMEOUT, ORCHESTRATOR_URL, ORDER_URL, SERVICES, order_body, place_order,
                      service_env, start_service, stop_service, token_of, wait_for_final, ws_url)

IDLE_TIMEOUT = float(os.environ.get("PETS_HTTP_IDLE_TIMEOUT_SECONDS", "30"))
PER_ORDER = int(os.environ.get("PETS_WS_MAX_SESSIONS_PER_ORDER", "16"))


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _closed_within(sockets: dict[str, socket.socket], seconds: float) -> dict[str, float]:
    """Waits until the server closes each socket; returns the seconds each took (missing: still open)."""
    started = time.monotonic()
    closed: dict[str, float] = {}
    open_ = dict(sockets)
    while open_ and time.monotonic() - started < seconds:
        readable, _, _ = select.select(list(open_.values()), [], [], 0.5)
        for sock in readable:
            name = next(n for n, s in open_.items() if s is sock)
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                closed[name] = time.monotonic() - started
                del open_[name]
    return closed


def test_idle_http_connection_is_closed():
    """A socket that sends nothing, one that stops half-way through its request head, and a kept-alive one that
    is not used again: every service closes each of them once its idle timeout has passed."""
    sockets: dict[str, socket.socket] = {}
    try:
        for name, url in SERVICES.items():
            host, port = _address(url)
            silent = socket.create_connection((host, port), timeout=5)
            stalled = socket.create_connection((host, port), timeout=5)
            stalled.sendall(b"GET /health HTTP/1.1\r\nHost: pets\r\n")
            kept = socket.create_connection((host, port), timeout=5)
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: pets\r\n\r\n")
            assert kept.recv(65536).startswith(b"HTTP/1.1 200"), f"{name} /health"
            sockets.update({f"{name} silent": silent, f"{name} stalled head": stalled, f"{name} kept-alive": kept})
        closed = _closed_within(sockets, IDLE_TIMEOUT + 15)
        still_open = sorted(set(sockets) - set(closed))
        assert not still_open, f"still open {IDLE_TIMEOUT + 15:.0f}s later: {still_open}"
    finally:
        for sock in sockets.values():
            sock.close()


@pytest.mark.parametrize("url,path", [
    (ORDER_URL, "/orders"), (ORCHESTRATOR_URL, "/sagas/00000000-0000-0000-0000-000000000000/retry"),
    (SERVICES["Inventory"], f"/stock/{FISH}"),
])
def test_request_body_over_limit_is_413(url, path):
    """Declared larger than the limit: refused at once, before the body is sent (or read)."""
    host, port = _address(url)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: pets\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 104857600\r\n\r\n{{".encode())
        sock.settimeout(5)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), f"{url}{path}: {reply[:200]!r}"


def _open_session(url: str):
    ws = connect(url, open_timeout=10, close_timeout=2)
    return ws


def _close_code(ws, timeout: float = 10.0) -> int | None:
    """Reads until the server closes the session; its close code (None if it stays open)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None
    return None


def test_websocket_sessions_per_order_are_capped():
    placed = place_order()
    url = ws_url(placed["clientCallbackUrl"])
    wait_for_final(placed["orderId"])
    with contextlib.ExitStack() as stack:
        admitted = [stack.enter_context(_open_session(url)) for _ in range(PER_ORDER)]
        for ws in admitted:
            assert ws.recv(timeout=10), "an admitted session got no history"
        extra = stack.enter_context(_open_session(url))
        assert _close_code(extra) == 1008, "a session over the per-order cap was not closed with 1008"
        # A place frees up when a session ends.
        admitted.pop().close()
        time.sleep(0.5)
        again = stack.enter_context(_open_session(url))
        assert again.recv(timeout=10), "after a session ended, a new one of the same order was not admitted"


def test_websocket_sessions_in_all_are_capped():
    """A Notifier of our own with low caps: 3 in all, 2 per order."""
    env = service_env("Notifier", PETS_WS_MAX_SESSIONS="3", PETS_WS_MAX_SESSIONS_PER_ORDER="2")
    process = start_service("Notifier", env)
    base = f"ws://127.0.0.1:{env['PETS_HTTP_PORT']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, stop_service(process)
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{env['PETS_HTTP_PORT']}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "our Notifier never became healthy"
            time.sleep(0.3)
        orders = [place_order() for _ in range(3)]

        def url(placed):
            return f"{base}/ws?orderId={placed['orderId']}&token={token_of(placed['clientCallbackUrl'])}"

        with contextlib.ExitStack() as stack:
            a = [stack.enter_context(_open_session(url(orders[0]))) for _ in range(2)]
            b = stack.enter_context(_open_session(url(orders[1])))
            for ws in (*a, b):
                assert ws.recv(timeout=10)
            full = stack.enter_context(_open_session(url(orders[2])))
            assert _close_code(full) == 1013, "a session over the Notifier's total cap was not closed with 1013"
    finally:
        stop_service(process)


def test_a_flood_of_idle_sockets_and_websockets_does_not_delay_sagas():
    """Hundreds of idle sockets on every service and a burst of WebSockets on one token: an order placed meanwhile
    still ends well within its step deadline, and the flood is refused or closed rather than served."""
    victim = place_order()
    victim_url = ws_url(victim["clientCallbackUrl"])
    idle: list[socket.socket] = []
    lock = threading.Lock()

    with contextlib.ExitStack() as sessions:
        opened = []

        def flood_websockets():
            for _ in range(PER_ORDER * 3):
                try:
                    ws = connect(victim_url, open_timeout=10, close_timeout=1)
                except Exception:  # noqa: BLE001 - a refused handshake is fine too
                    continue
                with lock:
                    opened.append(sessions.enter_context(ws))

        try:
            for url in (ORDER_URL, SERVICES["Notifier"], ORCHESTRATOR_URL):
                for _ in range(200):
                    idle.append(socket.create_connection(_address(url), timeout=5))
            flooders = [threading.Thread(target=flood_websockets, daemon=True) for _ in range(2)]
            for thread in flooders:
                thread.start()
            started = time.monotonic()
            placed = place_order(order_body(marker="flood"))
            final = wait_for_final(placed["orderId"], timeout=20)
            elapsed = time.monotonic() - started
            assert final["orderStatus"] == "completed", final
            assert elapsed < 10, f"an order took {elapsed:.1f}s to complete during the flood"
            for thread in flooders:
                thread.join(timeout=60)
            codes = [_close_code(ws, timeout=0.5) for ws in opened]
            admitted = sum(1 for code in codes if code is None)
            assert admitted <= PER_ORDER, f"{admitted} sessions of one order admitted, the cap is {PER_ORDER}"
        finally:
            for sock in idle:
                sock.close()
    assert requests.get(f"{SERVICES['Notifier']}/health", timeout=HTTP_TIMEOUT).status_code == 200
