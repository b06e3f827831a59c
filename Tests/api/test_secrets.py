"""Secrets: the card number is never stored, logged or returned in full; the WebSocket token is an HMAC the Notifier
verifies without a database; each database role reaches only its own database."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid

import pytest
import requests
from websockets.sync.client import connect

from conftest import (DATABASES, FISH, operator_headers, INVENTORY_URL, LOGS, ORCHESTRATOR_URL, ORDER_URL, PAYMENT_URL, log_offsets,
                      new_log_text, notifier_ws, order_body, post, psql, secret, token_of, wait_for_final, ws_url)


def _card_number() -> str:
    """A 16-digit number that appears nowhere else (no run of its digits is a date, a port or a price)."""
    return "4" + "".join(random.choice("123456789") for _ in range(15))


def _spellings(digits: str) -> set[str]:
    spaced = " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    return {digits, spaced, spaced.replace(" ", "-"), digits[:12]}  # the first 12 digits are secret too


def _leaks(text: str, digits: str) -> list[str]:
    found = [spelling for spelling in _spellings(digits) if spelling in text]
    hex_digits = digits.encode().hex()  # bytea columns dump as hex
    if hex_digits in text.lower():
        found.append(f"hex {hex_digits}")
    return found


@pytest.fixture(scope="module")
def secret_card():
    """Orders placed with one fresh card number, through every path: completed, cancelled, idempotent replay, refused.
    Returns (digits, orderIds, every response body seen, the log offsets before the first request)."""
    digits = _card_number()
    spaced = " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    offsets = log_offsets()
    seen: list[str] = []
    order_ids = []
    key = f"secrets-{uuid.uuid4()}"
    first = order_body(card_number=spaced)
    for body, headers in [
        (first, {"Idempotency-Key": key}),
        (first, {"Idempotency-Key": key}),  # replay
        (order_body(card_number=digits, expiry="12/19"), {}),  # cancelled after compensation
        (order_body(card_number=digits, lines=((FISH, 11),)), {}),  # no stock
    ]:
        response = post("/orders", body, headers=headers)
        assert response.status_code == 202, response.text
        seen.append(response.text)
        order_ids.append(response.json()["orderId"])
    # Refused requests carrying the number, including one that fails in the database.
    for body in [order_body(card_number=digits) | {"basket": []},
                 order_body(card_number=digits, expiry="1219"),
                 order_body(card_number=digits, holder="x" * 101),
                 order_body(card_number=digits, marker="nul\u0000byte")]:
        seen.append(post("/orders", body).text)
    seen.append(post("/orders", raw=json.dumps(order_body(card_number=digits)).encode()[:-2]).text)
    order_ids = list(dict.fromkeys(order_ids))
    for order_id in order_ids:
        wait_for_final(order_id)
    return digits, order_ids, seen, offsets


def test_the_card_number_is_in_no_api_response(secret_card):
    digits, order_ids, seen, _ = secret_card
    for order_id in order_ids:
        for url in [f"{ORDER_URL}/orders/{order_id}", f"{ORCHESTRATOR_URL}/sagas/{order_id}",
                    f"{ORCHESTRATOR_URL}/sagas?orderId={order_id}", f"{PAYMENT_URL}/payments/{order_id}",
                    f"{INVENTORY_URL}/reservations/{order_id}", f"{ORCHESTRATOR_URL}/orders/{order_id}/events"]:
            seen.append(requests.get(url, headers=operator_headers(), timeout=10).text)
        order = requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=10).json()
        assert order["cardLast4"] == digits[-4:]
    seen.append(requests.get(f"{ORDER_URL}/orders", headers=operator_headers(), timeout=60).text)
    seen.append(requests.get(f"{ORCHESTRATOR_URL}/sagas", headers=operator_headers(), timeout=30).text)
    for text in seen:
        assert not _leaks(text, digits), f"the card number leaks in a response: {text[:500]}"


def test_the_card_number_is_in_no_websocket_message(secret_card):
    digits, order_ids, _, _ = secret_card
    response = post("/orders", order_body(card_number=digits))
    url = ws_url(response.json()["clientCallbackUrl"])
    with connect(url, open_timeout=10, close_timeout=2) as ws:
        while True:
            message = ws.recv(timeout=30)
            assert not _leaks(message, digits), message
            if json.loads(message)["status"] in ("success", "failed"):
                break


def test_the_card_number_is_in_no_log(secret_card):
    digits, order_ids, _, offsets = secret_card
    time.sleep(1.0)  # let the services flush
    assert LOGS.is_dir(), f"no log folder {LOGS} (set PETS_STATE)"
    logs = new_log_text(offsets)
    # These are the logs of the services under test: they mention the orders just placed.
    assert any(order_ids[0] in text for text in logs.values()), f"the logs in {LOGS} do not mention {order_ids[0]}"
    for path, text in logs.items():
        assert not _leaks(text, digits), f"the card number is in {path}: " + \
            next(line for line in text.splitlines() if _leaks(line, digits))[:500]


@pytest.mark.parametrize("database", DATABASES)
def test_the_card_number_is_in_no_database(secret_card, database):
    """Every table of every database, dumped by its own role: only the last four digits may be there."""
    digits, order_ids, _, _ = secret_card
    tables = psql(database, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    assert tables.returncode == 0, tables.stderr
    names = tables.stdout.split()
    assert names, f"no tables in {database}"
    if database == "orders":
        assert {"orders", "outbox"} <= set(names), names
    for table in names:
        dump = psql(database, database, f'COPY public."{table}" TO STDOUT')
        assert dump.returncode == 0, f"{table}: {dump.stderr}"
        leaks = _leaks(dump.stdout, digits)
        assert not leaks, f"{database}.{table} holds the card number ({leaks})"
    if database == "orders":
        stored = psql("orders", "orders",
                      f"SELECT card_last4 FROM orders WHERE id = '{order_ids[0]}'")
        assert stored.stdout.strip() == digits[-4:], stored


def test_the_websocket_token_is_an_hmac_of_the_order_id():
    key = secret("PETS_TOKEN_SECRET")
    response = post("/orders", order_body())
    placed = response.json()
    expected = hmac.new(key.encode(), placed["orderId"].lower().encode(), hashlib.sha256).hexdigest()
    assert token_of(placed["clientCallbackUrl"]) == expected


def test_the_notifier_verifies_tokens_without_a_database():
    """A token computed with the secret opens the WebSocket of an order id no database has ever seen: the Notifier
    only checks the HMAC (it has no database)."""
    key = secret("PETS_TOKEN_SECRET")
    order_id = str(uuid.uuid4())
    token = hmac.new(key.encode(), order_id.encode(), hashlib.sha256).hexdigest()
    with connect(notifier_ws(f"orderId={order_id}&token={token}"), open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"orderId": order_id}))
        try:
            message = ws.recv(timeout=1)
        except TimeoutError:
            message = None
        assert message is None or json.loads(message)["orderId"] == order_id


# ---------------------------------------------------------------------------------------------------------------
# Database roles


@pytest.mark.parametrize("role", DATABASES)
def test_each_role_reaches_its_own_database_with_its_password_only(role):
    own = psql(role, role, "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                           "WHERE rolname = current_user")
    assert own.returncode == 0, own.stderr
    assert own.stdout.strip() == f"{role}|f|f|f", f"{role} must be a plain role: {own.stdout}"
    wrong = psql(role, role, "SELECT 1", password="not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, \
        f"{role} connected with a wrong password: {wrong.stdout} {wrong.stderr}"


@pytest.mark.parametrize("role,database", [(role, database) for role in DATABASES
                                            for database in DATABASES + ("postgres", "template1") if database != role])
def test_no_role_can_connect_to_another_database(role, database):
    result = psql(role, database, "SELECT 1")
    assert result.returncode != 0, f"role {role} connected to database {database}"
    assert "permission denied for database" in result.stderr or "CONNECT privilege" in result.stderr, \
        f"role {role} on {database}: refused for another reason: {result.stderr}"
