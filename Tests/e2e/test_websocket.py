"""The order's WebSocket: late and reconnecting subscribers, the seed's status query, and refusals."""

import json
import secrets

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import (
    FINAL_STATUSES, assert_well_formed_stream, follow, get_order, order_body, place_order,
    recv_json, wait_for_order_status, wait_until, with_query, ws_url,
)
from pets.websocket import read_until_final


@pytest.fixture(scope="module")
def finished_order():
    """An order that has run to its end, with the messages a live subscriber saw."""
    placed = place_order(order_body([("Fish", 1)], post_code="2882"))
    messages = follow(placed["clientCallbackUrl"])
    assert messages[-1]["status"] == "success"
    return placed, messages


def test_late_subscriber_gets_every_event():
    placed = place_order(order_body([("Chicken", 1)], post_code="2886"))
    order_id = placed["orderId"]
    wait_for_order_status(order_id, "completed")
    # Subscribe only once the final event has been recorded too.
    wait_until(lambda: (get_order(order_id)["history"] or [{}])[-1].get("status") == "success",
               message="the final event recorded")

    messages = follow(placed["clientCallbackUrl"])
    assert_well_formed_stream(messages, order_id)
    assert messages[-1]["status"] == "success"
    assert messages[-1]["amountPaid"] == pytest.approx(20 + 5)
    history = get_order(order_id)["history"]
    assert [(h["seq"], h["status"], h.get("step")) for h in history] == \
        [(m["seq"], m["status"], m.get("step")) for m in messages]


def test_reconnecting_subscriber_replays_the_same_events_without_duplicates():
    placed = place_order(order_body([("Hamster", 1)], post_code="2881"))
    order_id = placed["orderId"]
    url = ws_url(placed["clientCallbackUrl"])

    with connect(url, open_timeout=10) as live:
        first_two = [recv_json(live, 30), recv_json(live, 30)]
        # A second subscriber joins mid-way, and a first one drops and comes back.
        with connect(url, open_timeout=10) as second:
            live_rest = read_until_final(live)
            second_all = read_until_final(second)
    live_all = first_two + live_rest
    with connect(url, open_timeout=10) as again:
        replayed = read_until_final(again)

    assert_well_formed_stream(live_all, order_id)
    assert second_all == live_all
    assert replayed == live_all


def test_connection_stays_open_after_final_and_answers_status_query(finished_order):
    placed, messages = finished_order
    order_id = placed["orderId"]
    with connect(ws_url(placed["clientCallbackUrl"]), open_timeout=10) as ws:
        replay = read_until_final(ws)
        assert replay == messages
        ws.send(json.dumps({"orderId": order_id}))
        latest = recv_json(ws, 10)
        assert latest == messages[-1]
        # Asked again, the same answer: the connection is still usable.
        ws.send(json.dumps({"orderId": order_id}))
        assert recv_json(ws, 10) == messages[-1]


def test_status_query_mid_flight_returns_a_status_of_this_order():
    placed = place_order(order_body([("Bird", 1)], post_code="2889"))
    order_id = placed["orderId"]
    with connect(ws_url(placed["clientCallbackUrl"]), open_timeout=10) as ws:
        received = [recv_json(ws, 30)]
        ws.send(json.dumps({"orderId": order_id}))
        if received[0]["status"] not in FINAL_STATUSES:
            received += read_until_final(ws)
        # Split what came into the event stream (seq 1, 2, ...) and the answer to the query (an event sent again).
        stream, answers = [], []
        for message in received:
            (stream if message.get("seq") == len(stream) + 1 else answers).append(message)
        if not answers:
            answers.append(recv_json(ws, 10))
    assert_well_formed_stream(stream, order_id)
    assert stream[-1]["status"] == "success"
    assert len(answers) == 1, f"one answer to one query: {received}"
    answer = answers[0]
    assert answer["orderId"] == order_id
    assert answer == stream[answer["seq"] - 1], f"the answer must repeat a recorded event: {answer}"


def test_status_query_for_another_order_reveals_nothing(finished_order):
    placed, _ = finished_order
    other = place_order(order_body([("Fish", 1)], post_code="2880"))
    other_messages = follow(other["clientCallbackUrl"])
    with connect(ws_url(placed["clientCallbackUrl"]), open_timeout=10) as ws:
        read_until_final(ws)
        ws.send(json.dumps({"orderId": other["orderId"]}))
        try:
            answer = recv_json(ws, 1.5)
        except TimeoutError:
            return
        except Exception:  # a refusal by closing the connection is fine too
            return
        assert answer.get("orderId") != other["orderId"], "another order's status leaked"
        assert answer not in other_messages


def _refusal(url):
    with pytest.raises(InvalidStatus) as refused:
        with connect(url, open_timeout=10) as ws:
            ws.recv(timeout=2)
    return refused.value.response.status_code


def _refusal_cases(finished, other):
    order_id = finished["orderId"]
    other_token = other["clientCallbackUrl"].split("token=")[1]
    return {
        "no token": f"orderId={order_id}",
        "empty token": f"orderId={order_id}&token=",
        "wrong token": f"orderId={order_id}&token={secrets.token_hex(32)}",
        "another order's token": f"orderId={order_id}&token={other_token}",
        "no order id": f"token={finished['clientCallbackUrl'].split('token=')[1]}",
    }


@pytest.fixture(scope="module")
def refusal_cases(finished_order):
    placed, _ = finished_order
    other = place_order(order_body([("Fish", 1)], post_code="2880"))
    return placed, _refusal_cases(placed, other)


@pytest.mark.parametrize("case", ["no token", "empty token", "wrong token", "another order's token", "no order id"])
def test_websocket_without_this_orders_token_is_refused(refusal_cases, case):
    placed, cases = refusal_cases
    status = _refusal(with_query(placed["clientCallbackUrl"], cases[case]))
    assert 400 <= status < 500, status
