"""Bad orders are refused with a clear JSON message and leave nothing behind."""

import json
import uuid

import pytest

from conftest import order_body, post_order, stream_orders


def _drop(path):
    def change(body):
        *parents, last = path
        target = body
        for key in parents:
            target = target[key]
        del target[last]
    return change


def _set(path, value):
    def change(body):
        *parents, last = path
        target = body
        for key in parents:
            target = target[key]
        target[last] = value
    return change


# (case id, change to a valid body, expected status, expected message or a part of it)
CASES = [
    ("empty basket", _set(["basket"], []), 400, "No items in the shopping cart."),
    ("missing basket", _drop(["basket"]), 400, "No items in the shopping cart."),
    ("missing card number", _drop(["paymentDetail", "cardNumber"]), 400, "Incomplete credit card details."),
    ("empty card number", _set(["paymentDetail", "cardNumber"], ""), 400, "Incomplete credit card details."),
    ("empty cardholder", _set(["paymentDetail", "cardholderName"], ""), 400, "Incomplete credit card details."),
    ("missing expiry", _drop(["paymentDetail", "expiry"]), 400, "Incomplete credit card details."),
    ("empty ccv", _set(["paymentDetail", "ccv"], ""), 400, "Incomplete credit card details."),
    ("missing payment detail", _drop(["paymentDetail"]), 400, "Incomplete credit card details."),
    ("unknown product", _set(["basket", 0, "id"], "00000000-0000-0000-0000-000000000000"), 400,
     "00000000-0000-0000-0000-000000000000"),
    ("quantity 0", _set(["basket", 0, "quantity"], 0), 400, None),
    ("negative quantity", _set(["basket", 0, "quantity"], -1), 400, None),
    ("quantity over 1000", _set(["basket", 0, "quantity"], 1001), 400, None),
    ("quantity as string", _set(["basket", 0, "quantity"], "2"), 400, None),
    ("fractional quantity", _set(["basket", 0, "quantity"], 1.5), 400, None),
    ("basket not a list", _set(["basket"], "cat"), 400, None),
    ("post code as number", _set(["shippingAddress", "postCode"], 2880), 400, None),
]


def _orders_with_address(address):
    return [o["orderId"] for o in stream_orders() if (o.get("shippingAddress") or {}).get("address") == address]


def _assert_refused(response, status, message):
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text!r}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert body.get("status") == "failed", body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    if message:
        assert message in body["message"], body
    assert "orderId" not in body and "clientCallbackUrl" not in body, body


@pytest.mark.parametrize("change,status,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_order_is_refused_and_creates_nothing(change, status, message):
    marker = f"e2e-bad-{uuid.uuid4()}"
    body = order_body([("Fish", 1)], address=marker)
    change(body)
    _assert_refused(post_order(body), status, message)
    assert _orders_with_address(marker) == []


@pytest.mark.parametrize("raw", [b'{"basket": [', b"", b"not json", b"[1, 2]", b"\xff\xfe"],
                         ids=["truncated", "empty", "text", "array", "not utf-8"])
def test_malformed_body_is_refused(raw):
    before = len(stream_orders())
    _assert_refused(post_order(None, raw=raw), 400, None)
    assert len(stream_orders()) == before


def test_truncated_order_creates_nothing():
    marker = f"e2e-bad-{uuid.uuid4()}"
    raw = json.dumps(order_body([("Fish", 1)], address=marker)).encode()[:-1]
    _assert_refused(post_order(None, raw=raw), 400, None)
    assert _orders_with_address(marker) == []


def test_body_over_64_kib_is_refused_with_413():
    marker = f"e2e-big-{uuid.uuid4()}"
    body = order_body([("Fish", 1)], address=marker + "x" * (70 * 1024))
    _assert_refused(post_order(body), 413, None)
    assert _orders_with_address(marker + "x" * (70 * 1024)) == []
    # The service is still serving afterwards.
    assert post_order(order_body([]), path="/orders").status_code == 400


def test_missing_shipping_address_is_refused():
    before = len(stream_orders())
    body = order_body([("Fish", 1)])
    del body["shippingAddress"]
    _assert_refused(post_order(body), 400, None)
    assert len(stream_orders()) == before


def test_seed_path_refuses_bad_input_the_same_way():
    marker = f"e2e-bad-{uuid.uuid4()}"
    body = order_body([], address=marker)
    _assert_refused(post_order(body, path="/order"), 400, "No items in the shopping cart.")
    assert _orders_with_address(marker) == []
