"""Orders as a client sends them: the body of POST /orders, placing one, what it costs."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import requests

HTTP_TIMEOUT = 10
CARD_NUMBER = "4242424242424242"
VALID_EXPIRY = "12/30"
EXPIRED = "12/19"


def order_body(lines: Iterable[tuple[str, Any]], *, address: str, city: str = "Copenhagen",
               post_code: str = "2880", card_number: str = CARD_NUMBER, holder: str = "Tester",
               expiry: str = VALID_EXPIRY, titles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A valid order body; `lines` are (product id, quantity). With `titles` (id -> title), each line carries its
    product's title, as the shop's page sends it."""
    basket = []
    for product_id, quantity in lines:
        line: dict[str, Any] = {"id": product_id, "quantity": quantity}
        if titles is not None and product_id in titles:
            line["title"] = titles[product_id]
        basket.append(line)
    return {
        "basket": basket,
        "shippingAddress": {"address": address, "city": city, "postCode": post_code},
        "paymentDetail": {"cardNumber": card_number, "cardholderName": holder, "expiry": expiry, "ccv": "123"},
    }


def shipping_cost(post_code: str) -> float:
    """In dollars: 2 plus half the last digit of the post code."""
    return int(post_code[-1]) / 2 + 2


def post_order(order_url: str, body: Any, *, path: str = "/orders", headers: dict[str, str] | None = None,
               raw: bytes | None = None, timeout: float = HTTP_TIMEOUT) -> requests.Response:
    """POST an order as JSON (or raw bytes) and return the response, whatever its status."""
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{order_url}{path}", data=data, headers=all_headers, timeout=timeout)


def accepted(response: requests.Response) -> dict[str, Any]:
    """The body of a 202 to POST /orders (status, orderId, clientCallbackUrl); fails on any other answer."""
    assert response.status_code == 202, \
        f"POST {response.request.path_url}: expected 202, got {response.status_code}: {response.text}"
    placed = response.json()
    assert placed.get("status") == "placed", placed
    assert placed.get("orderId"), placed
    assert str(placed.get("clientCallbackUrl", "")).startswith("ws"), placed
    return placed


def place_order(order_url: str, body: dict[str, Any], *, path: str = "/orders",
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Places an order that must be accepted; returns the 202 body."""
    return accepted(post_order(order_url, body, path=path, headers=headers))
