"""The load of a chaos run: clients placing a mix of orders (good ones, expired cards, a quantity of 11) from the
catalogue the system serves, retrying each POST with its Idempotency-Key, and following every accepted order over
its WebSocket (reconnecting to either Notifier) until its final message."""

from __future__ import annotations

import argparse
import collections
import json
import random
import threading
import time
import uuid
from urllib.parse import urlsplit

import requests
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect as ws_connect

from chaos.client import get_json, session
from chaos.layout import BASE_PORT, HOST, REPLICAS, service_urls
from pets.catalogue import Catalogue
from pets.orders import EXPIRED, VALID_EXPIRY, order_body, shipping_cost
from pets.websocket import FINAL_STATUSES

class Order:
    def __init__(self, index: int, kind: str, body: dict, expected_cents: int):
        self.index = index
        self.kind = kind  # good | expired | qty11
        self.body = body
        self.expected_cents = expected_cents
        self.key = f"chaos-{uuid.uuid4()}"
        self.order_id: str | None = None
        self.callback: str | None = None
        self.post_attempts = 0
        self.post_errors: collections.Counter = collections.Counter()
        self.rejected: str | None = None
        # WebSocket
        self.messages: dict[int, dict] = {}
        self.final: dict | None = None
        self.final_at: float | None = None  # monotonic time the final message arrived
        self.connections = 0
        self.reconnects = 0
        self.idle_reconnects = 0
        self.refused = 0
        self.ws_issues: list[str] = []
        self.follow_done = threading.Event()


def make_order(index: int, rng: random.Random, shop: Catalogue) -> Order:
    roll = rng.random()
    kind = "good" if roll < 0.8 else ("expired" if roll < 0.9 else "qty11")
    ids = rng.sample(sorted(shop.ids()), rng.randint(1, 3))
    lines = [(pid, rng.randint(1, 3)) for pid in ids]
    if kind == "qty11":
        k = rng.randrange(len(lines))
        lines[k] = (lines[k][0], 11)
    post_code = f"28{rng.randint(0, 99):02d}"
    body = order_body(lines, address=f"{index} Chaos Street", post_code=post_code, holder="Chaos Tester",
                      expiry=EXPIRED if kind == "expired" else VALID_EXPIRY, titles=shop.titles())
    expected = sum(shop.price_cents(pid) * q for pid, q in lines) + round(shipping_cost(post_code) * 100)
    return Order(index, kind, body, expected)


class Load:
    """Clients placing orders (retrying with the same Idempotency-Key) and following each over its WebSocket."""

    def __init__(self, args: argparse.Namespace, rng_seed: int):
        self.args = args
        self.seed = rng_seed
        self.orders: list[Order] = []
        self.lock = threading.Lock()
        self.next_index = 0
        self.stop = threading.Event()       # no new orders
        self.give_up = threading.Event()    # followers stop waiting
        self.in_flight = threading.BoundedSemaphore(args.max_in_flight)
        self.placers: list[threading.Thread] = []
        self.started = 0.0
        self.finished_placing = threading.Event()
        self.rate = args.rate
        self.shop: Catalogue | None = None

    def start(self) -> None:
        # What the clients order: the catalogue the system serves.
        self.shop = Catalogue(get_json("Order", "/catalogue"))
        self.started = time.monotonic()
        for n in range(self.args.concurrency):
            t = threading.Thread(target=self._placer, name=f"placer-{n}", daemon=True)
            t.start()
            self.placers.append(t)
        threading.Thread(target=self._watch_placers, daemon=True).start()

    def _watch_placers(self) -> None:
        for t in self.placers:
            t.join()
        self.finished_placing.set()

    def _take_index(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.next_index >= self.args.orders:
                return None
            index = self.next_index
            self.next_index += 1
            return index

    def _placer(self) -> None:
        while True:
            index = self._take_index()
            if index is None:
                return
            if self.rate and self.rate > 0:
                due = self.started + index / self.rate
                while not self.stop.is_set() and time.monotonic() < due:
                    time.sleep(max(0.0, min(0.1, due - time.monotonic())))
            while not self.in_flight.acquire(timeout=0.2):
                if self.stop.is_set():
                    return
            if self.stop.is_set():
                self.in_flight.release()
                return
            order = make_order(index, random.Random(f"{self.seed}-{index}"), self.shop)
            with self.lock:
                self.orders.append(order)
            if self._place(order):
                threading.Thread(target=self._follow, args=(order,), name=f"ws-{index}", daemon=True).start()
            else:
                order.follow_done.set()
                self.in_flight.release()

    def _place(self, order: Order) -> bool:
        data = json.dumps(order.body).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": order.key}
        urls = service_urls("Order")
        deadline = time.monotonic() + self.args.accept_deadline
        attempt = 0
        while time.monotonic() < deadline and not self.give_up.is_set():
            url = urls[(order.index + attempt) % len(urls)] + "/orders"
            attempt += 1
            order.post_attempts = attempt
            try:
                response = session().post(url, data=data, headers=headers, timeout=10)
            except requests.RequestException as error:
                order.post_errors[type(error).__name__] += 1
            else:
                if response.status_code == 202:
                    try:
                        placed = response.json()
                        order_id, callback = placed["orderId"], placed["clientCallbackUrl"]
                    except (ValueError, KeyError, TypeError):
                        order.rejected = f"202 with a body that is not a placed order: {response.text[:200]}"
                        return False
                    order.order_id, order.callback = order_id, callback
                    return True
                if response.status_code < 500:
                    order.rejected = f"{response.status_code} {response.text[:200]}"
                    return False
                order.post_errors[f"HTTP {response.status_code}"] += 1
            time.sleep(min(0.1 * 2 ** min(attempt, 5), 2.0) * (0.5 + random.random()))
        return False

    def _follow(self, order: Order) -> None:
        try:
            self._follow_inner(order)
        except Exception as error:  # noqa: BLE001 - a bug here must show up as a failed order, not a hang
            order.ws_issues.append(f"follower crashed: {error!r}")
        finally:
            order.follow_done.set()
            self.in_flight.release()

    def _follow_inner(self, order: Order) -> None:
        parts = urlsplit(order.callback)
        target = f"{parts.path}?{parts.query}"
        ports = [BASE_PORT["Notifier"] + 100 * k for k in range(REPLICAS)]
        attempt = 0
        while order.final is None and not self.give_up.is_set():
            port = ports[(order.index + attempt) % len(ports)]
            if attempt:
                order.reconnects += 1
                time.sleep(min(0.1 * 2 ** min(attempt, 4), 1.5))
            attempt += 1
            try:
                with ws_connect(f"ws://{HOST}:{port}{target}", open_timeout=5, close_timeout=1,
                                **_ws_no_proxy) as ws:
                    order.connections += 1
                    expected = 1
                    while True:
                        try:
                            raw = ws.recv(timeout=self.args.ws_idle)
                        except TimeoutError:
                            order.idle_reconnects += 1
                            break
                        if self.give_up.is_set():
                            return
                        message = json.loads(raw)
                        seq = message.get("seq")
                        if message.get("orderId", "").lower() != order.order_id.lower():
                            order.ws_issues.append(f"message of another order: {message}")
                        if seq != expected:
                            order.ws_issues.append(
                                f"connection {order.connections} (port {port}): seq {seq} after {expected - 1}")
                        if isinstance(seq, int):
                            if seq in order.messages and order.messages[seq] != message:
                                order.ws_issues.append(
                                    f"seq {seq} differs between connections: {order.messages[seq]} vs {message}")
                            order.messages.setdefault(seq, message)
                            expected = seq + 1
                        if message.get("status") in FINAL_STATUSES:
                            order.final = message
                            order.final_at = time.monotonic()
                            return
            except InvalidStatus as error:
                order.refused += 1
                status = getattr(getattr(error, "response", None), "status_code", "?")
                if status in (401, 403):
                    order.ws_issues.append(f"WebSocket refused with {status}")
            except json.JSONDecodeError as error:
                order.ws_issues.append(f"a frame that is not JSON: {error}")
            except (WebSocketException, OSError, TimeoutError):
                pass

    def summary(self) -> dict:
        accepted = [o for o in self.orders if o.order_id]
        return {
            "placed": len(self.orders),
            "accepted": len(accepted),
            "notAccepted": len(self.orders) - len(accepted),
            "postRetries": sum(max(o.post_attempts - 1, 0) for o in self.orders),
            "wsConnections": sum(o.connections for o in accepted),
            "wsReconnects": sum(o.reconnects for o in accepted),
            "wsIdleReconnects": sum(o.idle_reconnects for o in accepted),
        }


try:  # websockets >= 15 reads proxy settings from the environment unless told not to
    import inspect

    _ws_no_proxy = {"proxy": None} if "proxy" in inspect.signature(ws_connect).parameters else {}
except (TypeError, ValueError):
    _ws_no_proxy = {}
