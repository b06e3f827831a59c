"""Nothing stalls for ever: a WebSocket session whose history fetch fails is made whole once the Orchestrator
answers again, and a message that fails the same way on every attempt is dead-lettered instead of holding its
consumer's slot for ever.
"""

from __future__ import annotations

import json
import os
import signal
import time

from websockets.sync.client import connect

from conftest import (
    FINAL_STATUSES, follow, metric, order_body, payments, place_order, wait_for_order, wait_until,
    ws_url,
)
from pets.websocket import read_until


def test_sessions_whose_history_fetch_fails_are_made_whole_when_the_orchestrator_answers_again(pets):
    """A restarted Notifier knows no events of an order that completed before; the Orchestrator, which it asks, is
    frozen (SIGSTOP) long past the fetch's 5 s timeout. Three sessions of the order get nothing meanwhile; once the
    Orchestrator runs again each gets the whole stream, because failed fetches are retried for as long as a session
    is open, and the sessions share their fetches instead of asking once each."""
    pets.configure({})
    placed = place_order(order_body([("Fish", 1)]))
    order_id = pets.watch(placed["orderId"])
    wait_for_order(order_id, ("completed",), timeout=60)
    expected = [m["seq"] for m in follow(placed)]

    notifier = pets.pid("Notifier")
    os.kill(notifier, signal.SIGKILL)  # its memory of recent orders goes with it
    pets.wait_for_restart("Notifier", notifier)
    fetches_before = metric("Notifier", "pets_history_fetches_total")

    orchestrator = pets.pid("Orchestrator")
    os.kill(orchestrator, signal.SIGSTOP)
    sessions = []
    try:
        sessions = [connect(ws_url(placed), open_timeout=10, close_timeout=2) for _ in range(3)]
        time.sleep(7)  # the first fetch times out (5 s) and fails
        for ws in sessions:
            try:
                early = ws.recv(timeout=0.1)
            except TimeoutError:
                continue
            raise AssertionError(f"order {order_id}: a message arrived while the Orchestrator was frozen: {early}")
    finally:
        os.kill(orchestrator, signal.SIGCONT)
    try:
        for ws in sessions:
            seen: list[dict] = []
            read_until(ws, FINAL_STATUSES, timeout=30, seen=seen)
            assert [m["seq"] for m in seen] == expected, f"order {order_id}: {json.dumps(seen)}"
            assert seen[-1]["status"] == "success"
    finally:
        for ws in sessions:
            ws.close()
    fetches = metric("Notifier", "pets_history_fetches_total") - fetches_before
    # Unshared, three sessions would have asked at least twice each (the failed round and the good one).
    assert 1 <= fetches <= 3, f"order {order_id}: {fetches:g} history requests for 3 sessions"


def test_a_message_that_always_times_out_is_dead_lettered_and_the_consumer_goes_on(pets):
    """Payment's handling of `processPayment` takes longer than the attempt deadline every time (an injected delay
    of 3 s against a 1 s deadline): each delivery is tried twice, requeued once, then dead-lettered with its reason,
    instead of being retried for ever. The saga's own deadline fails the step, the order is cancelled with nothing
    charged, and the same consumer then handles the next order as usual."""
    pets.configure({
        "PETS_MESSAGE_DEADLINE_SECONDS": "1", "PETS_MESSAGE_ATTEMPTS": "2", "PETS_MESSAGE_DELIVERIES": "2",
        "PETS_STEP_ATTEMPTS": "1", "PETS_STEP_DEADLINE_SECONDS": "8",
    })
    dead_before = metric("Payment", "pets_messages_dead_lettered_total", queue="payment.commands")
    requeued_before = metric("Payment", "pets_messages_requeued_total", queue="payment.commands")
    with pets.faults("delay processPayment 3"):
        placed = place_order(order_body([("Fish", 1)]))
        order_id = pets.watch(placed["orderId"])
        wait_until(
            lambda: metric("Payment", "pets_messages_dead_lettered_total", queue="payment.commands") > dead_before,
            timeout=40, message=f"order {order_id}: processPayment dead-lettered")
        assert metric("Payment", "pets_messages_requeued_total", queue="payment.commands") > requeued_before
        assert "failed 2 times in a row" in pets.log("Payment")
        final = wait_for_order(order_id, ("cancelled",), timeout=60)
    assert final["errorType"] == "Timeout", f"order {order_id}: {final}"
    assert payments(order_id)["netCents"] == 0, f"order {order_id}"

    after = place_order(order_body([("Fish", 1)]))
    pets.watch(after["orderId"])
    wait_for_order(after["orderId"], ("completed",), timeout=60)
    assert follow(after)[-1]["status"] == "success"
