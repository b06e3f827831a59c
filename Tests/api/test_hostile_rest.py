"""Hostile input on every REST route of the Order service.

Whatever a client sends, the answer is a 4xx with a JSON body `{"status":"failed","message":...}` that the OpenAPI
document allows, never a 5xx, never a crash (the service still answers afterwards), and nothing is written: no order
with the request's marker appears in GET /orders and the number of orders does not change.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Callable

import pytest
import requests

from conftest import (FISH, HTTP_TIMEOUT, ORDER_URL, all_orders_text, check_contract, operator_headers, order_body,
                      order_count, post, raw_http, unique_marker, wait_healthy)

PLACE_PATHS = ("/orders", "/order")


def assert_json_failure(response: requests.Response, statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    """A 4xx (one of `statuses`) with a JSON failure body that the document allows."""
    assert response.status_code < 500, \
        f"{response.request.method} {response.request.url}: server error {response.status_code}: {response.text[:300]}"
    assert response.status_code in statuses, \
        f"{response.request.method} {response.request.url}: expected {statuses}, got {response.status_code}: " \
        f"{response.text[:300]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        f"not JSON: {response.headers.get('Content-Type')!r} {response.text[:200]!r}"
    body = response.json()
    assert body.get("status") == "failed" and isinstance(body.get("message"), str) and body["message"].strip(), body
    return body


class NothingWritten:
    """Counts the orders before and after, and looks for the marker."""

    def __init__(self, marker: str):
        self.marker = marker

    def __enter__(self):
        self.before = order_count()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        text = all_orders_text()
        assert self.marker not in text, f"an order with marker {self.marker} was written"
        after = sum(1 for line in text.split("\n") if line.strip())
        assert after == self.before, f"the number of orders changed from {self.before} to {after}"
        return False


# ---------------------------------------------------------------------------------------------------------------
# POST /orders and POST /order: bodies that must be refused with 400


def _set(path: tuple, value: Any) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(path: tuple) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


LINE = ("basket", 0)
ADDRESS = ("shippingAddress",)
CARD = ("paymentDetail",)

# (case id, change to a valid body). Each body still carries its marker in the street address (where that field is
# not itself the subject), so a wrongly accepted order would be found.
BODY_CHANGES: list[tuple[str, Callable[[dict], None]]] = [
    # wrong types
    ("basket-string", _set(("basket",), "x")),
    ("basket-object", _set(("basket",), {"id": FISH, "quantity": 1})),
    ("basket-number", _set(("basket",), 1)),
    ("line-string", _set(LINE, "x")),
    ("line-number", _set(LINE, 7)),
    ("line-null", _set(LINE, None)),
    ("line-array", _set(LINE, [FISH, 1])),
    ("id-number", _set(LINE + ("id",), 5)),
    ("id-array", _set(LINE + ("id",), [FISH])),
    ("id-object", _set(LINE + ("id",), {"id": FISH})),
    ("id-bool", _set(LINE + ("id",), True)),
    ("quantity-string", _set(LINE + ("quantity",), "1")),
    ("quantity-bool", _set(LINE + ("quantity",), True)),
    ("quantity-null", _set(LINE + ("quantity",), None)),
    ("quantity-array", _set(LINE + ("quantity",), [1])),
    ("quantity-object", _set(LINE + ("quantity",), {"n": 1})),
    ("address-object-string", _set(ADDRESS, "1 Test Street, 2880")),
    ("address-object-array", _set(ADDRESS, ["1 Test Street"])),
    ("street-number", _set(ADDRESS + ("address",), 1)),
    ("city-array", _set(ADDRESS + ("city",), ["Copenhagen"])),
    ("postcode-number", _set(ADDRESS + ("postCode",), 2880)),
    ("payment-string", _set(CARD, "4242424242424242")),
    ("card-number-number", _set(CARD + ("cardNumber",), 4242424242424242)),
    ("holder-bool", _set(CARD + ("cardholderName",), True)),
    ("expiry-number", _set(CARD + ("expiry",), 1230)),
    ("ccv-number", _set(CARD + ("ccv",), 123)),
    # missing fields, empty values
    ("no-basket", _drop(("basket",))),
    ("null-basket", _set(("basket",), None)),
    ("empty-basket", _set(("basket",), [])),
    ("no-line-id", _drop(LINE + ("id",))),
    ("no-quantity", _drop(LINE + ("quantity",))),
    ("no-shipping-address", _drop(ADDRESS)),
    ("no-street", _drop(ADDRESS + ("address",))),
    ("no-city", _drop(ADDRESS + ("city",))),
    ("no-postcode", _drop(ADDRESS + ("postCode",))),
    ("blank-city", _set(ADDRESS + ("city",), "   ")),
    ("empty-postcode", _set(ADDRESS + ("postCode",), "")),
    ("no-payment", _drop(CARD)),
    ("no-card-number", _drop(CARD + ("cardNumber",))),
    ("no-holder", _drop(CARD + ("cardholderName",))),
    ("no-expiry", _drop(CARD + ("expiry",))),
    ("no-ccv", _drop(CARD + ("ccv",))),
    ("blank-holder", _set(CARD + ("cardholderName",), " \t ")),
    ("empty-ccv", _set(CARD + ("ccv",), "")),
    # unknown products
    ("id-unknown-word", _set(LINE + ("id",), "nope")),
    ("id-unknown-uuid", _set(LINE + ("id",), str(uuid.uuid4()))),
    ("id-unknown-upper-uuid", _set(LINE + ("id",), str(uuid.uuid4()).upper())),
    ("id-empty", _set(LINE + ("id",), "")),
    ("id-sql", _set(LINE + ("id",), "' OR '1'='1")),
    ("id-long", _set(LINE + ("id",), "9" * 10_000)),
    ("id-nul", _set(LINE + ("id",), FISH + "\u0000")),
    ("id-one-known-one-unknown", _set(("basket",), [{"id": FISH, "quantity": 1}, {"id": "nope", "quantity": 1}])),
    # quantities: zero, negative, huge, fractional
    ("quantity-zero", _set(LINE + ("quantity",), 0)),
    ("quantity-negative", _set(LINE + ("quantity",), -1)),
    ("quantity-very-negative", _set(LINE + ("quantity",), -1_000_000)),
    ("quantity-negative-zero", _set(LINE + ("quantity",), -0.0)),
    ("quantity-1001", _set(LINE + ("quantity",), 1001)),
    ("quantity-million", _set(LINE + ("quantity",), 1_000_000)),
    ("quantity-int64-overflow", _set(LINE + ("quantity",), 2**63)),
    ("quantity-2^64", _set(LINE + ("quantity",), 2**64 + 1)),
    ("quantity-1e308", _set(LINE + ("quantity",), 1e308)),
    ("quantity-half", _set(LINE + ("quantity",), 0.5)),
    ("quantity-one-and-a-half", _set(LINE + ("quantity",), 1.5)),
    ("quantity-tiny", _set(LINE + ("quantity",), 1e-9)),
    ("quantity-almost-two", _set(LINE + ("quantity",), 1.999)),
    ("too-many-lines", _set(("basket",), [{"id": FISH, "quantity": 1}] * 101)),
    # card details
    ("card-letters", _set(CARD + ("cardNumber",), "4242abcd42424242")),
    ("card-11-digits", _set(CARD + ("cardNumber",), "42424242424")),
    ("card-20-digits", _set(CARD + ("cardNumber",), "4" * 20)),
    ("card-arabic-digits", _set(CARD + ("cardNumber",), "\u0664\u0662" * 8)),
    ("card-fullwidth-digits", _set(CARD + ("cardNumber",), "\uff14\uff12" * 8)),
    ("expiry-no-slash", _set(CARD + ("expiry",), "1230")),
    ("expiry-dash", _set(CARD + ("expiry",), "12-30")),
    ("expiry-letters", _set(CARD + ("expiry",), "ab/cd")),
    ("expiry-long", _set(CARD + ("expiry",), "12/2030")),
    ("ccv-short", _set(CARD + ("ccv",), "12")),
    ("ccv-long", _set(CARD + ("ccv",), "12345")),
    ("ccv-letters", _set(CARD + ("ccv",), "abc")),
    # address
    ("postcode-no-digit", _set(ADDRESS + ("postCode",), "ABC")),
    ("postcode-arabic-digit", _set(ADDRESS + ("postCode",), "28\u0668\u0660")),
    ("street-too-long", _set(ADDRESS + ("address",), "x" * 201)),
    ("city-too-long", _set(ADDRESS + ("city",), "x" * 101)),
    ("postcode-too-long", _set(ADDRESS + ("postCode",), "1" * 21)),
    ("holder-too-long", _set(CARD + ("cardholderName",), "x" * 101)),
    # characters PostgreSQL cannot store in text or jsonb
    ("street-nul", lambda b: b["shippingAddress"].update(address=b["shippingAddress"]["address"] + "\u0000x")),
    ("city-nul", _set(ADDRESS + ("city",), "Copen\u0000hagen")),
    ("postcode-nul", _set(ADDRESS + ("postCode",), "28\u000080")),
    ("holder-nul", _set(CARD + ("cardholderName",), "API\u0000Tester")),
    ("street-lone-surrogate", lambda b: b["shippingAddress"].update(
        address=b["shippingAddress"]["address"] + "\ud800")),
]


def _body_for(change: Callable[[dict], None], marker: str) -> bytes:
    body = order_body(marker=marker)
    change(body)
    # ensure_ascii: lone surrogates and NUL travel as \u escapes, as a JavaScript client would send them.
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", PLACE_PATHS)
@pytest.mark.parametrize("case,change", BODY_CHANGES, ids=[case for case, _ in BODY_CHANGES])
def test_invalid_order_is_refused_with_400_and_nothing_written(path, case, change):
    marker = unique_marker(case)
    with NothingWritten(marker):
        response = post(path, raw=_body_for(change, marker))
        assert_json_failure(response)
        check_contract(response)


# Bodies that are not a JSON object at all.
def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _after_marker(marker: str, raw: bytes) -> bytes:
    """A valid order whose street address has `raw` bytes after the marker."""
    return json.dumps(order_body(marker=marker)).encode().replace(marker.encode(), marker.encode() + raw)


RAW_BODIES: list[tuple[str, Callable[[str], bytes]]] = [
    ("empty", lambda m: b""),
    ("whitespace", lambda m: b" \r\n\t "),
    ("open-brace", lambda m: b"{"),
    ("truncated", lambda m: json.dumps(order_body(marker=m)).encode()[:-1]),
    ("trailing-garbage", lambda m: json.dumps(order_body(marker=m)).encode() + b"}}"),
    ("two-objects", lambda m: json.dumps(order_body(marker=m)).encode() * 2),
    ("single-quotes", lambda m: json.dumps(order_body(marker=m)).replace('"', "'").encode()),
    ("nan-quantity", lambda m: json.dumps(order_body(marker=m)).replace('"quantity": 1', '"quantity": NaN').encode()),
    ("infinity-quantity", lambda m: json.dumps(order_body(marker=m)).replace(
        '"quantity": 1', '"quantity": Infinity').encode()),
    ("huge-literal-quantity", lambda m: json.dumps(order_body(marker=m)).replace(
        '"quantity": 1', '"quantity": 1' + "0" * 400).encode()),
    ("exponent-overflow-quantity", lambda m: json.dumps(order_body(marker=m)).replace(
        '"quantity": 1', '"quantity": 1e400').encode()),
    ("comment", lambda m: b"/* order */" + json.dumps(order_body(marker=m)).encode()),
    ("null", lambda m: b"null"),
    ("array", lambda m: b"[]"),
    ("string", lambda m: b'"order"'),
    ("number", lambda m: b"42"),
    ("true", lambda m: b"true"),
    ("deeply-nested-arrays", lambda m: _nested(30_000)),
    ("deeply-nested-objects", lambda m: _nested_objects(10_000)),
    ("deeply-nested-basket", lambda m: b'{"basket":' + _nested(20_000) + b"}"),
    ("form-encoded", lambda m: f"basket=1&address={m}".encode()),
    # invalid UTF-8 inside a string
    ("utf8-ff-fe", lambda m: _after_marker(m, b"\xff\xfe")),
    ("utf8-overlong", lambda m: _after_marker(m, b"\xc0\xaf")),
    ("utf8-truncated", lambda m: _after_marker(m, b"\xe2\x82")),
    ("utf8-surrogate-bytes", lambda m: _after_marker(m, b"\xed\xa0\x80")),
    ("utf8-in-key", lambda m: json.dumps(order_body(marker=m)).encode().replace(b'"basket"', b'"bask\xffet"')),
    ("utf8-invalid-in-title", lambda m: json.dumps(order_body(marker=m)).encode().replace(
        b'"quantity"', b'"title": "Fi\xe9sh", "quantity"')),
    # the server ignores unknown fields, but the body as a whole is still not UTF-8 (a Latin-1 "\xe9")
    ("utf8-invalid-in-unknown-field", lambda m: json.dumps(order_body(marker=m) | {"note": "caf\u00e9"},
                                                           ensure_ascii=False).encode("latin-1")),
]


@pytest.mark.parametrize("path", PLACE_PATHS)
@pytest.mark.parametrize("case,make", RAW_BODIES, ids=[case for case, _ in RAW_BODIES])
def test_malformed_body_is_refused_with_400_and_nothing_written(path, case, make):
    marker = unique_marker(case)
    with NothingWritten(marker):
        response = post(path, raw=make(marker))
        assert_json_failure(response)
        check_contract(response)


# ---------------------------------------------------------------------------------------------------------------
# Oversized bodies: 64 KiB at most


def _padded(marker: str, size: int) -> bytes:
    """A valid order (unknown fields are ignored) padded to exactly `size` bytes."""
    body = order_body(marker=marker)
    body["padding"] = ""
    base = len(json.dumps(body).encode())
    body["padding"] = "p" * (size - base)
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


@pytest.mark.parametrize("path", PLACE_PATHS)
@pytest.mark.parametrize("size", [65_537, 70_000, 1 << 20, 8 << 20])
def test_oversized_body_is_refused_with_413(path, size):
    marker = unique_marker("oversized")
    with NothingWritten(marker):
        response = post(path, raw=_padded(marker, size), timeout=60)
        assert_json_failure(response, (413,))
        check_contract(response)


def test_oversized_chunked_body_is_refused_with_413():
    marker = unique_marker("chunked")
    data = _padded(marker, 4 << 20)

    def chunks():
        for start in range(0, len(data), 16384):
            yield data[start:start + 16384]

    with NothingWritten(marker):
        try:
            response = requests.post(f"{ORDER_URL}/orders", data=chunks(),
                                     headers={"Content-Type": "application/json"}, timeout=60)
        except requests.ConnectionError:
            pytest.fail("the connection was dropped instead of answering 413 to an oversized chunked body")
        assert_json_failure(response, (413,))


def test_a_body_of_exactly_64_kib_is_accepted():
    """The limit is 64 KiB: a valid order of exactly 65536 bytes is still placed (202)."""
    marker = unique_marker("limit")
    response = post("/orders", raw=_padded(marker, 65_536))
    check_contract(response)
    assert response.status_code == 202, response.text
    assert marker in all_orders_text()


# ---------------------------------------------------------------------------------------------------------------
# Headers


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_invalid_idempotency_key_is_refused(key):
    marker = unique_marker("idempotency")
    with NothingWritten(marker):
        response = requests.post(
            f"{ORDER_URL}/orders", data=json.dumps(order_body(marker=marker)),
            headers={"Content-Type": "application/json", "Idempotency-Key": key}, timeout=HTTP_TIMEOUT)
        assert_json_failure(response)
        check_contract(response)


def test_idempotency_key_reused_for_another_body_is_refused_with_422():
    key = f"api-{uuid.uuid4()}"
    first = post("/orders", order_body(), headers={"Idempotency-Key": key})
    check_contract(first)
    assert first.status_code == 202, first.text
    marker = unique_marker("conflict")
    with NothingWritten(marker):
        second = post("/orders", order_body(marker=marker), headers={"Idempotency-Key": key})
        assert_json_failure(second, (422,))
        check_contract(second)


# ---------------------------------------------------------------------------------------------------------------
# GET /orders/{orderId} with ids that name no order


ODD_IDS = [
    "nope", str(uuid.uuid4()), str(uuid.uuid4()).upper(), "%00", "%ff%fe", "%C0%AF", "'%20OR%20'1'='1",
    "a" * 4000, "%C3%B1", "..%2F..%2Fetc%2Fpasswd", "-1", "0", "null", "%20",
]


@pytest.mark.parametrize("order_id", ODD_IDS, ids=range(len(ODD_IDS)))
def test_unknown_order_is_404_json(order_id):
    response = requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=HTTP_TIMEOUT)
    assert_json_failure(response, (404,))
    check_contract(response)


@pytest.mark.parametrize("accept", ["application/json", "text/html", "*/*", "\u00ff",
                                    "text/event-stream; q=0", "application/x-ndjson"])
def test_get_orders_answers_any_accept_header(accept):
    response = requests.get(f"{ORDER_URL}/orders", headers={"Accept": accept, **operator_headers()}, timeout=60)
    assert response.status_code == 200, response.text[:300]
    check_contract(response)


def test_get_orders_ignores_query_parameters():
    response = requests.get(f"{ORDER_URL}/orders", params={"limit": "abc", "status": "'; DROP TABLE orders"},
                            headers=operator_headers(), timeout=60)
    assert response.status_code == 200
    check_contract(response)


# ---------------------------------------------------------------------------------------------------------------
# Unknown routes and wrong methods


UNKNOWN_ROUTES = [
    ("GET", "/nope"), ("POST", "/nope"), ("GET", "/orders/a/b"), ("GET", "/ORDERS"), ("GET", "/catalogue/x"),
    ("DELETE", "/nope"), ("GET", "/order/x"), ("PUT", "/order/x"), ("GET", "/images/nope.svg"),
    # out of the web root: 404, or 400 for a path that is refused outright
    ("GET", "/%2e%2e/%2e%2e/etc/passwd"), ("GET", "/..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/images/..%2F..%2FPackage.swift"), ("GET", "/images/%2e%2e/%2e%2e/Package.swift"),
]


@pytest.mark.parametrize("method,path", UNKNOWN_ROUTES)
def test_unknown_route_is_404_json(method, path):
    with NothingWritten("no-marker-here-" + uuid.uuid4().hex):
        response = requests.request(method, f"{ORDER_URL}{path}", data=b"{}", timeout=HTTP_TIMEOUT)
        assert "root:" not in response.text and "PackageDescription" not in response.text, "a file outside Public/"
        assert_json_failure(response, (400, 404) if ".." in path or "%2e" in path else (404,))


FISH_ORDER = f"/orders/{uuid.uuid4()}"
WRONG_METHODS = [
    ("DELETE", "/orders", "GET, POST"), ("PUT", "/orders", "GET, POST"), ("PATCH", "/orders", "GET, POST"),
    ("GET", "/order", "POST"), ("PUT", "/order", "POST"), ("DELETE", "/order", "POST"),
    ("DELETE", FISH_ORDER, "GET"), ("PUT", FISH_ORDER, "GET"), ("POST", FISH_ORDER, "GET"),
    ("POST", "/catalogue", "GET"), ("DELETE", "/catalogue", "GET"), ("POST", "/health", "GET"),
    ("DELETE", "/metrics", "GET"), ("POST", "/config.json", "GET"), ("PUT", "/openapi.yaml", "GET"),
]


@pytest.mark.parametrize("method,path,allowed", WRONG_METHODS)
def test_wrong_method_is_a_4xx_json_error(method, path, allowed):
    marker = unique_marker("method")
    with NothingWritten(marker):
        response = requests.request(method, f"{ORDER_URL}{path}", data=json.dumps(order_body(marker=marker)),
                                    headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
        assert_json_failure(response, (404, 405))


@pytest.mark.parametrize("method,path,allowed", WRONG_METHODS)
def test_wrong_method_is_405_naming_the_allowed_methods(method, path, allowed):
    """RFC 9110: a method the resource does not support is 405, with an Allow header listing the ones it does."""
    response = requests.request(method, f"{ORDER_URL}{path}", timeout=HTTP_TIMEOUT)
    assert_json_failure(response, (405,))
    allow = {m.strip().upper() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    assert set(allowed.split(", ")) <= allow, f"Allow: {response.headers.get('Allow')!r}, expected {allowed}"


# ---------------------------------------------------------------------------------------------------------------
# Broken HTTP: never a 5xx, and the service keeps answering


def _status(raw: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(match.group(1)) if match else None


RAW_REQUESTS = [
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("binary", bytes(range(256)) * 4),
    ("invalid-utf8-path", b"GET /orders/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("invalid-utf8-header", b"GET /catalogue HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\xfe\r\nConnection: close\r\n\r\n"),
    ("invalid-utf8-idempotency-key", b"POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \xff\xfe\r\n"
                                     b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"),
    ("short-body", b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":1}"),
    ("negative-length", b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}"),
    ("huge-length", b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n{}"),
    ("length-and-chunked", b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n{}"),
    ("bad-chunk", b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ("huge-chunk", b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n{}"),
    ("long-url", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("long-header", b"GET /catalogue HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
                    + b"\r\nConnection: close\r\n\r\n"),
    ("many-headers", b"GET /catalogue HTTP/1.1\r\nHost: x\r\n" + b"X-H: 1\r\n" * 5000 + b"Connection: close\r\n\r\n"),
    ("http-0.9", b"GET /catalogue\r\n\r\n"),
    ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
]


@pytest.mark.parametrize("case,payload", RAW_REQUESTS, ids=[case for case, _ in RAW_REQUESTS])
def test_broken_http_is_never_a_server_error(case, payload):
    before = order_count()
    reply = raw_http(ORDER_URL, payload)
    status = _status(reply)
    assert status is None or status < 500, f"{case}: {reply[:300]!r}"
    wait_healthy(10)
    assert order_count() == before


@pytest.mark.parametrize("path", ["/catalogue", "/health", "/metrics", "/config.json", "/openapi.yaml", "/orders"])
def test_get_routes_ignore_odd_queries_and_headers(path):
    response = requests.get(
        f"{ORDER_URL}{path}?x=%00&y=%ff&{'z' * 2000}=1",
        headers={"Accept": "\u00ff/\u00fe", "Cookie": "a" * 4000, "Accept-Encoding": "zstd;q=-1", "Range": "bytes=9-1",
                 "If-None-Match": "*", "Accept-Charset": "ebcdic", **(operator_headers() if path == "/orders" else {})},
        timeout=60)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:200]}"
    check_contract(response)
