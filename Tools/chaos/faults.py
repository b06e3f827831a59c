"""The chaos itself: a SIGKILL every few seconds to a service instance (every service in turn), to a RabbitMQ node
(a cluster's nodes one at a time, each once it is back) and to the PostgreSQL postmaster, poison messages on the
command queues, and the watch that times each restart."""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import threading
import time

import pika

from chaos import layout
from chaos.console import log
from chaos.layout import HOST, INSTANCES, PORTS, SERVICES, amqp_port
from chaos.system import System

POISON = [
    # (queue, message id, type, body)
    ("inventory.commands", "chaos-poison-not-json", "reserveInventory", b"this is {not json"),
    ("inventory.commands", "chaos-poison-unknown-type", "chaosUnknownCommand",
     json.dumps({"sagaId": "x", "orderId": "x", "step": "x", "attempt": 1, "payload": {}}).encode()),
    ("payment.commands", "chaos-poison-wrong-schema", "processPayment", json.dumps({"unexpected": True}).encode()),
]


def amqp_parameters(node: int = 1) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=HOST, port=amqp_port(node), credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=10)


def inject_poison(deadline: float) -> list[str]:
    """Publishes the poison messages with publisher confirms, retrying (a retry may duplicate one: same id)."""
    pending = list(POISON)
    injected: list[str] = []
    attempt = 0
    while pending and time.monotonic() < deadline:
        attempt += 1
        try:  # a cluster: the next node at each attempt, as the services do
            connection = pika.BlockingConnection(amqp_parameters(1 + (attempt - 1) % layout.RABBIT_NODES))
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                while pending:
                    queue, message_id, kind, body = pending[0]
                    channel.basic_publish(
                        exchange="", routing_key=queue, body=body, mandatory=True,
                        properties=pika.BasicProperties(
                            message_id=message_id, type=kind, delivery_mode=2,
                            content_type="application/json", correlation_id="chaos-poison"))
                    injected.append(message_id)
                    pending.pop(0)
            finally:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001
                    pass
        except Exception as error:  # noqa: BLE001 - broker restarting: try again
            log(f"poison injection: {error!r}; retrying")
            time.sleep(1)
    return injected


class Chaos:
    def __init__(self, args: argparse.Namespace, system: System, rng: random.Random):
        self.args = args
        self.system = system
        self.rng = rng
        self.stop = threading.Event()
        self.may_finish = threading.Event()  # set when the load is done: finish once the coverage is met
        self.kills: list[dict] = []
        self.infra: list[dict] = []
        self.skipped = 0
        self.poison: list[str] = []
        self.poison_done = threading.Event()
        self.poison_started = False
        self.cycle: list[str] = []
        self.thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self.watch = threading.Thread(target=self._watch_restarts, name="restarts", daemon=True)
        self.pending_restarts: list[dict] = []
        self.lock = threading.Lock()
        self.backtracers: set[int] = set()
        self.infra_kinds = {"both": ["rabbitmq", "postgres"], "broker": ["rabbitmq"], "database": ["postgres"],
                            "none": []}[args.infra]

    def start(self) -> None:
        self.thread.start()
        self.watch.start()

    # Coverage: what a run must have done before it may stop.
    def covered(self) -> bool:
        services = {k["service"] for k in self.kills}
        nodes = {e["node"] for e in self.infra if e["what"] == "rabbitmq"}
        services_done = self.args.no_service_kills or (len(self.kills) >= self.args.min_kills
                                                       and services == set(SERVICES))
        nodes_done = "rabbitmq" not in self.infra_kinds or len(nodes) == layout.RABBIT_NODES
        return (services_done and nodes_done and all(self.count(kind) >= 1 for kind in self.infra_kinds)
                and self.poison_done.is_set())

    def count(self, what: str) -> int:
        return sum(1 for e in self.infra if e["what"] == what)

    def _next_instance(self) -> str | None:
        for _ in range(len(INSTANCES) * 2):
            if not self.cycle:
                self.cycle = INSTANCES[:]
                self.rng.shuffle(self.cycle)
            name = self.cycle.pop(0)
            if self.system.service_pid(name) is not None:
                return name
            self.skipped += 1  # still restarting from an earlier kill: the next one
        return None

    def _run(self) -> None:
        infra_turn = 0
        kills_since_infra = 0
        while not self.stop.wait(self.args.kill_interval):
            if self.may_finish.is_set() and self.covered():
                break
            if (len(self.kills) >= 2 or self.args.no_service_kills) and not self.poison_started:
                self.poison_started = True
                threading.Thread(target=self._inject, daemon=True).start()
            if self.args.no_service_kills:
                # Only the infrastructure, one process at a time: the next after the last one is back.
                if self._infra_recovered() and self.infra_kinds:
                    self._kill_infra(self.infra_kinds[infra_turn % len(self.infra_kinds)])
                    infra_turn += 1
                continue
            if kills_since_infra >= self.args.infra_every and self._infra_recovered() and self.infra_kinds:
                self._kill_infra(self.infra_kinds[infra_turn % len(self.infra_kinds)])
                infra_turn += 1
                kills_since_infra = 0
                continue
            name = self._next_instance()
            if name is None:
                log("chaos: no live service instance to kill right now")
                continue
            pid = self.system.service_pid(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            kill = {"instance": name, "service": name.partition("-")[0], "pid": pid, "at": time.monotonic(),
                    "restartedAfter": None}
            with self.lock:
                self.kills.append(kill)
                self.pending_restarts.append(kill)
            kills_since_infra += 1
            log(f"chaos: SIGKILL {name} (pid {pid}); kill #{len(self.kills)}")

    def _inject(self) -> None:
        self.poison = inject_poison(time.monotonic() + 120)
        self.poison_done.set()
        log(f"chaos: injected poison messages {self.poison}")

    def _infra_recovered(self) -> bool:
        return all(e["recoveredAfter"] is not None for e in self.infra)

    def _kill_infra(self, what: str) -> None:
        # A cluster loses its nodes in turn, node 1 (the one every service tries first) first; never two at once,
        # since the next infrastructure kill waits until the last one has recovered.
        node = 1 + self.count("rabbitmq") % layout.RABBIT_NODES if what == "rabbitmq" else None
        pid = self.system.beam_pid(node) if what == "rabbitmq" else self.system.postmaster_pid()
        if pid is None:
            log(f"chaos: no {what} process to kill right now")
            return
        os.kill(pid, signal.SIGKILL)
        event = {"what": what, "node": node, "pid": pid, "at": time.monotonic(), "recoveredAfter": None}
        with self.lock:
            self.infra.append(event)
        label = f"rabbitmq node {node} (port {amqp_port(node)})" if layout.RABBIT_NODES > 1 and node else what
        log(f"chaos: SIGKILL {label} (pid {pid})")

    def _watch_restarts(self) -> None:
        last_stray_check = 0.0
        while not self.stop.is_set() or self.pending_restarts or not self._infra_recovered():
            now = time.monotonic()
            if now - last_stray_check > 2:
                last_stray_check = now
                for pid in set(self.system.stray_backtracers()) - self.backtracers:
                    self.backtracers.add(pid)
                    log(f"chaos: WARNING orphaned swift-backtrace (pid {pid}) of a crashed service holds our "
                        f"sockets; a restarted service cannot bind its port while it lives")
            with self.lock:
                for kill in list(self.pending_restarts):
                    pid = self.system.service_pid(kill["instance"])
                    if pid is not None and pid != kill["pid"]:
                        kill["restartedAfter"] = round(now - kill["at"], 1)
                        self.pending_restarts.remove(kill)
                for event in self.infra:
                    if event["recoveredAfter"] is None:
                        if event["what"] == "rabbitmq":
                            pid, port = self.system.beam_pid(event["node"]), amqp_port(event["node"])
                        else:
                            pid, port = self.system.postmaster_pid(), PORTS["PETS_PG_PORT"]
                        back = pid is not None and pid != event["pid"] and self.system.port_open(port)
                        if back and event["what"] == "rabbitmq" and layout.RABBIT_NODES > 1:
                            # Back means back in the cluster: only then may the next node die.
                            back = self.system.running_rabbit_nodes() == layout.RABBIT_NODES
                        if back:
                            event["recoveredAfter"] = round(now - event["at"], 1)
                            log(f"chaos: {event['what']} is back after {event['recoveredAfter']}s")
            if self.stop.is_set() and now > self._stop_deadline:
                return
            time.sleep(0.3)

    _stop_deadline = float("inf")

    def finish(self, wait: float = 180) -> None:
        self.stop.set()
        self.thread.join()
        self._stop_deadline = time.monotonic() + wait
        self.watch.join()

    def summary(self) -> dict:
        per_service = collections.Counter(k["service"] for k in self.kills)
        per_instance = collections.Counter(k["instance"] for k in self.kills)
        restarted = [k["restartedAfter"] for k in self.kills if k["restartedAfter"] is not None]
        return {
            "kills": len(self.kills),
            "killsPerService": dict(sorted(per_service.items())),
            "killsPerInstance": dict(sorted(per_instance.items())),
            "restartsObservedAfterKill": len(restarted),
            "restartSecondsMax": max(restarted, default=None),
            "brokerRestarts": self.count("rabbitmq"),
            "databaseRestarts": self.count("postgres"),
            "brokerNodesKilled": dict(sorted(collections.Counter(
                e["node"] for e in self.infra if e["what"] == "rabbitmq").items())),
            "infra": [{k: v for k, v in e.items() if k != "at"} for e in self.infra],
            "poisonInjected": self.poison,
            "orphanedBacktracers": sorted(self.backtracers),
            "skippedNotRunning": self.skipped,
        }
