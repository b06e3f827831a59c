"""Shared helpers and fixtures for the AWSomePets end-to-end suite.

The suite talks to a running system (started by `scripts/up`); base URLs come from the environment:
PETS_ORDER_URL, PETS_NOTIFIER_URL, PETS_INVENTORY_URL, PETS_PAYMENT_URL, PETS_ORCHESTRATOR_URL.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

import pets.orders
import pets.websocket
from pets.catalogue import Catalogue
from pets.secrets import operator_headers
from pets.services import INVENTORY_URL, NOTIFIER_URL, ORCHESTRATOR_URL, ORDER_URL, PAYMENT_URL, not_ready
from pets.waiting import wait_until
from pets.websocket import FINAL_STATUSES

# Every operator view and action needs the operator's bearer token (scripts/test exports it).
OPERATOR = operator_headers()

SERVICES = {
    "order": ORDER_URL,
    "notifier": NOTIFIER_URL,
    "inventory": INVENTORY_URL,
    "payment": PAYMENT_URL,
    "orchestrator": ORCHESTRATOR_URL,
}

HTTP_TIMEOUT = 10
FOLLOW_TIMEOUT = pets.websocket.FOLLOW_TIMEOUT

CARD_NUMBER = pets.orders.CARD_NUMBER
VALID_EXPIRY = pets.orders.VALID_EXPIRY


@functools.cache
def shop() -> Catalogue:
    """The catalogue the running system serves (read once, when a test first needs it)."""
    return Catalogue.fetch(ORDER_URL)


def product_id(title: str) -> str:
    return shop().id(title)


# ---------------------------------------------------------------------------------------------------------------
# Building requests


def order_body(
    lines: Iterable[tuple[str, int]] = (("Fish", 1),),
    *,
    post_code: str = "2880",
    expiry: str = VALID_EXPIRY,
    card_number: str = CARD_NUMBER,
    address: str | None = None,
) -> dict[str, Any]:
    """A valid order body. `lines` are (title or product id, quantity)."""
    by_title = shop().by_title
    return pets.orders.order_body(
        [(by_title[product]["id"] if product in by_title else product, quantity) for product, quantity in lines],
        address=address or f"1 Test Street ({uuid.uuid4().hex[:8]})", post_code=post_code, expiry=expiry,
        card_number=card_number, holder="E2E Tester", titles=shop().titles())


def items_total(body: dict[str, Any]) -> float:
    return sum(shop().price(line["id"]) * line["quantity"] for line in body["basket"])


def post_order(body: Any, *, path: str = "/orders", headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> requests.Response:
    """POST an order as JSON (or raw bytes) and return the response, whatever its status."""
    return pets.orders.post_order(ORDER_URL, body, path=path, headers=headers, raw=raw)


def place_order(body: dict[str, Any] | None = None, *, path: str = "/orders",
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Place an order that must be accepted; returns the 202 body (status, orderId, clientCallbackUrl)."""
    return pets.orders.place_order(ORDER_URL, body if body is not None else order_body(), path=path, headers=headers)


# ---------------------------------------------------------------------------------------------------------------
# The WebSocket


def ws_url(callback_url: str) -> str:
    """The callback URL as given, or re-pointed at PETS_NOTIFIER_URL when that is set explicitly."""
    if "PETS_NOTIFIER_URL" not in os.environ:
        return callback_url
    return pets.websocket.repoint(callback_url, NOTIFIER_URL)


def with_query(callback_url: str, query: str) -> str:
    """The callback URL with its query string replaced."""
    parts = urlsplit(ws_url(callback_url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def recv_json(ws, timeout: float) -> dict[str, Any]:
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), f"expected a text frame, got {message!r}"
    return json.loads(message)


def follow(callback_url: str, timeout: float = FOLLOW_TIMEOUT) -> list[dict[str, Any]]:
    """Connects to an order's WebSocket and returns every message up to and including the final one."""
    return pets.websocket.follow(ws_url(callback_url), timeout)


def assert_well_formed_stream(messages: list[dict[str, Any]], order_id: str) -> None:
    """seq 1..n with no gap or repeat, all for this order, exactly one final message and it is the last."""
    assert messages, "no messages"
    assert [m.get("seq") for m in messages] == list(range(1, len(messages) + 1)), \
        f"seqs are not 1..n: {[m.get('seq') for m in messages]}"
    assert all(m.get("orderId") == order_id for m in messages), messages
    assert all(m.get("status") for m in messages), messages
    finals = [m for m in messages if m["status"] in FINAL_STATUSES]
    assert finals == [messages[-1]], f"the final message must come once, last: {messages}"
    assert messages[0]["status"] == "started", messages[0]


# ---------------------------------------------------------------------------------------------------------------
# Reading state


def get_order(order_id: str) -> dict[str, Any]:
    response = requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, f"GET /orders/{order_id}: {response.status_code} {response.text}"
    return response.json()


def wait_for_order_status(order_id: str, statuses: str | Iterable[str] = ("completed", "cancelled"),
                          timeout: float = FOLLOW_TIMEOUT) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def check():
        order = get_order(order_id)
        return order if order.get("orderStatus") in wanted else None

    return wait_until(check, timeout, interval=0.1, message=f"order {order_id} in {wanted}")


def wait_for_history(order_id: str, last_seq: int, timeout: float = 5.0) -> dict[str, Any]:
    """The order once its history projection has caught up with `last_seq`."""
    def check():
        order = get_order(order_id)
        history = order.get("history") or []
        return order if history and history[-1].get("seq") == last_seq else None

    return wait_until(check, timeout, message=f"history of {order_id} reaching seq {last_seq}")


def inventory_stock() -> dict[str, int]:
    response = requests.get(f"{INVENTORY_URL}/stock", headers=OPERATOR, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return {row["productId"]: row["stock"] for row in response.json()}


def set_stock(product_id: str, stock: int) -> dict[str, Any]:
    """Restocks a pet as an operator: `PUT /stock/{productId}` on Inventory."""
    response = requests.put(f"{INVENTORY_URL}/stock/{product_id}", json={"stock": stock}, headers=OPERATOR,
                            timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, f"restock: {response.status_code} {response.text}"
    return response.json()


def catalogue() -> list[dict[str, Any]]:
    response = requests.get(f"{ORDER_URL}/catalogue", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def catalogue_stock() -> dict[str, int]:
    return {item["id"]: item["stock"] for item in catalogue()}


def reservations(order_id: str) -> list[dict[str, Any]]:
    response = requests.get(f"{INVENTORY_URL}/reservations/{order_id}", headers=OPERATOR, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def payments(order_id: str) -> dict[str, Any]:
    response = requests.get(f"{PAYMENT_URL}/payments/{order_id}", headers=OPERATOR, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def sagas_for(order_id: str) -> list[dict[str, Any]]:
    response = requests.get(f"{ORCHESTRATOR_URL}/sagas", params={"orderId": order_id}, headers=OPERATOR,
                            timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def stream_orders(accept: str | None = None) -> list[dict[str, Any]]:
    """Every order from GET /orders, parsed from NDJSON (default) or SSE."""
    headers = dict(OPERATOR, **({"Accept": accept} if accept else {}))
    with requests.get(f"{ORDER_URL}/orders", headers=headers, stream=True, timeout=HTTP_TIMEOUT) as response:
        assert response.status_code == 200, response.text
        text = response.content.decode()
    if accept == "text/event-stream":
        orders = []
        for block in text.split("\n\n"):
            if not block.strip():
                continue
            data = [line[len("data:"):].strip() for line in block.splitlines() if line.startswith("data:")]
            assert data, f"an SSE event without data: {block!r}"
            orders.append(json.loads("\n".join(data)))
        return orders
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session", autouse=True)
def system_is_up():
    """Fail fast, with a clear message, when the system is not running."""
    why = not_ready(SERVICES)
    if why:
        pytest.exit(why, returncode=2)
