"""What operators rely on: health, metrics, and the saga monitor API."""

import os
import re
import uuid

import pytest
import requests

from conftest import (
    OPERATOR, ORCHESTRATOR_URL, SERVICES, catalogue_stock, follow, inventory_stock, order_body, place_order,
    sagas_for, set_stock, shop, wait_until,
)

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEinfaINFA]+( [0-9]+)?$')


@pytest.mark.parametrize("service", list(SERVICES))
def test_health_is_ready(service):
    response = requests.get(f"{SERVICES[service]}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready", body


@pytest.mark.parametrize("service", list(SERVICES))
def test_metrics_are_prometheus_text_with_samples(service):
    response = requests.get(f"{SERVICES[service]}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    lines = [line for line in response.text.splitlines() if line.strip()]
    for line in lines:
        assert line.startswith("#") or SAMPLE.match(line), f"not Prometheus text: {line!r}"
    samples = [line for line in lines if not line.startswith("#")]
    assert samples, f"{service} /metrics exposes no metric at all"


def _metric_total(text, name):
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name):].startswith("{") or line[len(name):].startswith(" ")):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def test_saga_counters_count_a_completed_order():
    before_text = requests.get(f"{ORCHESTRATOR_URL}/metrics", timeout=10).text
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    assert follow(placed["clientCallbackUrl"])[-1]["status"] == "success"
    after_text = requests.get(f"{ORCHESTRATOR_URL}/metrics", timeout=10).text
    for name in ("pets_sagas_started_total", "pets_sagas_completed_total"):
        after = _metric_total(after_text, name)
        assert after is not None, f"{name} missing from the orchestrator's /metrics"
        assert after >= (_metric_total(before_text, name) or 0) + 1, name


def test_saga_monitor_shows_one_saga_with_its_timeline():
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    order_id = placed["orderId"]
    messages = follow(placed["clientCallbackUrl"])
    [saga] = sagas_for(order_id)
    assert saga["orderId"] == order_id
    assert saga["status"] == "completed"

    for key in (saga["sagaId"], order_id):
        response = requests.get(f"{ORCHESTRATOR_URL}/sagas/{key}", headers=OPERATOR, timeout=10)
        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["saga"]["sagaId"] == saga["sagaId"]
        assert detail["amountCents"] == 1200
        assert detail["shippingCents"] == 200
        succeeded = [h["step"] for h in detail["history"] if h["kind"] == "succeeded"]
        assert succeeded == ["reserveInventory", "calculateShipping", "processPayment", "completeOrder"]
        assert [e["seq"] for e in detail["events"]] == [m["seq"] for m in messages]

    listed = requests.get(f"{ORCHESTRATOR_URL}/sagas", params={"status": "completed", "limit": 5}, headers=OPERATOR,
                          timeout=10)
    assert listed.status_code == 200
    assert all(s["status"] == "completed" for s in listed.json())
    assert len(listed.json()) <= 5

    counts = requests.get(f"{ORCHESTRATOR_URL}/sagas/counts", headers=OPERATOR, timeout=10).json()
    assert counts["completed"] >= 1


def test_retrying_a_saga_that_is_not_parked_is_409():
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    follow(placed["clientCallbackUrl"])
    [saga] = sagas_for(placed["orderId"])
    response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{saga['sagaId']}/retry", headers=OPERATOR, timeout=10)
    assert response.status_code == 409
    assert response.json()["message"]
    assert sagas_for(placed["orderId"])[0]["status"] == "completed"


def test_trace_context_travels_from_the_request_to_every_websocket_push():
    """The caller's W3C traceparent goes with the order through every AMQP hop into each status event."""
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    placed = place_order(order_body([("Fish", 1)], post_code="2880"), headers={"traceparent": traceparent})
    messages = follow(placed["clientCallbackUrl"])
    assert messages and messages[-1]["status"] == "success"
    assert {m.get("traceparent") for m in messages} == {traceparent}
    # The orchestrator's copy of the same events carries it too.
    detail = requests.get(f"{ORCHESTRATOR_URL}/sagas/{placed['orderId']}", headers=OPERATOR, timeout=10).json()
    assert {e.get("traceparent") for e in detail["events"]} == {traceparent}


def test_logs_are_structured_and_carry_the_order_id():
    """One line per event with key=value metadata: an order's id appears in the gateway's log line for it."""
    state = os.environ.get("PETS_STATE")
    if not state:
        pytest.skip("PETS_STATE is not set: the service logs are not reachable")
    placed = place_order(order_body([("Fish", 1)], post_code="2880"))
    follow(placed["clientCallbackUrl"])
    log = open(os.path.join(state, "logs", "Order.log"), encoding="utf-8", errors="replace").read()
    assert f"orderId={placed['orderId']}" in log


def test_operator_restocks_a_sold_out_pet_and_the_catalogue_follows():
    """A shop that sells out is not stuck until its database is reset: the operator sets the stock again."""
    dearest = shop().dearest()  # the seed's pony
    pid = dearest["id"]
    before = inventory_stock()[pid]
    try:
        restocked = set_stock(pid, 1)
        assert restocked == {"productId": pid, "title": dearest["title"], "stock": 1}, restocked
        wait_until(lambda: catalogue_stock()[pid] == 1, message="the catalogue showing the one left")
        sold_out = place_order(order_body([(pid, 2)]))
        final = follow(sold_out["clientCallbackUrl"])[-1]
        assert final["status"] == "failed" and final["message"] == "Error, insufficient inventory", final

        set_stock(pid, 5)
        assert inventory_stock()[pid] == 5
        wait_until(lambda: catalogue_stock()[pid] == 5, message="the catalogue following the restock")
        placed = place_order(order_body([(pid, 2)]))
        assert follow(placed["clientCallbackUrl"])[-1]["status"] == "success"
        wait_until(lambda: catalogue_stock()[pid] == 3, message="the catalogue following the sale")
    finally:
        set_stock(pid, before)
