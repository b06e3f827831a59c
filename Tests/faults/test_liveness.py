"""Liveness: nothing waits for ever and no table only grows. An order whose start is dead-lettered still ends, one
saga that cannot be loaded does not stop every other saga's timers, and old rows that protect nothing are pruned.
"""

from __future__ import annotations

import uuid

import requests
from websockets.sync.client import connect

from conftest import (
    FINAL_STATUSES, ORCHESTRATOR_URL, amount_cents, assert_well_formed, follow, get_json, get_order, history, metric,
    operator_headers, order_body, payments, place_order, saga, stock, wait_for_order, wait_until, ws_url,
)
from pets.websocket import read_until

START_DEADLINE = 2
START_ATTEMPTS = 2


def test_an_order_whose_start_is_dead_lettered_is_sent_again_then_cancelled_with_the_reason(pets):
    """The Orchestrator dead-letters every `startPlaceOrder` (as it would one that does not decode), so no saga
    begins. The Order service sends the start again, then gives the order up: the Orchestrator closes a saga that
    ran no step, the order ends `cancelled` with the reason, and the WebSocket client gets a final `failed`, live
    and on replay. Nothing was reserved or charged."""
    pets.configure({"PETS_START_DEADLINE_SECONDS": START_DEADLINE, "PETS_START_ATTEMPTS": START_ATTEMPTS})
    resent_before = metric("Order", "pets_order_starts_resent_total")
    abandoned_before = metric("Order", "pets_orders_abandoned_total")
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
    assert metric("Order", "pets_orders_abandoned_total") >= abandoned_before + 1
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


def test_an_order_whose_saga_is_only_slow_to_show_is_not_given_up(pets):
    """The saga runs, but slowly (Inventory answers late) and the Order service sees its status events even later (a
    backlog on `order.events`), so the order looks unstarted past every deadline. The Order service asks the
    Orchestrator to give it up, which finds the saga and ignores that; the order completes, charged once."""
    pets.configure({"PETS_START_DEADLINE_SECONDS": 1, "PETS_START_ATTEMPTS": 1})
    abandoned_before = metric("Order", "pets_orders_abandoned_total")
    body = order_body([("Bird", 1)], post_code="2884")
    with pets.faults("delay reserveInventory 5", "delay orderStatus 6"):
        placed = place_order(body)
        order_id = pets.watch(placed["orderId"])
        wait_until(lambda: metric("Order", "pets_orders_abandoned_total") >= abandoned_before + 1, timeout=10,
                   message=f"order {order_id}: the Order service asking to give it up")
        order = wait_for_order(order_id, timeout=30)
    assert order["orderStatus"] == "completed", \
        f"order {order_id}: a running saga's order must not be given up: {order['orderStatus']} " \
        f"({order.get('errorType')}: {order.get('errorMessage')})"
    ledger = payments(order_id)
    assert ledger["netCents"] == amount_cents(body) and len(ledger["ledger"]) == 1, f"order {order_id}: {ledger}"
    assert follow(placed)[-1]["status"] == "success", f"order {order_id}"
    assert saga(order_id)["saga"]["status"] == "completed", f"order {order_id}"


def test_a_saga_whose_instance_does_not_load_is_parked_and_the_other_timers_still_fire(pets):
    """Two sagas wait for a reply that comes too late. The first one's stored instance is corrupted, so it cannot
    be loaded when its deadline comes. It is parked as `needs_attention` with the reason, and the second saga's
    deadline still fires: it is compensated and cancelled as usual."""
    pets.configure({"PETS_STEP_DEADLINE_SECONDS": 2, "PETS_STEP_ATTEMPTS": 1, "PETS_RETRY_INTERVAL_SECONDS": 0.2})
    parked_before = metric("Orchestrator", "pets_sagas_parked_total")
    replies_dead_before = metric("Orchestrator", "pets_messages_dead_lettered_total", queue="orchestrator.replies")

    with pets.faults("delay reserveInventory 6"):
        bad = place_order(order_body([("Chicken", 1)]))
        bad_id = pets.watch(bad["orderId"])
        good = place_order(order_body([("Chicken", 1)]))
        good_id = pets.watch(good["orderId"])
        wait_until(lambda: pets.sql("orchestrator", f"SELECT 1 FROM sagas WHERE order_id = '{bad_id}'"), timeout=5,
                   message=f"order {bad_id}: its saga being created")
        # Valid JSON, but not a saga: the phase is unknown. Due at once, so it sorts before the other saga.
        pets.sql("orchestrator",
                 f"""UPDATE sagas SET instance = jsonb_set(instance, '{{phase}}', '"warp"'), timer_at = now() """
                 f"WHERE order_id = '{bad_id}'")
        with connect(ws_url(bad), open_timeout=10, close_timeout=2) as ws:
            seen: list[dict] = []
            alert = read_until(ws, {"needsAttention"} | FINAL_STATUSES, 20, seen)
        assert alert["status"] == "needsAttention", f"order {bad_id}: {alert}"

        # The other saga's deadline fired although the bad one is due earlier.
        order = wait_for_order(good_id, ("cancelled",), timeout=20)
    assert order["errorType"] == "Timeout", f"order {good_id}: {order}"
    messages = follow(good)
    assert_well_formed(messages, good_id)
    assert messages[-1]["status"] == "failed", f"order {good_id}: {messages[-1]}"

    detail = saga(bad_id)
    assert detail["saga"]["status"] == "needs_attention", f"order {bad_id}: {detail['saga']}"
    parked = [h for h in detail["history"] if h["kind"] == "parked"]
    assert parked and "does not load" in parked[0]["detail"] and "phase" in parked[0]["detail"], \
        f"order {bad_id}: the history must say why: {detail['history']}"
    assert metric("Orchestrator", "pets_sagas_parked_total") >= parked_before + 1
    assert [s for s in get_json(f"{ORCHESTRATOR_URL}/sagas", status="needs_attention") if s["orderId"] == bad_id]
    # Retrying it as it is cannot work: the operator is told why.
    response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{bad_id}/retry", headers=operator_headers(), timeout=10)
    assert response.status_code == 409 and "does not load" in response.json()["message"], \
        f"order {bad_id}: {response.status_code} {response.text}"
    assert get_order(bad_id)["orderStatus"] == "placed"

    # Once repaired, an operator's retry resumes it and it ends. First the late reply to its first reservation
    # must have come and gone (dead-lettered: the instance did not load), or it would resume the saga itself.
    wait_until(lambda: metric("Orchestrator", "pets_messages_dead_lettered_total", queue="orchestrator.replies")
               >= replies_dead_before + 1, timeout=20,
               message=f"order {bad_id}: the late reserveInventory reply reaching the corrupted saga")
    pets.sql("orchestrator",
             f"""UPDATE sagas SET instance = jsonb_set(instance, '{{phase}}', '"forward"') WHERE order_id = '{bad_id}'""")
    response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{bad_id}/retry", headers=operator_headers(), timeout=10)
    assert response.status_code == 202, f"order {bad_id}: {response.status_code} {response.text}"
    order = wait_for_order(bad_id, timeout=30)
    assert order["orderStatus"] == "completed", f"order {bad_id}: {order}"
    assert len([h for h in history(bad_id, "processPayment") if h["kind"] == "succeeded"]) == 1


DATABASES = ("orders", "inventory", "payments", "orchestrator")


def test_pruning_deletes_rows_older_than_their_retention_and_keeps_the_rest(pets):
    """Inbox rows older than the inbox retention (a week) and the history of sagas and orders that ended longer ago
    than the history retention (a year) are deleted; younger inbox rows, the history of recent orders and the
    orders and sagas themselves stay."""
    pets.configure({"PETS_PRUNE_INTERVAL_SECONDS": 1})
    old_done = place_order(order_body([("Hamster", 1)]))
    old_id = pets.watch(old_done["orderId"])
    recent = place_order(order_body([("Hamster", 1)]))
    recent_id = pets.watch(recent["orderId"])
    for order_id in (old_id, recent_id):
        assert wait_for_order(order_id)["orderStatus"] == "completed", f"order {order_id}"
    wait_until(lambda: len(get_order(old_id)["history"]) >= 5, timeout=10, message=f"order {old_id}: history")

    tag = uuid.uuid4().hex[:8]
    for db in DATABASES:
        pets.sql(db, f"""INSERT INTO inbox (message_id, message_type, received_at) VALUES
                         ('old-{tag}', 'test', now() - interval '8 days'),
                         ('young-{tag}', 'test', now() - interval '6 days')""")
    [[saga_id]] = pets.sql("orchestrator", f"SELECT id FROM sagas WHERE order_id = '{old_id}'")
    pets.sql("orchestrator", f"""
        UPDATE sagas SET updated_at = now() - interval '400 days' WHERE id = '{saga_id}';
        UPDATE saga_history SET at = now() - interval '400 days' WHERE saga_id = '{saga_id}';
        UPDATE saga_events SET at = now() - interval '400 days' WHERE order_id = '{old_id}'""")
    pets.sql("orders", f"""
        UPDATE orders SET updated_on = now() - interval '400 days' WHERE id = '{old_id}';
        UPDATE order_events SET recorded_at = now() - interval '400 days' WHERE order_id = '{old_id}'""")

    def count(db: str, statement: str) -> int:
        return int(pets.sql(db, statement)[0][0])

    def pruned() -> bool:
        return all(count(db, f"SELECT count(*) FROM inbox WHERE message_id = 'old-{tag}'") == 0 for db in DATABASES) \
            and count("orchestrator", f"SELECT count(*) FROM saga_history WHERE saga_id = '{saga_id}'") == 0 \
            and count("orchestrator", f"SELECT count(*) FROM saga_events WHERE order_id = '{old_id}'") == 0 \
            and count("orders", f"SELECT count(*) FROM order_events WHERE order_id = '{old_id}'") == 0

    wait_until(pruned, timeout=20, interval=0.5, message="the old inbox rows and the old order's history pruned")
    for db in DATABASES:
        assert count(db, f"SELECT count(*) FROM inbox WHERE message_id = 'young-{tag}'") == 1, \
            f"{db}: an inbox row younger than the retention was pruned"
    assert metric("Orchestrator", "pets_rows_pruned_total", table="saga_history") >= 1
    assert metric("Order", "pets_rows_pruned_total", table="order_events") >= 1
    assert metric("Payment", "pets_rows_pruned_total", table="inbox") >= 1

    # The recent order keeps its history; the old one is still there, only without it.
    assert len(get_order(recent_id)["history"]) >= 5, f"order {recent_id}: {get_order(recent_id)['history']}"
    assert len(history(recent_id)) >= 5, f"order {recent_id}"
    old = get_order(old_id)
    assert old["orderStatus"] == "completed" and old["history"] == [], f"order {old_id}: {old}"
    assert saga(old_id)["saga"]["status"] == "completed", f"order {old_id}"
