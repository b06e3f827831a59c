"""After the chaos: quiescence (every order final, every queue and outbox empty), then the invariants (terminal,
payments, stock, websocket, queues, outcomes, chaos coverage, crashes; on a cluster, the cluster's), and the
evidence of each order a violation names."""

from __future__ import annotations

import collections
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pika
import requests

from chaos import layout
from chaos.client import get_json, session
from chaos.console import log
from chaos.faults import POISON, Chaos, amqp_parameters
from chaos.layout import HOST, INSTANCES, REPLICAS, SERVICES, instance_port, service_urls
from chaos.load import Load
from chaos.system import System

TERMINAL = {"completed", "cancelled"}

class Check:
    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description
        self.checked = 0
        self.violations: list[str] = []

    def ok(self, n: int = 1) -> None:
        self.checked += n

    def fail(self, message: str) -> None:
        self.checked += 1
        self.violations.append(message)

    @property
    def passed(self) -> bool:
        return not self.violations


def list_queues(system: System) -> list[dict] | None:
    out = system.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "messages", "messages_ready",
                             "messages_unacknowledged", "exclusive", timeout=60)
    if out is None:
        return None
    rows = []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) < 4 or not fields[1].strip().isdigit():
            continue
        rows.append({"name": fields[0], "messages": int(fields[1]), "ready": int(fields[2]),
                     "unacked": int(fields[3]), "exclusive": len(fields) > 4 and fields[4].strip() == "true"})
    return rows


def unhealthy() -> list[str]:
    bad = []
    for name in INSTANCES:
        try:
            if session().get(f"http://{HOST}:{instance_port(name)}/health", timeout=2).status_code != 200:
                bad.append(name)
        except requests.RequestException:
            bad.append(name)
    return bad


def all_healthy() -> bool:
    return not unhealthy()


def stream_orders() -> dict[str, dict]:
    last: Exception | None = None
    for attempt in range(10):
        url = service_urls("Order")[attempt % REPLICAS] + "/orders"
        try:
            response = session().get(url, timeout=60, stream=True)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            orders = {}
            for line in response.iter_lines():
                if line.strip():
                    order = json.loads(line)
                    orders[order["orderId"].lower()] = order
            return orders
        except (requests.RequestException, RuntimeError, ValueError) as error:
            last = error
            time.sleep(1)
    raise RuntimeError(f"cannot stream the orders: {last!r}")


def quiesce(system: System, load: Load, timeout: float) -> dict:
    """Waits until every order is final, every queue and outbox is empty; returns what was seen last."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    state: dict[str, Any] = {}
    log("quiescence: waiting for every process to be healthy again")
    health_deadline = min(deadline, time.monotonic() + 90)
    while time.monotonic() < health_deadline and not all_healthy():
        time.sleep(1)
    if not all_healthy():
        log(f"quiescence: still not healthy: {unhealthy()}")
    stable = 0
    last_log = 0.0
    while True:
        pending = [o for o in load.orders if not o.follow_done.is_set()]
        if pending:
            state = {"pendingFollowers": len(pending)}
            quiet = False
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                sample = ", ".join(f"{o.order_id or 'not yet accepted'} (seqs {sorted(o.messages)[-3:]}, "
                                   f"{o.connections} connections)" for o in pending[:3])
                log(f"quiescence: {len(pending)} orders not final over WebSocket yet, e.g. {sample}")
        else:
            try:
                orders = stream_orders()
            except RuntimeError as error:
                log(f"quiescence: {error}")
                orders = {"?": {"orderStatus": "unreadable"}}
            open_orders = [oid for oid, o in orders.items() if o["orderStatus"] not in TERMINAL]
            try:
                counts = get_json("Orchestrator", "/sagas/counts")
            except Exception as error:  # noqa: BLE001
                counts = {"error": repr(error)}
            sagas_open = sum(counts.get(s, 0) for s in ("running", "compensating")) if "error" not in counts else -1
            queues = list_queues(system) or []
            busy = [q for q in queues if not q["exclusive"] and q["name"] != "pets.dead-letters" and
                    (q["messages"] or q["unacked"])]
            outbox = {}
            for db in ("orders", "inventory", "payments", "orchestrator"):
                outbox[db] = system.psql(db, "SELECT count(*) FROM outbox")
            outbox_busy = {db: n for db, n in outbox.items() if n != "0"}
            state = {"openOrders": open_orders, "sagaCounts": counts, "busyQueues": busy, "outbox": outbox,
                     "queues": queues}
            quiet = bool(not open_orders and sagas_open == 0 and not busy and not outbox_busy and queues)
            if not quiet and time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log(f"quiescence: {len(open_orders)} open orders, sagas {counts}, busy queues "
                    f"{[(q['name'], q['messages'], q['unacked']) for q in busy]}, outbox {outbox_busy}")
        stable = stable + 1 if quiet else 0
        if stable >= 2:
            log(f"quiescent after {time.monotonic() - started:.1f}s")
            state["seconds"] = round(time.monotonic() - started, 1)
            state["quiescent"] = True
            return state
        if time.monotonic() >= deadline:
            log(f"NOT quiescent after {timeout:.0f}s: {state.get('pendingFollowers', 0)} followers waiting, "
                f"{len(state.get('openOrders', []))} open orders, sagas {state.get('sagaCounts')}, "
                f"busy queues {state.get('busyQueues')}, outbox {state.get('outbox')}")
            state["quiescent"] = False
            state["seconds"] = round(time.monotonic() - started, 1)
            report_file = system.state / "evidence" / "not-quiescent.txt"
            report_file.parent.mkdir(exist_ok=True)
            text = system.stuck_report()
            report_file.write_text(text + "\n")
            log(f"quiescence: who holds what (also in {report_file}):\n{text}")
            return state
        time.sleep(2)


def inspect_dead_letters() -> list[dict]:
    """Reads every message of pets.dead-letters without consuming it (unacked gets are requeued on close)."""
    connection = pika.BlockingConnection(amqp_parameters())
    seen = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get("pets.dead-letters", auto_ack=False)
            if method is None:
                break
            seen.append({"messageId": properties.message_id, "type": properties.type,
                         "reason": _death_reason(properties.headers), "body": body[:120].decode(errors="replace")})
            if len(seen) > 10_000:
                break
    finally:
        connection.close()  # the unacked gets go back to the queue
    return seen


def _death_reason(headers: dict | None) -> str | None:
    deaths = (headers or {}).get("x-death") or []
    if deaths and isinstance(deaths[0], dict):
        return f"{deaths[0].get('reason')} from {deaths[0].get('queue')}"
    return (headers or {}).get("x-first-death-reason")


def check_invariants(system: System, load: Load, chaos: Chaos, quiet: dict, args) -> tuple[list[Check], dict]:
    checks = {
        "terminal": Check("terminal", "every accepted order ended completed or cancelled; no saga open or parked"),
        "payments": Check("payments", "completed: one charge of its amount, no refund; cancelled: net 0"),
        "stock": Check("stock", "initial = on hand + completed quantities; reservations match the outcome"),
        "websocket": Check("websocket", "every subscriber got the final message; seq 1..n in order, no gaps"),
        "queues": Check("queues", "no message left or unacked; dead letters = the injected poison only"),
        "outcomes": Check("outcomes", "one order per request; orders meant to fail never completed; amounts as priced"),
        "chaos": Check("chaos", ("broker and database restarts only" if args.no_service_kills else
                                 f">= {args.min_kills} kills over every service, broker and database restarts")
                       + (f"; every one of the {layout.RABBIT_NODES} broker nodes killed" if layout.RABBIT_NODES > 1 else "")),
        "crashes": Check("crashes", "no service died on its own: every death was one of our SIGKILLs"
                         + (" (--allow-crashes: reported, not failed)" if args.allow_crashes else "")),
    }
    if layout.RABBIT_NODES > 1:
        checks["cluster"] = Check("cluster", f"{layout.RABBIT_NODES} nodes running in one cluster; every durable queue a "
                                  f"quorum queue with {layout.RABBIT_NODES} members, all online")
    evidence: dict[str, Any] = {}
    db_orders = stream_orders()
    accepted = [o for o in load.orders if o.order_id]
    by_id = {o.order_id.lower(): o for o in accepted}

    # terminal --------------------------------------------------------------------------------------------
    c = checks["terminal"]
    for oid, order in by_id.items():
        if oid not in db_orders:
            c.fail(f"{oid}: accepted (202) but not in GET /orders")
    for oid, view in db_orders.items():
        if view["orderStatus"] in TERMINAL:
            c.ok()
        else:
            c.fail(f"{oid}: orderStatus {view['orderStatus']}")
    for status in ("needs_attention", "running", "compensating"):
        try:
            sagas = get_json("Orchestrator", f"/sagas?status={status}&limit=1000")
        except Exception as error:  # noqa: BLE001
            c.fail(f"GET /sagas?status={status}: {error!r}")
            continue
        for saga in sagas:
            c.fail(f"saga {saga['sagaId']} of order {saga['orderId']} is {status} (step {saga.get('step')})")
    try:
        counts = get_json("Orchestrator", "/sagas/counts")
        total = sum(counts.values())
        if total != len(db_orders):
            c.fail(f"{total} sagas for {len(db_orders)} orders: {counts}")
    except Exception as error:  # noqa: BLE001
        c.fail(f"GET /sagas/counts: {error!r}")
    unknown = [oid for oid in db_orders if oid not in by_id]
    # Each client request has its own address line ("N Chaos Street") and Idempotency-Key: two orders with the same
    # line mean a retried POST placed a second order.
    by_address: dict[str, list[str]] = collections.defaultdict(list)
    for oid, view in db_orders.items():
        by_address[(view.get("shippingAddress") or {}).get("address", "")].append(oid)
    for address, ids in by_address.items():
        if len(ids) > 1 and address.endswith("Chaos Street"):
            checks["outcomes"].fail(f"one request ({address}, one Idempotency-Key) placed {len(ids)} orders: {ids}")
    for order in load.orders:
        if order.rejected:  # every body the clients send is valid: a 4xx is a bug
            checks["outcomes"].fail(f"order #{order.index} ({order.kind}) refused: {order.rejected}")

    # payments, reservations (per order, in parallel) ------------------------------------------------------
    def fetch(oid: str) -> tuple[str, Any, Any]:
        try:
            payments = get_json("Payment", f"/payments/{oid}")
        except Exception as error:  # noqa: BLE001
            payments = error
        try:
            reservations = get_json("Inventory", f"/reservations/{oid}")
        except Exception as error:  # noqa: BLE001
            reservations = error
        return oid, payments, reservations

    with ThreadPoolExecutor(max_workers=8) as pool:
        fetched = list(pool.map(fetch, db_orders))

    cp, cs, co = checks["payments"], checks["stock"], checks["outcomes"]
    completed_qty: collections.Counter = collections.Counter()
    for oid, payments, reservations in fetched:
        view = db_orders[oid]
        status = view["orderStatus"]
        if status == "completed":
            for line in view["basket"]:
                completed_qty[line["id"]] += line["quantity"]
        if isinstance(payments, Exception):
            cp.fail(f"{oid}: GET /payments: {payments!r}")
        elif status == "completed":
            amount = round((view.get("paymentAmount") or 0) * 100)
            charges = [e for e in payments["ledger"] if e["kind"] == "charge"]
            refunds = [e for e in payments["ledger"] if e["kind"] != "charge"]
            if len(charges) != 1 or charges[0]["amountCents"] != amount or refunds or payments["netCents"] != amount:
                cp.fail(f"{oid}: completed for {amount} cents but ledger {payments['ledger']} "
                        f"net {payments['netCents']}")
            else:
                cp.ok()
        elif status == "cancelled":
            if payments["netCents"] != 0:
                cp.fail(f"{oid}: cancelled but net payment {payments['netCents']} cents, ledger {payments['ledger']}")
            else:
                cp.ok()
        if isinstance(reservations, Exception):
            cs.fail(f"{oid}: GET /reservations: {reservations!r}")
        elif status == "completed":
            held = [r for r in reservations if r["status"] == "reserved"]
            if len(held) != 1:
                cs.fail(f"{oid}: completed but reservations {[(r['sagaId'], r['status']) for r in reservations]}")
            else:
                cs.ok()
        elif status == "cancelled":
            held = [r for r in reservations if r["status"] == "reserved"]
            if held:
                cs.fail(f"{oid}: cancelled but still holds a reservation: {held}")
            else:
                cs.ok()
        # outcomes
        client = by_id.get(oid)
        if client is not None and status == "completed":
            if client.kind != "good":
                co.fail(f"{oid}: a '{client.kind}' order completed")
            elif round((view.get("paymentAmount") or 0) * 100) != client.expected_cents:
                co.fail(f"{oid}: paymentAmount {view.get('paymentAmount')}, expected {client.expected_cents / 100}")
            else:
                co.ok()
        elif client is not None and status == "cancelled":
            co.ok()

    try:
        stock = get_json("Inventory", "/stock")
        for product in stock:
            pid = product["productId"]
            expected = args.initial_stock - completed_qty.get(pid, 0)
            if product["stock"] != expected:
                cs.fail(f"product {product['title']}: on hand {product['stock']}, expected {expected} "
                        f"({args.initial_stock} - {completed_qty.get(pid, 0)} in completed orders)")
            else:
                cs.ok()
    except Exception as error:  # noqa: BLE001
        cs.fail(f"GET /stock: {error!r}")

    # websocket ------------------------------------------------------------------------------------------
    cw = checks["websocket"]
    for oid, order in by_id.items():
        problems = list(order.ws_issues)
        if order.final is None:
            problems.append(f"no final message (got seqs {sorted(order.messages)}, "
                            f"{order.connections} connections)")
        else:
            n = order.final.get("seq")
            if sorted(order.messages) != list(range(1, (n or 0) + 1)):
                problems.append(f"seqs {sorted(order.messages)} with the final at {n}")
            status = db_orders.get(oid, {}).get("orderStatus")
            want = {"completed": "success", "cancelled": "failed"}.get(status)
            if order.final.get("status") != want:
                problems.append(f"final message {order.final.get('status')} but the order is {status}")
            if order.final.get("status") == "success":
                paid = db_orders.get(oid, {}).get("paymentAmount")
                if paid is None or abs(order.final.get("amountPaid", -1) - paid) > 0.001:
                    problems.append(f"amountPaid {order.final.get('amountPaid')} but paymentAmount {paid}")
        if problems:
            cw.fail(f"{oid}: " + "; ".join(problems[:4]))
        else:
            cw.ok()

    # queues ---------------------------------------------------------------------------------------------
    cq = checks["queues"]
    queues = list_queues(system)
    if queues is None:
        cq.fail("rabbitmqctl list_queues failed")
    else:
        for q in queues:
            if q["name"] == "pets.dead-letters":
                continue
            if q["messages"] or q["unacked"]:
                cq.fail(f"queue {q['name']}: {q['messages']} messages, {q['unacked']} unacked")
            else:
                cq.ok()
    outbox = {db: system.psql(db, "SELECT count(*) FROM outbox") for db in ("orders", "inventory", "payments",
                                                                          "orchestrator")}
    for db, n in outbox.items():
        if n != "0":
            cq.fail(f"outbox of {db}: {n} rows left")
        else:
            cq.ok()
    try:
        dead = inspect_dead_letters()
        evidence["deadLetters"] = dead
        ids = collections.Counter(m["messageId"] for m in dead)
        injected = {message_id for _, message_id, _, _ in POISON}
        for message_id in sorted(injected - set(ids)):
            cq.fail(f"injected poison {message_id} is not in pets.dead-letters")
        for m in dead:
            if m["messageId"] not in injected:
                cq.fail(f"unexpected dead letter {m}")
            else:
                cq.ok()
    except Exception as error:  # noqa: BLE001
        cq.fail(f"cannot read pets.dead-letters: {error!r}")

    # chaos coverage -------------------------------------------------------------------------------------
    cc = checks["chaos"]
    summary = chaos.summary()
    if summary["kills"] < args.min_kills and not args.no_service_kills:
        cc.fail(f"only {summary['kills']} kills (wanted >= {args.min_kills})")
    missing = set(SERVICES) - set(summary["killsPerService"])
    if missing and not args.no_service_kills:
        cc.fail(f"never killed: {sorted(missing)}")
    never = set(range(1, layout.RABBIT_NODES + 1)) - set(summary["brokerNodesKilled"])
    if layout.RABBIT_NODES > 1 and never:
        cc.fail(f"broker nodes never killed: {sorted(never)}")
    # A run that kills only the infrastructure answers for the kinds it was told to kill; any other run for both.
    wanted = chaos.infra_kinds if args.no_service_kills else ["rabbitmq", "postgres"]
    if summary["brokerRestarts"] < 1 and "rabbitmq" in wanted:
        cc.fail("RabbitMQ was never killed")
    if summary["databaseRestarts"] < 1 and "postgres" in wanted:
        cc.fail("PostgreSQL was never killed")
    if summary["restartsObservedAfterKill"] != summary["kills"]:
        cc.fail(f"{summary['kills'] - summary['restartsObservedAfterKill']} killed instances never came back")
    for event in summary["infra"]:
        if event["recoveredAfter"] is None:
            cc.fail(f"{event['what']} never came back")
    if cc.passed:
        cc.ok()

    if "cluster" in checks:
        check_cluster(system, checks["cluster"])

    ck = checks["crashes"]
    crashes = system.crashes()
    restarts = system.supervisor_restarts()
    kills = collections.Counter(k["instance"] for k in chaos.kills)
    for name in INSTANCES:
        unplanned = max(restarts.get(name, 0) - kills.get(name, 0), 0)
        if (crashes.get(name) or unplanned) and args.allow_crashes:
            ck.ok()
            evidence.setdefault("allowedCrashes", []).append(name)
        elif crashes.get(name) or unplanned:
            ck.fail(f"{name}: {crashes.get(name, 0)} crashes in its log, restarted {restarts.get(name, 0)}x "
                    f"for {kills.get(name, 0)} kills (logs/{name}.log)")
        else:
            ck.ok()
    for sample in system.crash_samples():
        evidence.setdefault("crashSamples", []).append(sample)
    if chaos.backtracers:
        ck.fail(f"{len(chaos.backtracers)} orphaned swift-backtrace processes held service ports: "
                f"pids {sorted(chaos.backtracers)}")

    evidence["unknownOrders"] = unknown
    evidence["dbOrders"] = db_orders
    return list(checks.values()), evidence


def check_cluster(system: System, check: Check) -> None:
    running = system.running_rabbit_nodes()
    if running != layout.RABBIT_NODES:
        check.fail(f"node 1 sees {running} running nodes, not {layout.RABBIT_NODES}")
    else:
        check.ok()
    out = system.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "type", "durable", "members",
                             "online", timeout=60)
    if out is None:
        check.fail("rabbitmqctl list_queues name type durable members online failed")
        return
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) < 5 or fields[2].strip() != "true":
            continue  # the Notifier's transient queues live on any one node
        name, kind, members, online = fields[0], fields[1].strip(), fields[3], fields[4]
        members_n, online_n = members.count("@"), online.count("@")
        if kind != "quorum" or members_n != layout.RABBIT_NODES or online_n != layout.RABBIT_NODES:
            check.fail(f"queue {name}: {kind}, members {members}, online {online}")
        else:
            check.ok()


def broker_pauses(chaos: Chaos, load: Load, window: float = 60) -> list[dict]:
    """For each broker kill: how long until the next order finished, and the longest gap between two orders
    finishing (over WebSocket) from the last one before the kill to `window` seconds after it, or to the next
    infrastructure kill if that comes sooner."""
    finals = sorted(o.final_at for o in load.orders if o.final_at is not None)
    gaps = [b - a for a, b in zip(finals, finals[1:])]
    typical = sorted(gaps)[len(gaps) // 2] if gaps else None
    pauses = []
    for i, event in enumerate(chaos.infra):
        if event["what"] != "rabbitmq":
            continue
        at = event["at"]
        end = min([at + window] + [e["at"] for e in chaos.infra[i + 1:i + 2]])
        before = [t for t in finals if t <= at][-1:]
        after = [t for t in finals if at < t <= end]
        series = before + after
        pauses.append({
            "node": event["node"], "recoveredAfter": event["recoveredAfter"],
            "firstFinalAfter": round(after[0] - at, 2) if after else None,
            "longestGap": round(max((b - a for a, b in zip(series, series[1:])), default=0), 2) if after else None,
            "typicalGap": round(typical, 2) if typical is not None else None,
        })
    return pauses


def save_evidence(system: System, checks: list[Check], evidence: dict) -> Path | None:
    """For each order named in a violation: its saga timeline, order view, payments and reservations."""
    ids = set()
    for check in checks:
        for violation in check.violations:
            ids.update(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", violation))
    if not ids:
        return None
    folder = system.state / "evidence"
    folder.mkdir(exist_ok=True)
    for oid in sorted(ids)[:50]:
        record: dict[str, Any] = {"order": evidence["dbOrders"].get(oid)}
        for key, service, path in (("saga", "Orchestrator", f"/sagas/{oid}"), ("payments", "Payment", f"/payments/{oid}"),
                                   ("reservations", "Inventory", f"/reservations/{oid}")):
            try:
                record[key] = get_json(service, path, attempts=2)
            except Exception as error:  # noqa: BLE001
                record[key] = repr(error)
        (folder / f"{oid}.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder
