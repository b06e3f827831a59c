"""Placing orders and following them to the end: what the shopper and the shop's books show afterwards."""

import pytest

from conftest import (
    CARD_NUMBER, assert_well_formed_stream, catalogue_stock, follow, inventory_stock, items_total, order_body,
    payments, place_order, product_id, reservations, sagas_for, wait_for_history, wait_until,
)
from pets.orders import shipping_cost

STEPS = ["reserveInventory", "calculateShipping", "processPayment", "completeOrder"]


def test_completed_two_pet_order():
    body = order_body([("Hamster", 2), ("Chicken", 3)], post_code="2887")
    products = [product_id("Hamster"), product_id("Chicken")]
    before = inventory_stock()

    placed = place_order(body)
    order_id = placed["orderId"]
    assert f"orderId={order_id}" in placed["clientCallbackUrl"]
    assert "token=" in placed["clientCallbackUrl"]
    messages = follow(placed["clientCallbackUrl"])

    assert_well_formed_stream(messages, order_id)
    progress = [(m["status"], m.get("step")) for m in messages[:-1]]
    assert progress == [("started", None)] + [("stepSucceeded", step) for step in STEPS]
    final = messages[-1]
    expected = 2 * 30 + 3 * 20 + 5.5
    assert expected == items_total(body) + shipping_cost("2887")
    assert final["status"] == "success"
    assert final["amountPaid"] == pytest.approx(expected)
    assert final["createdOn"]

    order = wait_for_history(order_id, final["seq"])
    assert order["orderStatus"] == "completed"
    assert order["paymentAmount"] == pytest.approx(expected)
    assert order["shippingCost"] == pytest.approx(5.5)
    assert order["cardLast4"] == CARD_NUMBER[-4:]
    assert order["shippingAddress"] == body["shippingAddress"]
    assert [(line["id"], line["quantity"], line["unitPrice"]) for line in order["basket"]] == \
        [(product_id("Hamster"), 2, 30), (product_id("Chicken"), 3, 20)]
    assert not order.get("errorMessage")
    assert [(h["seq"], h["status"], h.get("step")) for h in order["history"]] == \
        [(m["seq"], m["status"], m.get("step")) for m in messages]

    after = inventory_stock()
    assert after[product_id("Hamster")] == before[product_id("Hamster")] - 2
    assert after[product_id("Chicken")] == before[product_id("Chicken")] - 3
    wait_until(lambda: all(catalogue_stock()[p] == after[p] for p in products), timeout=5,
               message="catalogue stock catching up with Inventory")

    ledger = payments(order_id)
    assert ledger["netCents"] == round(expected * 100)
    assert [p["status"] for p in ledger["payments"]] == ["charged"]
    assert [(e["kind"], e["amountCents"]) for e in ledger["ledger"]] == [("charge", round(expected * 100))]

    held = reservations(order_id)
    assert [r["status"] for r in held] == ["reserved"]

    sagas = sagas_for(order_id)
    assert [s["status"] for s in sagas] == ["completed"]


def _assert_cancelled_without_trace(order_id, messages, before, products, message):
    final = messages[-1]
    assert final["status"] == "failed"
    assert final["message"] == message
    assert final["createdOn"]
    assert "amountPaid" not in final or not final["amountPaid"]

    order = wait_for_history(order_id, final["seq"])
    assert order["orderStatus"] == "cancelled"
    assert order["errorMessage"] == message
    assert order["errorType"]

    after = inventory_stock()
    for product in products:
        assert after[product] == before[product], f"stock of {product} leaked"
    ledger = payments(order_id)
    assert ledger["netCents"] == 0
    assert not [p for p in ledger["payments"] if p["status"] == "charged"], ledger
    return order, ledger


@pytest.mark.parametrize("expiry", ["12/19", "13/30"], ids=["expired", "month-13"])
def test_invalid_card_is_refused_and_stock_released(expiry):
    body = order_body([("Bird", 2), ("Rabbit", 1)], post_code="2883", expiry=expiry)
    products = [product_id("Bird"), product_id("Rabbit")]
    before = inventory_stock()

    placed = place_order(body)
    order_id = placed["orderId"]
    messages = follow(placed["clientCallbackUrl"])

    assert_well_formed_stream(messages, order_id)
    statuses = [(m["status"], m.get("step")) for m in messages]
    assert ("stepSucceeded", "reserveInventory") in statuses
    failed_steps = [m for m in messages if m["status"] == "stepFailed"]
    assert [m["step"] for m in failed_steps] == ["processPayment"]
    assert failed_steps[0]["message"] == "Error, invalid credit card"
    assert ("compensated", "reserveInventory") in statuses
    # The reservation is undone after the failure and before the shopper is told.
    assert statuses.index(("compensated", "reserveInventory")) > messages.index(failed_steps[0])
    assert not any(s == "stepSucceeded" and step in ("processPayment", "completeOrder") for s, step in statuses)

    _assert_cancelled_without_trace(order_id, messages, before, products, "Error, invalid credit card")
    assert [r["status"] for r in reservations(order_id)] == ["released"]
    wait_until(lambda: all(catalogue_stock()[p] == before[p] for p in products), timeout=5,
               message="catalogue stock back to where it was")


def test_quantity_over_ten_fails_for_insufficient_inventory():
    body = order_body([("Fish", 11)], post_code="2881")
    before = inventory_stock()
    assert before[product_id("Fish")] >= 11, "the test needs more than 11 fish in stock"

    placed = place_order(body)
    order_id = placed["orderId"]
    messages = follow(placed["clientCallbackUrl"])

    assert_well_formed_stream(messages, order_id)
    failed_steps = [m for m in messages if m["status"] == "stepFailed"]
    assert [m["step"] for m in failed_steps] == ["reserveInventory"]
    assert not [m for m in messages if m["status"] == "stepSucceeded"], messages

    _, ledger = _assert_cancelled_without_trace(
        order_id, messages, before, [product_id("Fish")], "Error, insufficient inventory")
    assert ledger["ledger"] == []
    assert [r["status"] for r in reservations(order_id)] in ([], ["rejected"])


def test_seed_path_post_order_places_an_order():
    body = order_body([("Rabbit", 1)], post_code="2884")
    placed = place_order(body, path="/order")
    messages = follow(placed["clientCallbackUrl"])
    assert_well_formed_stream(messages, placed["orderId"])
    assert messages[-1]["status"] == "success"
    assert messages[-1]["amountPaid"] == pytest.approx(50 + 4)


def test_several_orders_at_once_each_get_their_own_complete_stream():
    from concurrent.futures import ThreadPoolExecutor

    before = inventory_stock()
    bodies = [order_body([("Chicken", 1)], post_code=str(2880 + i)) for i in range(5)]

    def run(body):
        placed = place_order(body)
        return placed["orderId"], follow(placed["clientCallbackUrl"])

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(run, bodies))

    assert len({order_id for order_id, _ in results}) == 5
    for (order_id, messages), body in zip(results, bodies):
        assert_well_formed_stream(messages, order_id)
        assert messages[-1]["status"] == "success"
        assert messages[-1]["amountPaid"] == pytest.approx(20 + shipping_cost(body["shippingAddress"]["postCode"]))
    assert inventory_stock()[product_id("Chicken")] == before[product_id("Chicken")] - 5
