"""The operator's doors: every operator view and action needs the operator credential, the operator API answers
cross-origin requests from the shop's own origin only, and an order's status events go to that order's token
holder (the Notifier replays history with it) or the operator, nobody else."""

from __future__ import annotations

import uuid

import pytest
import requests

from conftest import (FISH, HTTP_TIMEOUT, INVENTORY_URL, ORCHESTRATOR_URL, ORDER_URL, PAYMENT_URL, check_contract,
                      operator_headers, order_body, place_order, token_of, wait_for_final)

SOME_ID = str(uuid.uuid4())
OTHER_ORIGIN = "https://evil.example"

# Every operator route: (method, URL).
OPERATOR_ROUTES = [
    ("GET", f"{ORCHESTRATOR_URL}/sagas"),
    ("GET", f"{ORCHESTRATOR_URL}/sagas/counts"),
    ("GET", f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}"),
    ("POST", f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}/retry"),
    ("GET", f"{ORCHESTRATOR_URL}/orders/{SOME_ID}/events"),
    ("GET", f"{ORDER_URL}/orders"),
    ("GET", f"{INVENTORY_URL}/stock"),
    ("PUT", f"{INVENTORY_URL}/stock/{FISH}"),
    ("GET", f"{INVENTORY_URL}/reservations/{SOME_ID}"),
    ("GET", f"{PAYMENT_URL}/payments/{SOME_ID}"),
]


def _shop_origin() -> str:
    return ORDER_URL.rstrip("/")


def _assert_401(response: requests.Response, what: str) -> None:
    assert response.status_code == 401, f"{what}: {response.status_code} {response.text[:200]}"
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    body = response.json()
    assert body["status"] == "failed" and "operator" in body["message"].lower(), body


@pytest.mark.parametrize("method,url", OPERATOR_ROUTES, ids=[f"{m} {u.split('//')[1]}" for m, u in OPERATOR_ROUTES])
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-operator-token", "Basic b3BlcmF0b3I6eA==", "Bearer"])
def test_operator_routes_without_the_operator_token_are_401(method, url, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.request(method, url, headers=headers, json={"stock": 5}, timeout=HTTP_TIMEOUT)
    _assert_401(response, f"{method} {url} with {authorization!r}")


def test_stream_of_orders_without_operator_token_is_a_documented_401():
    response = check_contract(requests.get(f"{ORDER_URL}/orders", timeout=HTTP_TIMEOUT))
    _assert_401(response, "GET /orders")


def test_retry_without_operator_token_is_401():
    _assert_401(requests.post(f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}/retry", timeout=HTTP_TIMEOUT), "retry")
    with_token = requests.post(f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}/retry", headers=operator_headers(),
                               timeout=HTTP_TIMEOUT)
    assert with_token.status_code == 404, with_token.text


def test_the_operator_token_opens_every_operator_view():
    for method, url in OPERATOR_ROUTES:
        if method != "GET":
            continue
        response = requests.get(url, headers=operator_headers(), timeout=HTTP_TIMEOUT)
        assert response.status_code in (200, 404), f"GET {url}: {response.status_code} {response.text[:200]}"


def test_cross_origin_preflight_from_other_origin_is_refused():
    response = requests.options(
        f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}/retry",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"},
        timeout=HTTP_TIMEOUT)
    assert response.status_code == 403, f"{response.status_code} {response.headers}"
    assert "Access-Control-Allow-Origin" not in response.headers, response.headers


def test_cross_origin_request_from_other_origin_is_refused_even_with_the_token():
    for method in ("GET", "POST"):
        path = "/sagas" if method == "GET" else f"/sagas/{SOME_ID}/retry"
        response = requests.request(method, f"{ORCHESTRATOR_URL}{path}",
                                    headers={"Origin": OTHER_ORIGIN, **operator_headers()}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert response.headers.get("Access-Control-Allow-Origin") in (None, ""), response.headers


def test_cross_origin_preflight_from_the_shop_is_allowed_with_the_authorization_header():
    origin = _shop_origin()
    response = requests.options(
        f"{ORCHESTRATOR_URL}/sagas/{SOME_ID}/retry",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"},
        timeout=HTTP_TIMEOUT)
    assert response.status_code in (200, 204), f"{response.status_code} {response.text[:200]}"
    assert response.headers.get("Access-Control-Allow-Origin") == origin, response.headers
    assert "authorization" in response.headers.get("Access-Control-Allow-Headers", "").lower(), response.headers
    assert "POST" in response.headers.get("Access-Control-Allow-Methods", ""), response.headers
    listed = requests.get(f"{ORCHESTRATOR_URL}/sagas/counts", headers={"Origin": origin, **operator_headers()},
                          timeout=HTTP_TIMEOUT)
    assert listed.status_code == 200, listed.text
    assert listed.headers.get("Access-Control-Allow-Origin") == origin, listed.headers
    assert listed.headers.get("Access-Control-Allow-Origin") != "*"


def test_an_orders_events_are_given_to_its_token_and_to_the_operator_only():
    mine = place_order(order_body(marker="events-token"))
    other = place_order(order_body(marker="events-token-other"))
    wait_for_final(mine["orderId"])
    url = f"{ORCHESTRATOR_URL}/orders/{mine['orderId']}/events"
    _assert_401(requests.get(url, timeout=HTTP_TIMEOUT), "no token")
    _assert_401(requests.get(url, headers={"Authorization": f"Bearer {token_of(other['clientCallbackUrl'])}"},
                             timeout=HTTP_TIMEOUT), "another order's token")
    by_token = requests.get(url, headers={"Authorization": f"Bearer {token_of(mine['clientCallbackUrl'])}"},
                            timeout=HTTP_TIMEOUT)
    assert by_token.status_code == 200, by_token.text
    events = by_token.json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)) and events[-1]["status"] == "success"
    by_operator = requests.get(url, headers=operator_headers(), timeout=HTTP_TIMEOUT)
    assert by_operator.status_code == 200 and by_operator.json() == events


def test_restock_refuses_bad_input():
    url = f"{INVENTORY_URL}/stock/{FISH}"
    for body in (b"{", b'{"stock": -1}', b'{"stock": 1.5}', b'{"stock": "7"}', b'{"stock": 99999999999}', b"[]"):
        response = requests.put(url, data=body, headers={"Content-Type": "application/json", **operator_headers()},
                                timeout=HTTP_TIMEOUT)
        assert response.status_code == 400, f"{body!r}: {response.status_code} {response.text[:200]}"
        assert response.json()["message"], response.text
    missing = requests.put(f"{INVENTORY_URL}/stock/{SOME_ID}", json={"stock": 3}, headers=operator_headers(),
                           timeout=HTTP_TIMEOUT)
    assert missing.status_code == 404, missing.text
