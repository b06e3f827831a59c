"""The command line of Tools/chaos, and a run from start to verdict: start the system, load and chaos until the
coverage is met, quiescence, the invariants, the summary (and --json), then stop everything."""

from __future__ import annotations

import argparse
import collections
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chaos.client import get_json
from chaos.console import log
from chaos.faults import Chaos
from chaos.invariants import Check, broker_pauses, check_invariants, quiesce, save_evidence
from chaos.layout import use_slot
from chaos.load import Load
from chaos.metrics import MetricsScraper
from chaos.system import System
from pets import REPO


class Aborted(Exception):
    """Ctrl-C or SIGTERM."""

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="Tools/chaos",
        description="Start AWSomePets with replicas, place orders while killing processes (services, RabbitMQ, "
                    "PostgreSQL), then check that every order ended consistently. Exit 1 on any violation.",
        epilog="Short run (as in scripts/test): Tools/chaos --orders 300. Long run: Tools/chaos --orders 10000 "
               "--concurrency 12 --infra-every 20 --quiesce-timeout 600. On a three-node RabbitMQ cluster: "
               "Tools/chaos --rabbit-nodes 3 --orders 2000 --rate 8. State and logs: .pets/chaos/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--orders", type=int, default=300, help="orders to place")
    parser.add_argument("--concurrency", type=int, default=8, help="clients placing orders at once")
    parser.add_argument("--max-in-flight", type=int, default=64,
                        help="accepted orders still being followed over WebSocket, at most")
    parser.add_argument("--rate", type=float, default=None,
                        help="orders per second (0: as fast as accepted; default: spread over the planned chaos)")
    parser.add_argument("--kill-interval", type=float, default=3.0, help="seconds between two chaos events")
    parser.add_argument("--min-kills", type=int, default=10,
                        help="service kills the run must reach before it may stop (it goes on while orders flow)")
    parser.add_argument("--infra-every", type=int, default=5,
                        help="after this many service kills, kill RabbitMQ or PostgreSQL (alternating)")
    parser.add_argument("--infra", choices=["both", "broker", "database", "none"], default="both",
                        help="which of RabbitMQ and PostgreSQL to kill (anything but both fails the chaos check: "
                             "for narrowing a problem down)")
    parser.add_argument("--duration", type=float, default=None,
                        help="cap in seconds on the loaded chaos phase (orders left are not placed)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (orders and kill order)")
    parser.add_argument("--initial-stock", type=int, default=100_000, help="PETS_INITIAL_STOCK per pet")
    parser.add_argument("--step-deadline", type=float, default=3, help="PETS_STEP_DEADLINE_SECONDS (orchestrator)")
    parser.add_argument("--accept-deadline", type=float, default=120,
                        help="seconds to keep retrying a POST (same Idempotency-Key) before it counts as not accepted")
    parser.add_argument("--ws-idle", type=float, default=20,
                        help="seconds without a WebSocket message before the client reconnects")
    parser.add_argument("--quiesce-timeout", type=float, default=240,
                        help="seconds to wait after the chaos for every order and queue to settle")
    parser.add_argument("--bin", default=os.environ.get("PETS_BIN") or str(REPO / ".build" / "debug"),
                        help="folder with the five service binaries (PETS_BIN)")
    parser.add_argument("--allow-crashes", action="store_true",
                        help="a service that dies on its own (not one of our SIGKILLs) is reported, not a failure")
    parser.add_argument("--slot", type=int, default=0, choices=range(0, 10), metavar="N",
                        help="run in .pets/chaos-N on ports shifted by N (infrastructure +5N, HTTP +200N), beside "
                             "another chaos run; 0 is .pets/chaos")
    parser.add_argument("--rabbit-nodes", type=int, default=1, choices=(1, 3),
                        help="RabbitMQ nodes (PETS_RABBIT_NODES); with 3, broker kills take the nodes in turn, "
                             "one at a time, and the invariants add the cluster's (3 nodes, 3 members per queue)")
    parser.add_argument("--port-base", type=int, default=None, metavar="B",
                        help="ports from one block instead of --slot's (PostgreSQL B+432, epmd B+369, AMQP B+672.., "
                             "management B+680.., distribution B+772.., HTTP B+1080..B+1084 and +100); "
                             "folder .pets/chaos-pB. Keep them below 32768: above, the kernel lends ports to "
                             "outgoing connections and a service may find its own taken")
    parser.add_argument("--no-service-kills", action="store_true",
                        help="kill only what --infra names, one process at a time, each after the last is back: "
                             "for measuring how long orders pause at each broker node loss")
    parser.add_argument("--log-level", default="info", help="LOG_LEVEL of the services")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave everything running at the end (stop it with "
                             "`PETS_STATE=$PWD/.pets/chaos scripts/down`, or by running the tool again)")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1 or args.kill_interval <= 0 or args.infra_every < 1:
        parser.error("--orders, --concurrency, --infra-every must be >= 1 and --kill-interval > 0")
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if args.rate is None:
        kinds = {"both": 2, "broker": 1, "database": 1, "none": 0}[args.infra]
        infra = max(2, args.min_kills // args.infra_every, kinds * args.rabbit_nodes if args.rabbit_nodes > 1 else 0)
        if args.no_service_kills:  # each kill waits for the last one to recover (a broker node: about 20 s)
            planned = infra * (args.kill_interval + 20) + 20
        else:
            planned = (max(args.min_kills, infra * args.infra_every) + infra) * args.kill_interval + 20
        args.rate = args.orders / planned
    return args


def take_lock(state: Path) -> Any:
    """One chaos run at a time per folder: a second one would wipe the first one's folder and take its ports."""
    path = state.parent / f"{state.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        log(f"another chaos run holds {path} ({holder}); waiting for it to finish")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}\n")
    handle.flush()
    return handle  # held until the process exits


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_slot(args.slot, args.rabbit_nodes, args.port_base)
    system = System(args)
    system.check_binaries()
    lock = take_lock(system.state)  # noqa: F841 - kept open for the whole run

    def on_signal(signum, _frame):
        raise Aborted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    load = Load(args, args.seed)
    chaos = Chaos(args, system, random.Random(args.seed))
    scraper = MetricsScraper(system)
    result: dict[str, Any] = {"state": str(system.state), "seed": args.seed, "concurrency": args.concurrency,
                              "killInterval": args.kill_interval, "wsIdle": args.ws_idle}
    exit_code = 1
    try:
        try:
            system.start()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            log(str(error))
            return 2
        log(f"seed {args.seed}; {args.orders} orders by {args.concurrency} clients at "
            f"{'max' if not args.rate else f'{args.rate:.1f}/s'}; a chaos event every {args.kill_interval}s")
        scraper.start()
        load.start()
        chaos.start()
        cap = started + args.duration if args.duration else float("inf")
        last_report = 0.0
        while True:
            placing_done = load.finished_placing.is_set()
            if placing_done:
                chaos.may_finish.set()
            if placing_done and not chaos.thread.is_alive():
                break
            if time.monotonic() >= cap:
                log("--duration reached: stopping the load and the chaos")
                break
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                accepted = sum(1 for o in load.orders if o.order_id)
                done = sum(1 for o in load.orders if o.final)
                log(f"progress: {len(load.orders)} placed, {accepted} accepted, {done} final over WebSocket, "
                    f"{len(chaos.kills)} kills, {len(chaos.infra)} broker/database kills")
            time.sleep(0.5)
        load.stop.set()
        chaos.finish()
        chaos_seconds = time.monotonic() - started
        log(f"chaos over: {len(chaos.kills)} kills, {chaos.count('rabbitmq')} broker and "
            f"{chaos.count('postgres')} database kills; waiting for quiescence")
        quiet = quiesce(system, load, args.quiesce_timeout)
        load.give_up.set()
        scraper.stop.set()
        scraper.thread.join()
        scraper.scrape()
        checks, evidence = check_invariants(system, load, chaos, quiet, args)
        folder = save_evidence(system, checks, evidence)

        db_orders = evidence["dbOrders"]
        statuses = collections.Counter(o["orderStatus"] for o in db_orders.values())
        reasons = collections.Counter(
            (o.get("errorMessage") or "?") for o in db_orders.values() if o["orderStatus"] == "cancelled")
        good_cancelled = sum(1 for o in load.orders if o.order_id and o.kind == "good"
                             and db_orders.get(o.order_id.lower(), {}).get("orderStatus") == "cancelled")
        restarts = system.supervisor_restarts()
        result.update({
            "orders": {**load.summary(), "inDatabase": len(db_orders),
                       "unknownToClients": len(evidence["unknownOrders"]),
                       "completed": statuses.get("completed", 0), "cancelled": statuses.get("cancelled", 0),
                       "goodButCancelled": good_cancelled, "cancelReasons": dict(reasons),
                       "kinds": dict(collections.Counter(o.kind for o in load.orders))},
            "chaos": {**chaos.summary(), "brokerPauses": broker_pauses(chaos, load)},
            "supervisorRestarts": dict(sorted(restarts.items())),
            "messages": scraper.result(),
            "quiescence": {k: quiet.get(k) for k in ("quiescent", "seconds", "sagaCounts", "outbox")},
            "deadLetters": evidence.get("deadLetters"),
            "crashSamples": evidence.get("crashSamples", []),
            "invariants": {c.name: {"passed": c.passed, "checked": c.checked, "violations": c.violations[:100]}
                           for c in checks},
            "seconds": {"chaos": round(chaos_seconds, 1), "total": round(time.monotonic() - started, 1)},
        })
        if not quiet.get("quiescent"):
            stuck = quiet.get("openOrders", [])[:20]
            result["stuck"] = {}
            for oid in stuck:
                try:
                    result["stuck"][oid] = get_json("Orchestrator", f"/sagas/{oid}", attempts=2)
                except Exception as error:  # noqa: BLE001
                    result["stuck"][oid] = repr(error)
        report(result, checks, folder)
        exit_code = 0 if all(c.passed for c in checks) else 1
        result["verdict"] = "PASS" if exit_code == 0 else "FAIL"
    except Aborted as why:
        log(f"interrupted ({why})")
        exit_code = 130
        result["verdict"] = "INTERRUPTED"
    finally:
        load.stop.set()
        load.give_up.set()
        chaos.stop.set()
        scraper.stop.set()
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # do not interrupt the teardown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args.keep_running:
            log(f"--keep-running: everything is still up (state {system.state}); stop it with "
                f"`PETS_STATE={system.state} scripts/down` or by running the tool again")
        else:
            system.stop()
    log(f"done in {time.monotonic() - started:.0f}s, exit {exit_code}")
    return exit_code


def report(result: dict, checks: list[Check], evidence_folder: Path | None) -> None:
    o, c, m = result["orders"], result["chaos"], result["messages"]
    print()
    print("=== chaos run summary " + "=" * 60)
    print(f"orders:     {o['placed']} placed, {o['accepted']} accepted ({o['notAccepted']} not accepted, "
          f"{o['postRetries']} POST retries), {o['inDatabase']} in the database "
          f"({o['unknownToClients']} unknown to the clients)")
    print(f"            {o['completed']} completed, {o['cancelled']} cancelled "
          f"({o['goodButCancelled']} good orders cancelled); kinds {o['kinds']}")
    print(f"            cancel reasons: {o['cancelReasons']}")
    print(f"kills:      {c['kills']} service kills {c['killsPerService']}; "
          f"{c['restartsObservedAfterKill']} restarts observed (slowest {c['restartSecondsMax']}s)")
    print(f"            RabbitMQ killed {c['brokerRestarts']}x, PostgreSQL killed {c['databaseRestarts']}x: "
          + ", ".join(f"{e['what']} back after {e['recoveredAfter']}s" for e in c["infra"]))
    for p in c.get("brokerPauses", []):
        print(f"            broker node {p['node']} killed: back after {p['recoveredAfter']}s; first order final "
              f"{p['firstFinalAfter']}s after the kill; longest gap between finals {p['longestGap']}s "
              f"(typical {p['typicalGap']}s)")
    print(f"            supervisor restarts: {result['supervisorRestarts']}")
    print(f"messages:   {m['redeliveries']} redeliveries, {m['duplicatesDropped']} duplicates dropped by inboxes; "
          f"poison injected {c['poisonInjected']}")
    print(f"websocket:  {o['wsConnections']} connections, {o['wsReconnects']} reconnects "
          f"({o['wsIdleReconnects']} after {result['wsIdle']:g}s without a message)")
    q = result["quiescence"]
    print(f"quiescence: {'reached' if q['quiescent'] else 'NOT reached'} after {q['seconds']}s; sagas {q['sagaCounts']}")
    print(f"time:       {result['seconds']['chaos']}s of load and chaos, {result['seconds']['total']}s in all; "
          f"seed {result['seed']}")
    print()
    for check in checks:
        if check.passed:
            print(f"PASS {check.name:10} {check.checked} checked: {check.description}")
        else:
            print(f"FAIL {check.name:10} {len(check.violations)} of {check.checked} violated: {check.description}")
            for violation in check.violations[:10]:
                print(f"       - {violation}")
            if len(check.violations) > 10:
                print(f"       ... and {len(check.violations) - 10} more")
    if result.get("crashSamples"):
        print("\nwhat the crashes said (count, first line, first frame of ours):")
        for sample in result["crashSamples"]:
            print(f"  {sample}")
    if result.get("stuck"):
        print("\nstuck orders and their sagas:")
        for oid, saga in result["stuck"].items():
            print(f"  {oid}: {json.dumps(saga)[:600]}")
    passed = sum(1 for ch in checks if ch.passed)
    failed = len(checks) - passed
    print()
    print(f"{passed} passed, {failed} failed")
    if evidence_folder:
        print(f"evidence (order, saga timeline, ledger, reservations per order named above): {evidence_folder}/")
    print(f"logs: {result['state']}/logs/")
    print(f"VERDICT: {'PASS' if failed == 0 else 'FAIL'}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
