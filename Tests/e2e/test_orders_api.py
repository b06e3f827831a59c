"""Reading orders back: one by one, and the whole stream (NDJSON and server-sent events)."""

import json
import uuid

import requests

from conftest import (
    CARD_NUMBER, OPERATOR, ORDER_URL, follow, get_order, order_body, place_order, stream_orders, wait_for_history,
)


def test_unknown_order_is_404_json():
    response = requests.get(f"{ORDER_URL}/orders/{uuid.uuid4()}", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "failed" and body["message"], body


def test_order_is_readable_at_once_after_placing():
    body = order_body([("Bird", 1)], post_code="2880")
    placed = place_order(body)
    order = get_order(placed["orderId"])
    assert order["orderId"] == placed["orderId"]
    assert order["orderStatus"] in ("placed", "completed")
    assert order["shippingAddress"] == body["shippingAddress"]
    assert order["createdOn"] and order["updatedOn"]
    follow(placed["clientCallbackUrl"])


def test_ndjson_stream_contains_a_just_placed_order():
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    with requests.get(f"{ORDER_URL}/orders", headers=OPERATOR, stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert "ndjson" in response.headers["Content-Type"] or "json" in response.headers["Content-Type"]
        lines = [line for line in response.iter_lines() if line]
    orders = [json.loads(line) for line in lines]
    ids = [o["orderId"] for o in orders]
    assert placed["orderId"] in ids
    assert len(ids) == len(set(ids)), "an order streamed twice"
    for order in orders:
        assert order["orderStatus"] in ("placed", "completed", "cancelled"), order
    follow(placed["clientCallbackUrl"])


def test_event_stream_contains_a_just_placed_order():
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    with requests.get(f"{ORDER_URL}/orders", headers={"Accept": "text/event-stream", **OPERATOR}, stream=True,
                      timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.content.decode()
    assert text.startswith("data: ")
    assert text.endswith("\n\n")
    orders = stream_orders("text/event-stream")
    assert placed["orderId"] in [o["orderId"] for o in orders]
    assert len(orders) >= 1
    follow(placed["clientCallbackUrl"])


def test_full_card_number_is_never_returned():
    card = "4000056655665556"
    body = order_body([("Fish", 1)], post_code="2880", card_number=card)
    placed = place_order(body)
    messages = follow(placed["clientCallbackUrl"])
    assert card not in json.dumps(messages)
    order_id = placed["orderId"]

    single = requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=10).text
    assert order_id in single
    assert card not in single
    assert json.loads(single)["cardLast4"] == card[-4:]

    for accept in (None, "text/event-stream"):
        headers = dict(OPERATOR, **({"Accept": accept} if accept else {}))
        text = requests.get(f"{ORDER_URL}/orders", headers=headers, timeout=10).text
        assert order_id in text
        assert card not in text
        assert CARD_NUMBER not in text


def test_streamed_order_is_the_same_as_the_single_order_view():
    placed = place_order(order_body([("Bird", 1), ("Fish", 1)], post_code="2883"))
    order_id = placed["orderId"]
    messages = follow(placed["clientCallbackUrl"])
    single = wait_for_history(order_id, messages[-1]["seq"])
    for accept in (None, "text/event-stream"):
        [streamed] = [o for o in stream_orders(accept) if o["orderId"] == order_id]
        differing = {k: (streamed.get(k), single.get(k)) for k in set(streamed) | set(single)
                     if streamed.get(k) != single.get(k)}
        assert not differing, f"GET /orders ({accept or 'NDJSON'}) differs from GET /orders/{{id}}: {differing}"
