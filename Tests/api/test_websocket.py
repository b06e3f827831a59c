"""Hostile WebSocket clients of the Notifier.

A connection needs the order's own token; a client frame over 4 KiB closes that connection (and only it); malformed
frames never stop the server; a client that never reads does not slow the other clients of the same order, and is
dropped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import FINAL_STATUSES, NOTIFIER_URL, notifier_ws, place_order, token_of, wait_for_final, ws_url
from pets.websocket import follow, read_until_final

SLOW_CLIENT_DROP_SECONDS = float(os.environ.get("PETS_WS_SLOW_CLIENT_DROP_SECONDS", "20"))


def assert_whole_stream(messages: list[dict], order_id: str) -> None:
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1)), messages
    assert all(m["orderId"] == order_id for m in messages), messages
    assert messages[-1]["status"] in FINAL_STATUSES


@pytest.fixture(scope="module")
def two_orders():
    """Two finished orders: (orderId, callback URL) each."""
    orders = []
    for _ in range(2):
        placed = place_order()
        orders.append((placed["orderId"], ws_url(placed["clientCallbackUrl"])))
    for order_id, _ in orders:
        wait_for_final(order_id)
    return orders


def refused_status(url: str) -> int:
    try:
        with connect(url, open_timeout=10, close_timeout=2) as ws:
            try:
                message = ws.recv(timeout=2)
            except (TimeoutError, ConnectionClosed):
                message = None
            pytest.fail(f"{url} was accepted (first message {message!r})")
    except InvalidStatus as error:
        return error.response.status_code


def test_wrong_or_missing_tokens_are_refused(two_orders):
    (a, url_a), (b, url_b) = two_orders
    token_a, token_b = token_of(url_a), token_of(url_b)
    zero = "0" * 64
    queries = {
        "nothing": "",
        "no token": f"orderId={a}",
        "empty token": f"orderId={a}&token=",
        "no order": f"token={token_a}",
        "zero token": f"orderId={a}&token={zero}",
        "token not hex": f"orderId={a}&token={'z' * 64}",
        "short token": f"orderId={a}&token={token_a[:32]}",
        "long token": f"orderId={a}&token={token_a}00",
        "odd token": f"orderId={a}&token={token_a[:63]}",
        "one bit off": f"orderId={a}&token={token_a[:-1]}{'0' if token_a[-1] != '0' else '1'}",
        "other order's token": f"orderId={a}&token={token_b}",
        "unknown order, valid-looking token": f"orderId={uuid.uuid4()}&token={token_a}",
        "unknown order, random token": f"orderId={uuid.uuid4()}&token={os.urandom(32).hex()}",
        "empty order": f"orderId=&token={token_a}",
        "order with suffix": f"orderId={a}%00&token={token_a}",
        "order with space": f"orderId={a}%20&token={token_a}",
        "token twice, wrong first": f"orderId={a}&token={token_b}&token={token_a}",
        "order twice, wrong first": f"orderId={b}&orderId={a}&token={token_a}",
    }
    for name, query in queries.items():
        status = refused_status(notifier_ws(query))
        assert 400 <= status < 500, f"{name}: refused with {status}, expected a 4xx"


def test_a_token_opens_only_its_own_order(two_orders):
    """With parameters repeated, whatever the Notifier picks, it never streams an order the token is not for."""
    (a, url_a), (b, _) = two_orders
    token_a = token_of(url_a)
    for query in (f"orderId={a}&token={token_a}&orderId={b}", f"orderId={a}&orderId={b}&token={token_a}"):
        try:
            with connect(notifier_ws(query), open_timeout=10, close_timeout=2) as ws:
                messages = read_until_final(ws)
        except InvalidStatus:
            continue
        assert all(m["orderId"] == a for m in messages), f"{query}: streamed another order: {messages}"


def test_plain_http_on_the_websocket_path_is_refused():
    response = requests.get(f"{NOTIFIER_URL}/ws", timeout=10)
    assert 400 <= response.status_code < 500, response.status_code
    response = requests.get(f"{NOTIFIER_URL}/nope", timeout=10)
    assert response.status_code == 404
    assert response.json().get("message"), response.text


@pytest.mark.parametrize("frames", [
    pytest.param(["x" * 5000], id="text-5000"),
    pytest.param([b"\x00" * 5000], id="binary-5000"),
    pytest.param([json.dumps({"orderId": "x" * 6000})], id="json-6000"),
    pytest.param([["y" * 1000] * 6], id="fragmented-6000"),
    pytest.param(["z" * (1 << 20)], id="text-1MiB"),
])
def test_an_oversized_client_frame_closes_that_connection_only(two_orders, frames):
    (a, url_a), _ = two_orders
    with connect(url_a, open_timeout=10, close_timeout=2) as bystander:
        read_until_final(bystander)
        with connect(url_a, open_timeout=10, close_timeout=2, max_size=None) as ws:
            read_until_final(ws)
            closed = None
            try:
                for frame in frames:
                    ws.send(frame)
                while True:  # only a close may come now
                    ws.recv(timeout=10)
            except ConnectionClosed as error:
                closed = error
            except TimeoutError:
                pytest.fail("the connection stayed open after an oversized frame")
            code = closed.rcvd.code if closed.rcvd else None
            assert code in (1009, 1008, 1002), f"closed with {code} ({closed}), expected 1009 (message too big)"
        # The other connection of the same order still works, and so do new ones.
        bystander.send(json.dumps({"orderId": a}))
        latest = json.loads(bystander.recv(timeout=10))
        assert latest["orderId"] == a and latest["status"] in FINAL_STATUSES
    assert_whole_stream(follow(url_a), a)


def test_a_client_frame_of_4_kib_is_still_read(two_orders):
    (a, url_a), _ = two_orders
    with connect(url_a, open_timeout=10, close_timeout=2) as ws:
        read_until_final(ws)
        query = json.dumps({"orderId": a, "pad": ""})
        ws.send(json.dumps({"orderId": a, "pad": "p" * (4096 - len(query))}))  # exactly 4096 bytes
        ws.send(json.dumps({"orderId": a}))
        latest = json.loads(ws.recv(timeout=10))
        assert latest["orderId"] == a


MALFORMED = [
    pytest.param(b"\x00\x01binary", id="binary"),
    pytest.param("not json", id="text"),
    pytest.param("", id="empty"),
    pytest.param("[1,2,3]", id="json-array"),
    pytest.param("null", id="json-null"),
    pytest.param('{"orderId": 42}', id="order-number"),
    pytest.param('{"orderId": null}', id="order-null"),
    pytest.param('{"orderId": "00000000-0000-0000-0000-000000000000"}', id="other-order"),
    pytest.param('{"orderId": "' + "\\u0000" * 10 + '"}', id="nul"),
    pytest.param('{"orderId": "\\ud800"}', id="lone-surrogate"),
    pytest.param("{" * 2000, id="deep-open"),
    pytest.param("[" * 2000 + "]" * 2000, id="deep-nesting"),
]


@pytest.mark.parametrize("frame", MALFORMED)
def test_malformed_client_frames_are_ignored(two_orders, frame):
    (a, url_a), (b, url_b) = two_orders
    with connect(url_a, open_timeout=10, close_timeout=2) as ws:
        read_until_final(ws)
        ws.send(frame)
        ws.send(json.dumps({"orderId": a}))  # the seed's query still answers
        latest = json.loads(ws.recv(timeout=10))
        assert latest["orderId"] == a and latest["status"] in FINAL_STATUSES
    assert_whole_stream(follow(url_b), b)


def test_invalid_utf8_text_frame_closes_or_is_ignored(two_orders):
    """RFC 6455 says close with 1007; ignoring it is acceptable too. Either way the server keeps serving."""
    (a, url_a), (b, url_b) = two_orders
    with connect(url_a, open_timeout=10, close_timeout=2) as ws:
        read_until_final(ws)
        ws.send(b"{\"orderId\": \"\xff\xfe\"}", text=True)
        try:
            ws.send(json.dumps({"orderId": a}))
            latest = json.loads(ws.recv(timeout=10))
            assert latest["orderId"] == a
        except ConnectionClosed as closed:
            assert closed.rcvd is None or closed.rcvd.code in (1007, 1002), closed
    assert_whole_stream(follow(url_b), b)


def test_many_connections_to_one_order_all_get_everything(two_orders):
    (a, url_a), _ = two_orders
    with contextlib.ExitStack() as stack:
        # As many as the Notifier admits per order (16 by default; test_limits checks the cap itself).
        sockets = [stack.enter_context(connect(url_a, open_timeout=10, close_timeout=2)) for _ in range(14)]
        for ws in sockets:
            assert_whole_stream(read_until_final(ws), a)


# ---------------------------------------------------------------------------------------------------------------
# A client that never reads


class RawWebSocket:
    """A minimal client over a plain socket with a tiny receive buffer, so that not reading pushes back at once."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        self.sock.settimeout(10)
        self.sock.connect((parts.hostname, parts.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, f"closed during the handshake: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str, timeout: float) -> bool:
        """Sends one masked text frame; False when the server stopped taking data for `timeout` seconds."""
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(header + mask + masked)
            return True
        except (socket.timeout, BlockingIOError):
            return False

    def drained_to_close(self, quiet: float) -> bool:
        """Reads everything; True when the server closed the connection (EOF or a close frame)."""
        self.sock.settimeout(quiet)
        data = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                data += chunk
                if b"\x88" in data[-4096:] and self._has_close_frame(data):
                    return True
        except socket.timeout:
            return self._has_close_frame(data)
        except (ConnectionResetError, BrokenPipeError):
            return True

    @staticmethod
    def _has_close_frame(data: bytes) -> bool:
        i = 0
        while i + 2 <= len(data):
            opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
            i += 2
            if length == 126:
                if i + 2 > len(data):
                    return False
                length = struct.unpack("!H", data[i:i + 2])[0]
                i += 2
            elif length == 127:
                if i + 8 > len(data):
                    return False
                length = struct.unpack("!Q", data[i:i + 8])[0]
                i += 8
            if opcode == 0x8:
                return True
            i += length
        return False

    def close(self):
        self.sock.close()


def test_a_client_that_never_reads_slows_no_one_and_is_dropped():
    placed = place_order()
    order_id, url = placed["orderId"], ws_url(placed["clientCallbackUrl"])
    # Both connect while the saga runs: the second one gets the events live, next to the stuck one.
    slow = RawWebSocket(url)
    live = connect(url, open_timeout=10, close_timeout=2)
    query = json.dumps({"orderId": order_id})
    stop = threading.Event()
    sent = [0]

    def flood():
        # Every query makes the server write the latest status to a client that never reads it.
        while not stop.is_set() and sent[0] < 50_000:
            if not slow.send_text(query, timeout=5):
                break  # the server no longer takes our data either: that is fine too
            sent[0] += 1

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        with live:
            started = time.monotonic()
            assert_whole_stream(read_until_final(live, timeout=10), order_id)
            assert time.monotonic() - started < 10
        time.sleep(1.0)  # the slow client's buffers are full by now
        # A late client of the same order gets the whole history promptly...
        started = time.monotonic()
        assert_whole_stream(follow(url, timeout=10), order_id)
        assert time.monotonic() - started < 10
        # ... and so does a client of a new order.
        other = place_order()
        started = time.monotonic()
        assert_whole_stream(follow(ws_url(other["clientCallbackUrl"]), timeout=15), other["orderId"])
        assert time.monotonic() - started < 15
        # The slow client is dropped rather than buffered for without end.
        flooder.join(timeout=SLOW_CLIENT_DROP_SECONDS)
        stop.set()
        time.sleep(max(0.0, SLOW_CLIENT_DROP_SECONDS - (time.monotonic() - started)))
        assert slow.drained_to_close(quiet=5), \
            f"a client that read nothing while sent {sent[0]} queries was still connected after " \
            f"{SLOW_CLIENT_DROP_SECONDS:.0f}s"
    finally:
        stop.set()
        slow.close()
        flooder.join(timeout=10)
    # The Notifier still serves everyone.
    assert_whole_stream(follow(url, timeout=10), order_id)
    assert requests.get(f"{NOTIFIER_URL}/health", timeout=10).status_code == 200
