"""Liveness: nothing waits for ever. An order whose start is dead-lettered still ends.
"""

from __future__ import annotations

from websockets.sync.client import connect

from conftest import (
    FINAL_STATUSES, assert_well_formed, follow, metric, order_body, payments, place_order, read_until, saga, stock,
    wait_for_order, ws_url,
)

START_DEADLINE = 2
START_ATTEMPTS = 2


def test_an_order_whose_start_is_dead_lettered_is_sent_again_then_cancelled_with_the_reason(pets):
    """The Orchestrator dead-letters every `startPlaceOrder` (as it would one that does not decode), so no saga
    begins. The Order service sends the start again, then gives the order up: the Orchestrator closes a saga that
    ran no step, the order ends `cancelled` with the reason, and the WebSocket client gets a final `failed`, live
    and on replay. Nothing was reserved or charged."""
    pets.configure({"PETS_START_DEADLINE_SECONDS": START_DEADLINE, "PETS_START_ATTEMPTS": START_ATTEMPTS})
    resent_before = metric("Order", "pets_order_starts_resent_total")
    abandoned_before = metric("Order", "pets_orders_abandoned_total", by="orchestrator")
    dead_before = metric("Orchestrator", "pets_messages_dead_lettered_total", queue="orchestrator.commands")
    stock_before = stock("Rabbit")
    seen: list[dict] = []

    with pets.faults("reject startPlaceOrder"):
        placed = place_order(order_body([("Rabbit", 1)]))
        order_id = pets.watch(placed["orderId"])
        with connect(ws_url(placed), open_timeout=10, close_timeout=2) as ws:
            final = read_until(ws, FINAL_STATUSES, 30, seen)

    assert final["status"] == "failed", f"order {order_id}: final WebSocket message {final}"
    assert "could not be started" in (final.get("message") or ""), f"order {order_id}: {final}"
    assert final.get("createdOn"), f"order {order_id}: the final message keeps the seed's shape: {final}"
    assert_well_formed(seen, order_id)
    order = wait_for_order(order_id, ("cancelled",), timeout=15)
    assert order["errorType"] == "SagaNotStarted", f"order {order_id}: {order}"
    assert order["errorMessage"] == final["message"], f"order {order_id}: {order}"
    # A client that connects afterwards is told too (the Orchestrator recorded the event, so the replay has it).
    replayed = follow(placed, timeout=15)
    assert [m["status"] for m in replayed] == ["failed"], f"order {order_id}: replay {replayed}"

    # Every start was dead-lettered; one was a copy sent by the Order service; then the order was given up.
    assert metric("Orchestrator", "pets_messages_dead_lettered_total", queue="orchestrator.commands") \
        >= dead_before + START_ATTEMPTS, f"order {order_id}: expected {START_ATTEMPTS} dead-lettered starts"
    assert metric("Order", "pets_order_starts_resent_total") >= resent_before + START_ATTEMPTS - 1
    assert metric("Order", "pets_orders_abandoned_total", by="orchestrator") >= abandoned_before + 1
    assert metric("Orchestrator", "pets_sagas_abandoned_total") >= 1

    # The monitor shows a cancelled saga that ran no step, with the reason.
    detail = saga(order_id)
    assert detail["saga"]["status"] == "cancelled", f"order {order_id}: {detail['saga']}"
    assert detail["failure"] and detail["failure"]["type"] == "SagaNotStarted", f"order {order_id}: {detail}"
    assert not [h for h in detail["history"] if h["step"] in ("reserveInventory", "processPayment")], \
        f"order {order_id}: no step may run for an abandoned saga: {detail['history']}"
    assert payments(order_id)["netCents"] == 0, f"order {order_id}"
    assert stock("Rabbit") == stock_before, f"order {order_id}: Rabbit stock {stock_before} -> {stock('Rabbit')}"

    # With the fault gone, an order is not held up by the sweeper: it completes, its start sent once.
    resent = metric("Order", "pets_order_starts_resent_total")
    healthy = place_order(order_body([("Fish", 1)]))
    pets.watch(healthy["orderId"])
    assert follow(healthy)[-1]["status"] == "success", f"order {healthy['orderId']}"
    assert metric("Order", "pets_order_starts_resent_total") == resent
