"""A retried POST with the same Idempotency-Key returns the same order, never a second one."""

import uuid

import pytest

from conftest import (
    follow, order_body, payments, post_order, sagas_for, stream_orders, wait_for_order_status,
)


def test_repeated_post_with_the_same_key_returns_the_same_order_and_charges_once():
    key = f"e2e-{uuid.uuid4()}"
    body = order_body([("Rabbit", 1), ("Fish", 2)], post_code="2885")

    first = post_order(body, headers={"Idempotency-Key": key})
    second = post_order(body, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    order_id = first.json()["orderId"]
    assert second.json()["orderId"] == order_id
    assert second.json()["status"] == "placed"

    messages = follow(second.json()["clientCallbackUrl"])
    assert messages[-1]["status"] == "success"
    expected_cents = (50 + 2 * 10) * 100 + 450
    assert messages[-1]["amountPaid"] == pytest.approx(expected_cents / 100)
    wait_for_order_status(order_id, "completed")

    # Retried again once the order is done: still the same order.
    third = post_order(body, headers={"Idempotency-Key": key})
    assert third.status_code == 202, third.text
    assert third.json()["orderId"] == order_id

    assert len(sagas_for(order_id)) == 1
    ledger = payments(order_id)
    assert [e["kind"] for e in ledger["ledger"]] == ["charge"]
    assert ledger["netCents"] == expected_cents
    same_address = [o for o in stream_orders()
                    if o["shippingAddress"]["address"] == body["shippingAddress"]["address"]]
    assert [o["orderId"] for o in same_address] == [order_id]


def test_same_key_with_a_different_body_is_refused_with_422():
    key = f"e2e-{uuid.uuid4()}"
    body = order_body([("Fish", 1)], post_code="2880")
    first = post_order(body, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text

    different = order_body([("Fish", 2)], post_code="2880", address=body["shippingAddress"]["address"])
    response = post_order(different, headers={"Idempotency-Key": key})
    assert response.status_code == 422, f"expected 422, got {response.status_code}: {response.text!r}"
    refusal = response.json()
    assert refusal["status"] == "failed" and refusal["message"], refusal
    same_address = [o for o in stream_orders()
                    if o["shippingAddress"]["address"] == body["shippingAddress"]["address"]]
    assert [o["orderId"] for o in same_address] == [first.json()["orderId"]]


def test_different_keys_place_different_orders():
    body = order_body([("Fish", 1)], post_code="2880")
    a = post_order(body, headers={"Idempotency-Key": f"e2e-{uuid.uuid4()}"})
    b = post_order(body, headers={"Idempotency-Key": f"e2e-{uuid.uuid4()}"})
    assert a.status_code == b.status_code == 202
    assert a.json()["orderId"] != b.json()["orderId"]
