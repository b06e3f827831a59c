"""openapi.yaml is true: real responses of every route, happy and error cases, conform to it; it is served at
GET /openapi.yaml; and it is strict enough that a wrong response breaks it."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
import requests
import yaml
from openapi_spec_validator import validate as validate_spec

from conftest import (CAT, FISH, HTTP_TIMEOUT, OPENAPI_PATH, ORDER_URL, PRODUCT_IDS, check_contract, get_order,
                      load_spec, operator_headers, order_body, parse_stream, place_order, post, token_of,
                      wait_for_final)


def get(path: str, **kwargs) -> requests.Response:
    return requests.get(f"{ORDER_URL}{path}", timeout=kwargs.pop("timeout", HTTP_TIMEOUT), **kwargs)


@pytest.fixture(scope="module")
def completed_order():
    placed = place_order(order_body(lines=((CAT, 1), (FISH, 2)), post_code="2887"))
    return wait_for_final(placed["orderId"])


@pytest.fixture(scope="module")
def cancelled_order():
    placed = place_order(order_body(expiry="12/19"))
    return wait_for_final(placed["orderId"])


def test_the_document_is_valid_openapi_3():
    spec = load_spec()
    assert spec["openapi"].startswith("3.0")
    validate_spec(spec)
    paths = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert paths >= {("/catalogue", "get"), ("/orders", "post"), ("/order", "post"), ("/orders/{orderId}", "get"),
                     ("/orders", "get"), ("/health", "get"), ("/metrics", "get"), ("/config.json", "get"),
                     ("/openapi.yaml", "get")}


def test_the_document_is_served():
    response = check_contract(get("/openapi.yaml"))
    assert response.status_code == 200, f"GET /openapi.yaml: {response.status_code} {response.text[:200]}"
    assert "yaml" in response.headers.get("Content-Type", "")
    assert yaml.safe_load(response.content) == yaml.safe_load(OPENAPI_PATH.read_bytes()), \
        "the served document differs from openapi.yaml in the repository"


def test_catalogue():
    response = check_contract(get("/catalogue"))
    assert response.status_code == 200
    items = response.json()
    assert sorted(item["id"] for item in items) == sorted(PRODUCT_IDS)
    prices = [item["unitPrice"] for item in items]
    assert prices == sorted(prices, reverse=True)


def test_health():
    response = check_contract(get("/health"))
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_metrics():
    response = check_contract(get("/metrics"))
    assert response.status_code == 200
    assert "# TYPE " in response.text


def test_config():
    response = check_contract(get("/config.json"))
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/orders", "/order"])
def test_place_order(path):
    response = check_contract(post(path, order_body()))
    assert response.status_code == 202, response.text
    placed = response.json()
    assert placed["orderId"] in placed["clientCallbackUrl"]
    assert len(token_of(placed["clientCallbackUrl"])) == 64


def test_completed_order(completed_order):
    order = completed_order
    assert order["orderStatus"] == "completed", order
    assert order["paymentAmount"] == 150 + 2 * 10 + 5.5
    assert order["shippingCost"] == 5.5
    assert order["cardLast4"] == "4242"
    assert "errorType" not in order and "errorMessage" not in order
    # The same order, spelled in upper case.
    check_contract(get(f"/orders/{order['orderId'].upper()}"))


def test_cancelled_order(cancelled_order):
    order = cancelled_order
    assert order["orderStatus"] == "cancelled", order
    assert order["errorMessage"] == "Error, invalid credit card"
    assert order["errorType"]
    assert "paymentAmount" not in order
    assert [event["status"] for event in order["history"]][-1] == "failed"


def test_order_while_its_saga_runs():
    """Right after placing, the order is `placed` (or further on): whatever state it is in conforms."""
    placed = place_order()
    order = get_order(placed["orderId"])
    assert order["orderStatus"] in ("placed", "completed"), order
    wait_for_final(placed["orderId"])


@pytest.mark.parametrize("accept", [None, "text/event-stream"])
def test_stream_of_orders(accept, completed_order, cancelled_order):
    headers = dict(operator_headers(), **({"Accept": accept} if accept else {}))
    response = check_contract(get("/orders", headers=headers, timeout=60))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(accept or "application/x-ndjson")
    ids = [order["orderId"] for order in parse_stream(response)]
    assert completed_order["orderId"] in ids and cancelled_order["orderId"] in ids
    assert len(ids) == len(set(ids))


# Error responses


@pytest.mark.parametrize("body,message", [
    ({"basket": [], "shippingAddress": {}, "paymentDetail": {}}, "No items in the shopping cart."),
    ({"basket": [{"id": FISH, "quantity": 1}], "shippingAddress": {"address": "a", "city": "b", "postCode": "1"},
      "paymentDetail": {"cardNumber": "4242424242424242"}}, "Incomplete credit card details."),
])
def test_400_with_the_seed_messages(body, message):
    response = check_contract(post("/orders", body))
    assert response.status_code == 400
    assert response.json() == {"status": "failed", "message": message}


def test_400_malformed():
    response = check_contract(post("/orders", raw=b"{"))
    assert response.status_code == 400


def test_413():
    response = check_contract(post("/orders", raw=b"{" + b" " * 70_000 + b"}"))
    assert response.status_code == 413


def test_idempotent_retry_and_422():
    key = f"contract-{uuid.uuid4()}"
    body = order_body()
    first = check_contract(post("/orders", body, headers={"Idempotency-Key": key}))
    again = check_contract(post("/orders", body, headers={"Idempotency-Key": key}))
    assert first.status_code == again.status_code == 202
    assert first.json()["orderId"] == again.json()["orderId"]
    other = check_contract(post("/orders", order_body(), headers={"Idempotency-Key": key}))
    assert other.status_code == 422


def test_404_for_an_unknown_order():
    response = check_contract(get(f"/orders/{uuid.uuid4()}"))
    assert response.status_code == 404


# The document is strict: doctored responses break it.


def _doctored(response: requests.Response, change) -> requests.Response:
    fake = copy.copy(response)
    fake.headers = copy.copy(response.headers)
    body = json.loads(response.content)
    change(body)
    fake._content = json.dumps(body).encode()
    return fake


def _drop(key):
    return lambda body: body.pop(key)


@pytest.mark.parametrize("name,change", [
    ("full card number", lambda o: o.update(cardLast4="4242424242424242")),
    ("unknown status", lambda o: o.update(orderStatus="shipped")),
    ("extra field", lambda o: o.update(cardNumber="4242424242424242")),
    ("missing history", _drop("history")),
    ("missing basket", _drop("basket")),
    ("string amount", lambda o: o.update(paymentAmount="175.5")),
    ("fractional quantity", lambda o: o["basket"][0].update(quantity=1.5)),
    ("unknown step", lambda o: o["history"][1].update(step="teleport")),
    ("seq zero", lambda o: o["history"][0].update(seq=0)),
    ("bad timestamp", lambda o: o.update(createdOn="yesterday")),
    ("null error", lambda o: o.update(errorMessage=None)),
])
def test_a_wrong_order_breaks_the_document(completed_order, name, change):
    response = get(f"/orders/{completed_order['orderId']}")
    check_contract(response)
    with pytest.raises(AssertionError):
        check_contract(_doctored(response, change))


@pytest.mark.parametrize("name,change", [
    ("other status", lambda b: b.update(status="accepted")),
    ("no callback", _drop("clientCallbackUrl")),
    ("token not hex", lambda b: b.update(clientCallbackUrl=b["clientCallbackUrl"].replace("token=", "token=zz"))),
])
def test_a_wrong_placement_breaks_the_document(name, change):
    response = post("/orders", order_body())
    check_contract(response)
    with pytest.raises(AssertionError):
        check_contract(_doctored(response, change))


def test_wrong_status_content_type_or_error_shape_break_the_document():
    response = post("/orders", raw=b"{")
    check_contract(response)
    with pytest.raises(AssertionError):
        check_contract(_doctored(response, lambda b: b.update(status="error")))
    with pytest.raises(AssertionError):
        check_contract(_doctored(response, lambda b: b.pop("message")))
    undocumented = copy.copy(response)
    undocumented.status_code = 500
    with pytest.raises(AssertionError):
        check_contract(undocumented)
    html = copy.copy(response)
    html.headers = copy.copy(response.headers)
    html.headers["Content-Type"] = "text/html"
    with pytest.raises(AssertionError):
        check_contract(html)
    catalogue = get("/catalogue")
    with pytest.raises(AssertionError):
        check_contract(_doctored(catalogue, lambda items: items[0].pop("stock")))


def test_a_wrong_streamed_order_breaks_the_document(completed_order):
    response = get("/orders", headers=operator_headers(), timeout=60)
    check_contract(response)
    fake = copy.copy(response)
    fake._content = response.content + b'{"orderId":"x"}\n'
    with pytest.raises(AssertionError):
        check_contract(fake)
