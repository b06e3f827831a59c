"""Reliability under real faults: processes killed at exact points, replies that come too late, compensations that
keep failing. Each test drives the real services (started by conftest.py) through the faults file and checks what a
customer and an operator would see: the order's outcome, the money, the stock, the WebSocket and the saga monitor.
"""

from __future__ import annotations

import requests
from websockets.sync.client import connect

from conftest import (
    FINAL_STATUSES, ORCHESTRATOR_URL, amount_cents, assert_well_formed, follow, get_json, get_order, history,
    metric, operator_headers, order_body, payments, place_order, saga, stock, wait_for_order,
    wait_until, ws_url,
)
from pets.websocket import read_until


def charges(ledger: dict) -> list[dict]:
    return [entry for entry in ledger["ledger"] if entry["kind"] == "charge"]


def refunds(ledger: dict) -> list[dict]:
    return [entry for entry in ledger["ledger"] if entry["kind"] == "refund"]


def test_orchestrator_killed_between_sending_payment_and_its_reply_charges_once(pets):
    """The Orchestrator dies right after RabbitMQ confirmed `processPayment`, before it could mark the command as
    sent; the supervisor restarts it, its outbox sends the command again, and Payment's inbox drops the copy: the
    order completes and the customer is charged exactly once."""
    pets.configure({})
    crash_line = "fault injection: published processPayment"
    crashes_before = pets.log("Orchestrator").count(crash_line)
    duplicates_before = metric("Payment", "pets_messages_duplicate_total")
    old_pid = pets.pid("Orchestrator")
    body = order_body([("Cat", 1)], post_code="2887")

    with pets.faults("crash-after-publish processPayment"):
        placed = place_order(body)
        order_id = pets.watch(placed["orderId"])
        # Off as soon as the process is gone, long before the supervisor's restart relays the outbox again.
        pets.wait_for_crash("Orchestrator", old_pid, timeout=30, on_crash=pets.clear_faults)
    assert pets.log("Orchestrator").count(crash_line) == crashes_before + 1, \
        f"order {order_id}: the Orchestrator died, but not from the crash-after-publish fault (see its log)"
    new_pid = pets.wait_for_restart("Orchestrator", old_pid)

    order = wait_for_order(order_id, timeout=60)
    assert order["orderStatus"] == "completed", \
        f"order {order_id}: expected completed after the Orchestrator restart, got {order['orderStatus']} " \
        f"({order.get('errorType')}: {order.get('errorMessage')})"

    ledger = payments(order_id)
    assert [c["amountCents"] for c in charges(ledger)] == [amount_cents(body)], \
        f"order {order_id}: expected exactly one charge of {amount_cents(body)} cents, ledger: {ledger['ledger']}"
    assert ledger["netCents"] == amount_cents(body), f"order {order_id}: {ledger}"

    # The re-sent command reached Payment and was absorbed by its inbox.
    wait_until(lambda: metric("Payment", "pets_messages_duplicate_total") >= duplicates_before + 1, timeout=15,
               message=f"order {order_id}: Payment's inbox dropping the re-published processPayment "
                       f"(pets_messages_duplicate_total above {duplicates_before})")
    sent = history(order_id, "processPayment", "sent")
    succeeded = history(order_id, "processPayment", "succeeded")
    assert len(sent) == 1 and len(succeeded) == 1, \
        f"order {order_id}: the saga must have sent processPayment once and seen it succeed once; " \
        f"sent {sent}, succeeded {succeeded}"

    # It crashed once only, and the customer's WebSocket tells a clean story.
    assert pets.pid("Orchestrator") == new_pid and pets.is_running(new_pid, "Orchestrator"), \
        f"order {order_id}: the Orchestrator crashed again after the fault was removed"
    assert pets.log("Orchestrator").count(crash_line) == crashes_before + 1
    messages = follow(placed)
    assert_well_formed(messages, order_id)
    assert messages[-1]["status"] == "success", f"order {order_id}: {messages[-1]}"
    assert round(messages[-1]["amountPaid"] * 100) == amount_cents(body), f"order {order_id}: {messages[-1]}"


def test_inventory_killed_after_commit_before_ack_takes_stock_once(pets):
    """Inventory dies after its reservation committed but before it acknowledged the command; RabbitMQ delivers
    the command again to the restarted Inventory, whose inbox drops it: the stock is taken exactly once."""
    pets.configure({})
    crash_line = "fault injection: committed reserveInventory"
    crashes_before = pets.log("Inventory").count(crash_line)
    stock_before = stock("Rabbit")
    old_pid = pets.pid("Inventory")
    body = order_body([("Rabbit", 3)], post_code="2882")

    with pets.faults("crash-after-commit reserveInventory"):
        placed = place_order(body)
        order_id = pets.watch(placed["orderId"])
        pets.wait_for_crash("Inventory", old_pid, timeout=30, on_crash=pets.clear_faults)
    assert pets.log("Inventory").count(crash_line) == crashes_before + 1, \
        f"order {order_id}: Inventory died, but not from the crash-after-commit fault (see its log)"
    pets.wait_for_restart("Inventory", old_pid)

    order = wait_for_order(order_id, timeout=60)
    assert order["orderStatus"] == "completed", \
        f"order {order_id}: expected completed after the Inventory restart, got {order['orderStatus']} " \
        f"({order.get('errorType')}: {order.get('errorMessage')})"
    assert stock("Rabbit") == stock_before - 3, \
        f"order {order_id}: Rabbit stock went {stock_before} -> {stock('Rabbit')}, expected exactly -3"

    # Metrics start at zero with the new process, and the redelivery reached the new process: at least one.
    wait_until(lambda: metric("Inventory", "pets_messages_duplicate_total") >= 1, timeout=15,
               message=f"order {order_id}: the restarted Inventory's inbox dropping the redelivered reserveInventory")
    assert len(history(order_id, "reserveInventory", "succeeded")) == 1, f"order {order_id}"
    assert [c["amountCents"] for c in charges(payments(order_id))] == [amount_cents(body)], f"order {order_id}"
    messages = follow(placed)
    assert_well_formed(messages, order_id)
    assert messages[-1]["status"] == "success", f"order {order_id}: {messages[-1]}"


def test_payment_that_answers_after_the_deadline_cancels_the_order_and_keeps_no_money(pets):
    """Payment holds `processPayment` back longer than the Orchestrator waits (1.5 s, 2 attempts, 0.2 s apart:
    the last deadline passes 3.2 s after the first send). The step is treated as failed, the payment is refunded
    (or voided before it happens), the stock released, the order cancelled as `Timeout`; the replies that arrive
    later are recorded as ignored and change nothing.

    The delay is 5 s, not less: any attempt's reply counts while the saga still waits on the step, so a delay
    shorter than the whole retry window (3.2 s here) would let the first attempt's late reply complete the order.
    """
    pets.configure({"PETS_STEP_DEADLINE_SECONDS": "1.5", "PETS_STEP_ATTEMPTS": "2",
                    "PETS_RETRY_INTERVAL_SECONDS": "0.2"})
    stock_before = stock("Bird")
    body = order_body([("Bird", 2)], post_code="2884")
    timeout_message = "Error, processPayment did not answer in time"

    with pets.faults("delay processPayment 5"):
        placed = place_order(body)
        order_id = pets.watch(placed["orderId"])
        seen: list[dict] = []
        with connect(ws_url(placed), open_timeout=10, close_timeout=2) as ws:
            final = read_until(ws, FINAL_STATUSES, 60, seen)
        order = wait_for_order(order_id, timeout=30)
        quick = [h for h in history(order_id, "processPayment", "succeeded") if (h.get("durationMs") or 0) < 5000]
        assert not quick, f"order {order_id}: the fault `delay processPayment 5` was not applied: Payment answered " \
                          f"processPayment in {quick[0].get('durationMs')} ms (attempt {quick[0]['attempt']})"
        assert order["orderStatus"] == "cancelled", \
            f"order {order_id}: expected cancelled after processPayment timed out twice, got " \
            f"{order['orderStatus']}; processPayment history: {history(order_id, 'processPayment')}"
        assert (order["errorType"], order["errorMessage"]) == ("Timeout", timeout_message), \
            f"order {order_id}: {order['errorType']}: {order['errorMessage']}"
        assert final["status"] == "failed" and final.get("message") == timeout_message, \
            f"order {order_id}: final WebSocket message {final}"
        assert_well_formed(seen, order_id)

        timed_out = history(order_id, "processPayment", "timedOut")
        assert [h["attempt"] for h in timed_out] == [1, 2], \
            f"order {order_id}: expected processPayment to time out on attempts 1 and 2, got {timed_out}"
        # Both attempts are eventually answered, after the saga gave up: each reply is recorded and ignored.
        def both_ignored():
            ignored = history(order_id, "processPayment", "ignored")
            return ignored if len(ignored) >= 2 else None

        late = wait_until(both_ignored, timeout=30,
                          message=f"order {order_id}: the two late processPayment replies recorded as ignored")
        assert sorted(h["attempt"] for h in late) == [1, 2], f"order {order_id}: {late}"

    detail = saga(order_id)
    assert detail["saga"]["status"] == "cancelled", f"order {order_id}: {detail['saga']}"
    compensated = [h["step"] for h in detail["history"] if h["kind"] == "compensated"]
    assert compensated == ["refundPayment", "releaseInventory"], \
        f"order {order_id}: expected refundPayment then releaseInventory, got {compensated}"
    assert not [h for h in detail["history"] if h["step"] == "processPayment" and h["kind"] == "succeeded"], \
        f"order {order_id}: a late processPayment reply was taken as a success"

    # Now that every late command was handled: no money kept, no stock kept.
    ledger = payments(order_id)
    assert ledger["netCents"] == 0, f"order {order_id}: money kept after cancellation: {ledger}"
    assert len(charges(ledger)) <= 1 and sum(c["amountCents"] for c in charges(ledger)) == sum(
        r["amountCents"] for r in refunds(ledger)), f"order {order_id}: {ledger['ledger']}"
    assert stock("Bird") == stock_before, \
        f"order {order_id}: Bird stock {stock_before} -> {stock('Bird')}, expected it released"


def test_compensation_that_keeps_failing_parks_the_saga_until_an_operator_retries_it(pets):
    """An expired card fails the payment, so the reservation must be released; Inventory refuses every release.
    After 3 attempts the saga is parked as `needs_attention` (the customer is told, the stock stays reserved);
    once the cause is gone, an operator retries it and it ends cancelled with everything put back."""
    pets.configure({"PETS_COMPENSATION_ATTEMPTS": "3", "PETS_RETRY_INTERVAL_SECONDS": "0.2"})
    stock_before = stock("Hamster")
    body = order_body([("Hamster", 2)], expiry="12/19", post_code="2881")
    seen: list[dict] = []

    pets.set_faults("fail releaseInventory")
    placed = place_order(body)
    order_id = pets.watch(placed["orderId"])
    with connect(ws_url(placed), open_timeout=10, close_timeout=2) as ws:
        alert = read_until(ws, {"needsAttention"} | FINAL_STATUSES, 60, seen)
        assert alert["status"] == "needsAttention", \
            f"order {order_id}: expected a needsAttention event while releaseInventory fails, got {alert}"

        parked = wait_until(
            lambda: [s for s in get_json(f"{ORCHESTRATOR_URL}/sagas", status="needs_attention")
                     if s["orderId"] == order_id], timeout=10,
            message=f"order {order_id}: GET /sagas?status=needs_attention listing the saga")
        saga_id = parked[0]["sagaId"]
        failures = history(order_id, "releaseInventory", "failed")
        assert len(failures) == 3, f"order {order_id}: expected 3 failed releaseInventory attempts, got {failures}"
        assert len(history(order_id, "releaseInventory", "parked")) == 1, f"order {order_id}"
        assert stock("Hamster") == stock_before - 2, \
            f"order {order_id}: while parked the 2 hamsters must stay reserved: {stock_before} -> {stock('Hamster')}"
        assert get_order(order_id)["orderStatus"] not in ("completed", "cancelled"), \
            f"order {order_id}: the order must not be closed while its saga is parked"

        pets.clear_faults()
        response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{saga_id}/retry", headers=operator_headers(), timeout=10)
        assert response.status_code == 202, \
            f"order {order_id}: POST /sagas/{saga_id}/retry: expected 202, got {response.status_code} {response.text}"

        final = read_until(ws, FINAL_STATUSES, 30, seen)
    assert final["status"] == "failed" and final.get("message") == "Error, invalid credit card", \
        f"order {order_id}: final WebSocket message {final}"
    assert_well_formed(seen, order_id)

    wait_until(lambda: saga(order_id)["saga"]["status"] == "cancelled", timeout=30,
               message=f"order {order_id}: saga {saga_id} ending cancelled after the retry")
    order = wait_for_order(order_id, ("cancelled",), timeout=30)
    assert order["errorMessage"] == "Error, invalid credit card", f"order {order_id}: {order['errorMessage']}"
    assert stock("Hamster") == stock_before, \
        f"order {order_id}: Hamster stock {stock_before} -> {stock('Hamster')}, expected it back"
    assert payments(order_id)["netCents"] == 0, f"order {order_id}"
    assert len(history(order_id, "releaseInventory", "operatorRetry")) == 1, f"order {order_id}"

    # Only a parked saga can be retried.
    done = place_order(order_body([("Fish", 1)]))
    pets.watch(done["orderId"])
    assert follow(done)[-1]["status"] == "success", f"order {done['orderId']}"
    done_saga = saga(done["orderId"])["saga"]
    response = requests.post(f"{ORCHESTRATOR_URL}/sagas/{done_saga['sagaId']}/retry", headers=operator_headers(),
                             timeout=10)
    assert response.status_code == 409, \
        f"order {done['orderId']}: retrying a completed saga: expected 409, got {response.status_code} {response.text}"
    assert saga(done["orderId"])["saga"]["status"] == "completed", f"order {done['orderId']}"
