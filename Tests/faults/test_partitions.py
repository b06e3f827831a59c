"""Liveness when the network goes silent: no FIN, no RST, just nothing. A service must notice a dead broker
connection by its heartbeats (two intervals without a frame), say so on /health, reconnect when the network is
back, and lose nothing that was asked of it meanwhile.

H, the heartbeat interval, is set small here (PETS_AMQP_HEARTBEAT_SECONDS=2); the bar is /health 503 within 3H of
the partition and 200 within 3H of its end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import (
    PETS_BIN, PORTS, REPO, STATE, follow, get_order, order_body, payments, place_order, wait_for_order, wait_until,
)
from tcp_proxy import SilentProxy

H = 2
PROXY_PORT = 20690


def seconds_until(predicate, limit: float) -> float:
    """How long until `predicate` holds; fails the test past `limit` seconds."""
    started = time.monotonic()
    while not predicate():
        elapsed = time.monotonic() - started
        if elapsed > limit:
            pytest.fail(f"not within {limit} s")
        time.sleep(0.1)
    return time.monotonic() - started


def restart_behind_proxy(pets, service: str, proxy_port: int) -> subprocess.Popen:
    """Runs `service` with its broker connection through the proxy: the same environment the supervisor gave it,
    another AMQP URL and a short heartbeat. The supervisor is stopped (it would restart the old settings)."""
    pets.lib("pets_stop_supervisor")
    pid = pets.pid(service)
    environ = dict(
        entry.split("=", 1) for entry in
        open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in entry)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pets.is_running(pid, service), timeout=30, message=f"{service} stopping")
    environ["PETS_AMQP_URL"] = environ["PETS_AMQP_URL"].replace(
        f":{PORTS['PETS_AMQP_PORT']}/", f":{proxy_port}/")
    environ["PETS_AMQP_HEARTBEAT_SECONDS"] = str(H)
    log = open(STATE / "logs" / f"{service}.log", "ab")
    process = subprocess.Popen([str(PETS_BIN / service)], env=environ, cwd=REPO, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # Recorded where lib.sh looks, so the harness stops it like any service.
    (STATE / "pids" / f"{service}.pid").write_text(f"{process.pid}\n")
    wait_until(lambda: pets.healthy(service), timeout=60, message=f"{service} healthy behind the proxy")
    return process


def test_silent_partition_between_order_service_and_broker_is_noticed_and_heals(pets):
    """The Order service's broker connection goes through a proxy that stops forwarding. Its /health turns 503
    within 3H; meanwhile orders are still accepted (from the database alone) and wait in its outbox; when the
    network is back /health is 200 within 3H and every order placed during the partition completes."""
    pets.configure({})
    with SilentProxy(PROXY_PORT, PORTS["PETS_AMQP_PORT"]) as proxy:
        process = restart_behind_proxy(pets, "Order", PROXY_PORT)
        try:
            before = place_order(order_body([("Fish", 1)]))
            wait_for_order(pets.watch(before["orderId"]), ("completed",), timeout=60)

            proxy.pause()
            noticed = seconds_until(lambda: not pets.healthy("Order"), limit=3 * H + 1)
            assert noticed <= 3 * H, f"/health still 200 {noticed:.1f} s into the partition"
            placed = [place_order(order_body([("Fish", 1)])) for _ in range(3)]
            for order in placed:
                pets.watch(order["orderId"])
                assert get_order(order["orderId"])["orderStatus"] == "placed"
            time.sleep(H)  # well into the partition: nothing may have gone out
            assert all(get_order(o["orderId"])["orderStatus"] == "placed" for o in placed)

            proxy.resume()
            healed = seconds_until(lambda: pets.healthy("Order"), limit=3 * H + 1)
            assert healed <= 3 * H, f"/health still 503 {healed:.1f} s after the partition ended"
            for order in placed:
                final = wait_for_order(order["orderId"], ("completed",), timeout=60)
                assert round(final["paymentAmount"] * 100) == payments(order["orderId"])["netCents"]
                messages = follow(order)
                assert messages[-1]["status"] == "success"
        finally:
            process.terminate()
            process.wait(timeout=30)
            pets.knobs = None  # the next test starts the services (and the supervisor) afresh


def test_frozen_broker_is_noticed_by_every_service_and_orders_placed_meanwhile_complete(pets):
    """RabbitMQ is frozen with SIGSTOP: its sockets stay open and silent. Every service's /health turns 503 within
    3H; orders are still accepted; after SIGCONT every service reconnects and the orders complete."""
    pets.configure({"PETS_AMQP_HEARTBEAT_SECONDS": str(H)})
    beam = int((STATE / "rabbitmq" / "rabbit.pid").read_text().strip())
    services = ("Inventory", "Payment", "Orchestrator", "Order", "Notifier")
    os.kill(beam, signal.SIGSTOP)
    try:
        noticed = seconds_until(lambda: not any(pets.healthy(s) for s in services), limit=3 * H + 2)
        assert noticed <= 3 * H + 1, f"a service still reported a working broker {noticed:.1f} s into the freeze"
        placed = [place_order(order_body([("Bird", 1)])) for _ in range(3)]
        for order in placed:
            pets.watch(order["orderId"])
    finally:
        os.kill(beam, signal.SIGCONT)
    # A thawed broker first notices its own dead connections; give it one interval more than a partition.
    healed = seconds_until(lambda: all(pets.healthy(s) for s in services), limit=6 * H + 10)
    print(f"frozen broker: noticed after {noticed:.1f} s, all healthy {healed:.1f} s after SIGCONT")
    for order in placed:
        wait_for_order(order["orderId"], ("completed",), timeout=90)
        assert follow(order)[-1]["status"] == "success"
