"""Hostile input on the REST routes of the other services (the operator APIs of the Orchestrator, Inventory and
Payment, the Notifier's plain HTTP side): never a 5xx, every error a JSON `{"status":"failed","message"}`."""

from __future__ import annotations

import uuid

import pytest
import requests

from conftest import (HTTP_TIMEOUT, INVENTORY_URL, NOTIFIER_URL, ORCHESTRATOR_URL, PAYMENT_URL, SERVICES,
                      operator_headers)

ODD_VALUES = ["%00", "a%00b", "%ff%fe", "abc", "-1", "0", "1e400", "inf", "NaN", "9" * 30,
              "%27%3B%20DROP%20TABLE%20x%3B--", "x" * 5000, "%20"]
ODD_IDS = ["nope", "%00", "a%00b", "%ff", str(uuid.uuid4()), "x" * 2000, "%27%20OR%20%271%27%3D%271"]


def assert_not_a_server_error(response: requests.Response) -> None:
    assert response.status_code < 500, \
        f"{response.request.method} {response.request.url[:200]}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers.get("Content-Type", "").startswith("application/json"), response.text[:200]
        body = response.json()
        assert body.get("status") == "failed" and body.get("message"), body


@pytest.mark.parametrize("parameter", ["status", "step", "orderId", "olderThan"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_saga_search_with_odd_parameters(parameter, value):
    response = requests.get(f"{ORCHESTRATOR_URL}/sagas?{parameter}={value}", headers=operator_headers(),
                            timeout=HTTP_TIMEOUT)
    assert_not_a_server_error(response)


@pytest.mark.parametrize("value", ["abc", "1e400", "inf", "NaN"])
def test_saga_search_refuses_a_malformed_age(value):
    """`olderThan` is a number of seconds: anything else is a 400, not silently ignored nor a 5xx."""
    response = requests.get(f"{ORCHESTRATOR_URL}/sagas?olderThan={value}", headers=operator_headers(),
                            timeout=HTTP_TIMEOUT)
    assert_not_a_server_error(response)
    assert response.status_code == 400, f"olderThan={value}: {response.status_code} {response.text[:200]}"


@pytest.mark.parametrize("path", [
    *[f"{ORCHESTRATOR_URL}/sagas/{i}" for i in ODD_IDS],
    *[f"{ORCHESTRATOR_URL}/orders/{i}/events" for i in ODD_IDS],
    *[f"{INVENTORY_URL}/reservations/{i}" for i in ODD_IDS],
    *[f"{PAYMENT_URL}/payments/{i}" for i in ODD_IDS],
    f"{ORCHESTRATOR_URL}/sagas/counts?x=%00", f"{INVENTORY_URL}/stock?productId=%00",
], ids=lambda path: path.split("//", 1)[1][:60])
def test_lookups_with_odd_ids(path):
    assert_not_a_server_error(requests.get(path, headers=operator_headers(), timeout=HTTP_TIMEOUT))


@pytest.mark.parametrize("saga", ODD_IDS, ids=range(len(ODD_IDS)))
def test_retrying_an_unknown_saga(saga):
    response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{saga}/retry", data=b"{", headers=operator_headers(),
                             timeout=HTTP_TIMEOUT)
    assert_not_a_server_error(response)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("POST", "/nope"), ("DELETE", "/health"),
                                         ("POST", "/metrics"), ("GET", "/%ff/%00")])
def test_unknown_routes_and_methods(service, method, path):
    response = requests.request(method, f"{SERVICES[service]}{path}", data=b"\xff{", timeout=HTTP_TIMEOUT)
    assert_not_a_server_error(response)
    assert 400 <= response.status_code < 500, response.status_code


def test_every_service_health_and_metrics_conform():
    for name, url in SERVICES.items():
        health = requests.get(f"{url}/health", timeout=HTTP_TIMEOUT)
        assert health.status_code == 200 and health.json()["status"] == "ready", (name, health.text)
        metrics = requests.get(f"{url}/metrics", timeout=HTTP_TIMEOUT)
        assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain"), name
    assert requests.get(f"{NOTIFIER_URL}/metrics", timeout=HTTP_TIMEOUT).text
