"""The fault-injection suite's harness: a private AWSomePets started with scripts/lib.sh, killed and restarted at will.

Everything runs on its own state folder (`.pets/faults`, wiped at the start of a session) and its own ports, all
below the kernel's ephemeral range, so it never collides with `scripts/up` (5432/5672/8080...), `scripts/test`
(16432/16672/18080...) or the chaos tool (17432/17672/19080...):

    PostgreSQL 20432, AMQP 20672, Erlang dist 20673, epmd 20369, HTTP 21080-21084.

The binaries come from PETS_BIN (default .build/debug); nothing is built here. Every PETS_* variable of the caller
other than PETS_BIN is ignored, so running this from inside `scripts/test` (which exports its own ports) is safe.

One faults file, `$PETS_STATE/faults`, is shared by every service: a rule names a message type, and only the
service that handles that type acts on it (see Shared/Persistence/FaultInjection.swift). Tests switch rules on
and off with `system.faults(...)` while the processes run.

When a test fails, the report gets a section per order it registered (`system.watch(order_id)`): the order, the
saga's timeline, the payment ledger, the reservation, plus the last lines of every service log.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import requests

# Modules, not `import pets...`: the fixture below is called `pets`.
from pets import REPO, libsh, orders, waiting, websocket
from pets.catalogue import Catalogue
from pets.orders import shipping_cost
from pets.secrets import operator_headers
from pets.websocket import FINAL_STATUSES

STATE = REPO / ".pets" / "faults"
PETS_BIN = Path(os.environ.get("PETS_BIN") or REPO / ".build" / "debug")
SERVICE_NAMES = ("Inventory", "Payment", "Orchestrator", "Order", "Notifier")

PORTS = {
    "PETS_PG_PORT": 20432,
    "PETS_AMQP_PORT": 20672,
    "PETS_RABBIT_DIST_PORT": 20673,
    "PETS_EPMD_PORT": 20369,
    "PETS_RABBIT_MGMT_PORT": 20674,
    "PETS_ORDER_PORT": 21080,
    "PETS_NOTIFIER_PORT": 21081,
    "PETS_INVENTORY_PORT": 21082,
    "PETS_PAYMENT_PORT": 21083,
    "PETS_ORCHESTRATOR_PORT": 21084,
}
URL = {
    "Order": f"http://127.0.0.1:{PORTS['PETS_ORDER_PORT']}",
    "Notifier": f"http://127.0.0.1:{PORTS['PETS_NOTIFIER_PORT']}",
    "Inventory": f"http://127.0.0.1:{PORTS['PETS_INVENTORY_PORT']}",
    "Payment": f"http://127.0.0.1:{PORTS['PETS_PAYMENT_PORT']}",
    "Orchestrator": f"http://127.0.0.1:{PORTS['PETS_ORCHESTRATOR_PORT']}",
}
ORDER_URL, INVENTORY_URL, PAYMENT_URL, ORCHESTRATOR_URL = (
    URL["Order"], URL["Inventory"], URL["Payment"], URL["Orchestrator"])

# The knobs a test may set for the services (lib.sh passes them on only when set).
KNOBS = ("PETS_STEP_DEADLINE_SECONDS", "PETS_STEP_ATTEMPTS", "PETS_COMPENSATION_ATTEMPTS",
         "PETS_RETRY_INTERVAL_SECONDS", "PETS_START_DEADLINE_SECONDS", "PETS_START_ATTEMPTS",
         "PETS_PRUNE_INTERVAL_SECONDS", "PETS_INBOX_RETENTION_HOURS", "PETS_HISTORY_RETENTION_DAYS",
         "PETS_AMQP_HEARTBEAT_SECONDS", "PETS_MESSAGE_DEADLINE_SECONDS", "PETS_MESSAGE_ATTEMPTS",
         "PETS_MESSAGE_DELIVERIES")

HTTP_TIMEOUT = 10
# How a Swift process that died by itself announces it (an injected crash is a silent SIGKILL instead).
CRASH = re.compile(r"Program crashed|Fatal error|fatal error:")
BACKTRACE_NOISE = re.compile(r"^\s*$|^\s*\d+ |^\s*r\w+ 0x|^\s*0x[0-9a-f]+|^(cs|rflags|Registers|Images|Backtrace took|Platform:)|^Thread \d+ \"[^\"]*\":$|^\.\.\.$")

# ---------------------------------------------------------------------------------------------------------------
# The system under test


class System:
    """A private AWSomePets: PostgreSQL, RabbitMQ, the five services and the supervisor, driven through lib.sh."""

    def __init__(self) -> None:
        self.state = STATE
        self.faults_file = STATE / "faults"
        self.knobs: dict[str, str] | None = None  # the settings the services run with now
        self.watched: list[str] = []  # order ids of the running test, for the failure report

    # -- lib.sh -------------------------------------------------------------------------------------------------

    def env(self, knobs: dict[str, str] | None = None) -> dict[str, str]:
        return libsh.environment(PORTS, PETS_STATE=self.state, PETS_BIN=PETS_BIN, PETS_FAULTS_FILE=self.faults_file,
                                 LOG_LEVEL="info", PETS_HEALTH_TIMEOUT="90", **(knobs or {}))

    def lib(self, commands: str, knobs: dict[str, str] | None = None, timeout: float = 240) -> None:
        """Runs `commands` in bash after sourcing lib.sh (defaults and secrets loaded); fails with its output."""
        # A file, not a pipe: processes started in the background must not keep our read end open.
        with tempfile.TemporaryFile() as out:
            result = libsh.run(f"pets_secrets && {commands}", self.env(knobs), timeout=timeout, stdout=out,
                               stderr=subprocess.STDOUT)
            out.seek(0)
            output = out.read().decode(errors="replace")
        if result.returncode != 0:
            raise RuntimeError(f"lib.sh `{commands}` failed (exit {result.returncode}):\n{output}")

    def sql(self, database: str, statement: str) -> list[list[str]]:
        """Runs `statement` as the superuser on one service's database; returns its rows (as text).

        For what no API shows: a stored saga to corrupt, rows to age."""
        result = libsh.run(f"pets_psql -At -F $'\\t' -d {shlex.quote(database)} -c {shlex.quote(statement)}",
                           self.env(self.knobs), timeout=30, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql on {database} failed: {statement}\n{result.stderr}")
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def start(self) -> None:
        missing = [name for name in SERVICE_NAMES if not os.access(PETS_BIN / name, os.X_OK)]
        if missing:
            pytest.exit(f"no executables {missing} in PETS_BIN={PETS_BIN}; build first (swift build)", returncode=2)
        # A run killed hard may have left servers running on this folder: stop them before wiping it.
        with contextlib.suppress(Exception):
            self.lib("pets_stop_all", timeout=120)
        subprocess.run(["rm", "-rf", str(self.state)], check=True)
        self.state.mkdir(parents=True)
        self.clear_faults()
        self.lib("pets_prepare_state && pets_start_postgres && pets_start_rabbitmq")
        self.configure({})

    def stop(self) -> None:
        self.lib("pets_stop_all", timeout=180)

    def configure(self, knobs: dict[str, str]) -> None:
        """(Re)starts the five services with these settings if they run with others; PostgreSQL and RabbitMQ stay.

        The supervisor is stopped first (it would undo the stop) and started again with the same settings, so a
        service it restarts after a crash gets them too."""
        knobs = {k: str(v) for k, v in knobs.items()}
        unknown = set(knobs) - set(KNOBS)
        assert not unknown, f"unknown knobs {unknown}"
        if knobs == self.knobs and self.all_alive():
            return
        self.knobs = None
        self.lib("pets_stop_supervisor; pets_stop_services; pets_start_services && pets_wait_healthy && "
                 "pets_start_supervisor", knobs)
        self.knobs = knobs

    # -- processes ----------------------------------------------------------------------------------------------

    def pid(self, service: str) -> int | None:
        return libsh.read_pid(self.state / "pids" / f"{service}.pid")

    @staticmethod
    def is_running(pid: int | None, service: str) -> bool:
        """True while `pid` is a live (not zombie) process of that binary."""
        return libsh.is_running(pid, service)

    def all_alive(self) -> bool:
        return all(self.is_running(self.pid(name), name) for name in SERVICE_NAMES)

    def healthy(self, service: str) -> bool:
        try:
            return requests.get(f"{URL[service]}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_for_crash(self, service: str, old_pid: int, timeout: float, on_crash: Callable[[], None]) -> float:
        """Polls every 10 ms until process `old_pid` is gone, then calls `on_crash` at once; returns when it died."""
        deadline = time.monotonic() + timeout
        while self.is_running(old_pid, service):
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} (pid {old_pid}) did not crash within {timeout}s; the fault never "
                                     f"fired. Faults file: {self.faults_file.read_text()!r}")
            time.sleep(0.01)
        on_crash()
        return time.monotonic()

    def wait_for_restart(self, service: str, old_pid: int, timeout: float = 60) -> int:
        """Waits until the supervisor started a new process of `service` and it answers /health; returns its pid."""
        def restarted():
            pid = self.pid(service)
            return pid if pid and pid != old_pid and self.is_running(pid, service) and self.healthy(service) else None
        return wait_until(restarted, timeout, interval=0.1,
                          message=f"the supervisor restarting {service} (old pid {old_pid}) and it becoming healthy")

    def log(self, service: str) -> str:
        try:
            return (self.state / "logs" / f"{service}.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a log, without the register dumps and addresses of crash backtraces."""
        kept = [line for line in self.log(name).splitlines() if not BACKTRACE_NOISE.match(line)]
        return "\n".join(kept[-lines:])

    # -- faults -------------------------------------------------------------------------------------------------

    def set_faults(self, *rules: str) -> None:
        # Write then rename: a service reading the file mid-write sees the old rules or the new ones, never half.
        tmp = self.faults_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{rule}\n" for rule in rules))
        tmp.replace(self.faults_file)

    def clear_faults(self) -> None:
        self.set_faults()

    @contextlib.contextmanager
    def faults(self, *rules: str):
        """The rules are active inside the block, and removed when it ends, whatever happens."""
        self.set_faults(*rules)
        try:
            yield
        finally:
            self.clear_faults()

    def log_sizes(self) -> dict[str, int]:
        return {name: len(self.log(name)) for name in SERVICE_NAMES}

    def crashes_since(self, sizes: dict[str, int]) -> list[str]:
        """Crashes (not our injected SIGKILLs) logged since `sizes`: the crash line and the crashed thread's top."""
        found = []
        for name in SERVICE_NAMES:
            lines = self.log(name)[sizes.get(name, 0):].splitlines()
            for i, line in enumerate(lines):
                if CRASH.search(line):
                    crashed = next((j for j in range(i, len(lines)) if lines[j].endswith("crashed:")), None)
                    frames = [l.strip() for l in lines[crashed + 1:crashed + 6]] if crashed is not None else []
                    found.append(f"{name}: {line.strip()}\n    " + "\n    ".join(f for f in frames if f))
        return found

    def watch(self, order_id: str) -> str:
        """Registers an order whose timeline goes into the report if the test fails."""
        self.watched.append(order_id)
        return order_id


@pytest.fixture(scope="session")
def system():
    pets = System()
    try:
        pets.start()
        yield pets
    finally:
        pets.stop()


@pytest.fixture
def pets(system, request):
    """The system, with no fault rule active before and after the test, and its orders reported on failure."""
    system.clear_faults()
    system.watched = []
    system.sizes_before = system.log_sizes()
    request.node.pets_system = system
    yield system
    system.clear_faults()
    crashes = system.crashes_since(system.sizes_before)
    if crashes:
        pytest.fail("services crashed during the test (not an injected fault):\n" + "\n".join(crashes), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    system: System | None = getattr(item, "pets_system", None)
    if report.when != "call" or not report.failed or system is None:
        return
    crashes = system.crashes_since(getattr(system, "sizes_before", {}))
    if crashes:
        report.sections.append(("services that crashed during the test (not an injected fault)",
                                "\n".join(crashes)))
    for order_id in system.watched:
        report.sections.append((f"timeline of order {order_id}", describe_order(order_id)))
    logs = "\n".join(f"----- {name}.log (last lines) -----\n{system.log_tail(name)}" for name in
                     (*SERVICE_NAMES, "supervisor"))
    report.sections.append(("service logs", logs))


# ---------------------------------------------------------------------------------------------------------------
# Talking to the services


# A service restarting answers nothing for a moment: that is "not yet".
wait_until = functools.partial(waiting.wait_until, retrying=(requests.RequestException,))


@functools.cache
def shop() -> Catalogue:
    """The catalogue the private system serves (read once, when a test first needs it)."""
    return Catalogue.fetch(ORDER_URL)


def get_json(url: str, **params: Any) -> Any:
    response = requests.get(url, params=params or None, headers=operator_headers(), timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
    return response.json()


def order_body(lines: Iterable[tuple[str, int]], *, expiry: str = "12/30", post_code: str = "2880") -> dict:
    """An order of (title, quantity) lines."""
    return orders.order_body([(shop().id(title), quantity) for title, quantity in lines],
                                  address=f"1 Fault Street ({uuid.uuid4().hex[:8]})", post_code=post_code,
                                  holder="Fault Tester", expiry=expiry, titles=shop().titles())


def amount_cents(body: dict) -> int:
    items = sum(shop().price(line["id"]) * line["quantity"] for line in body["basket"])
    return round((items + shipping_cost(body["shippingAddress"]["postCode"])) * 100)


def place_order(body: dict) -> dict:
    return orders.place_order(ORDER_URL, body)


def get_order(order_id: str) -> dict:
    return get_json(f"{ORDER_URL}/orders/{order_id}")


def wait_for_order(order_id: str, statuses: Iterable[str] = ("completed", "cancelled"), timeout: float = 60) -> dict:
    wanted = set(statuses)

    def check():
        order = get_order(order_id)
        return order if order.get("orderStatus") in wanted else None

    return wait_until(check, timeout, interval=0.1, message=f"order {order_id} reaching {sorted(wanted)}")


def saga(order_id: str) -> dict:
    """`GET /sagas/{orderId}`: the saga summary, its failure, history (timeline) and status events."""
    return get_json(f"{ORCHESTRATOR_URL}/sagas/{order_id}")


def history(order_id: str, step: str | None = None, kind: str | None = None) -> list[dict]:
    return [line for line in saga(order_id)["history"]
            if (step is None or line["step"] == step) and (kind is None or line["kind"] == kind)]


def stock(title: str) -> int:
    """Stock on hand of one product, as Inventory (the owner of the stock) reports it."""
    pid = shop().id(title)
    [row] = [row for row in get_json(f"{INVENTORY_URL}/stock") if row["productId"] == pid]
    return row["stock"]


def payments(order_id: str) -> dict:
    return get_json(f"{PAYMENT_URL}/payments/{order_id}")


def metric(service: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` on the service's /metrics whose labels include `labels` (0 if none)."""
    text = requests.get(f"{URL[service]}/metrics", timeout=HTTP_TIMEOUT).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def ws_url(placed: dict) -> str:
    """The order's clientCallbackUrl, pointed at our Notifier (its host is `localhost`, its port ours)."""
    return websocket.repoint(placed["clientCallbackUrl"], URL["Notifier"])


def follow(placed: dict, timeout: float = 60) -> list[dict]:
    """Every WebSocket message of the order, up to and including the final one."""
    return websocket.follow(ws_url(placed), timeout)


def assert_well_formed(messages: list[dict], order_id: str) -> None:
    """seq 1..n without gap or repeat, one final message and it is the last: what a client expects."""
    seqs = [m.get("seq") for m in messages]
    assert seqs == list(range(1, len(messages) + 1)), f"order {order_id}: WebSocket seqs are not 1..n: {seqs}"
    finals = [m for m in messages if m.get("status") in FINAL_STATUSES]
    assert finals == [messages[-1]], f"order {order_id}: the final message must come once, last: {messages}"


# ---------------------------------------------------------------------------------------------------------------
# The failure report


def describe_order(order_id: str) -> str:
    """Everything worth seeing about one order, read from every service; never raises."""
    parts = [f"order id: {order_id}"]

    def section(title: str, read: Callable[[], Any], render: Callable[[Any], str] | None = None) -> None:
        try:
            value = read()
            parts.append(f"--- {title}\n{render(value) if render else json.dumps(value, indent=1)}")
        except Exception as error:  # noqa: BLE001 - the report must never hide the real failure
            parts.append(f"--- {title}: unavailable ({error})")

    def render_saga(detail: dict) -> str:
        s = detail.get("saga", {})
        lines = [f"saga {s.get('sagaId')}: status={s.get('status')} phase={s.get('phase')} step={s.get('step')} "
                 f"attempt={s.get('attempt')} failure={detail.get('failure')}"]
        for h in detail.get("history", []):
            extra = " ".join(x for x in (
                f"({h['detail']})" if h.get("detail") else "",
                f"{h['durationMs']} ms" if h.get("durationMs") is not None else "") if x)
            lines.append(f"  {h.get('at')}  {h.get('step'):<18} {h.get('kind'):<13} attempt {h.get('attempt')} "
                         f"{extra}".rstrip())
        lines.append("status events:")
        for e in detail.get("events", []):
            lines.append(f"  #{e.get('seq')} {e.get('status')} {e.get('step') or ''} {e.get('message') or ''}".rstrip())
        return "\n".join(lines)

    def render_order(order: dict) -> str:
        keys = ("orderStatus", "errorType", "errorMessage", "paymentAmount", "shippingCost", "createdOn",
                "updatedOn")
        return json.dumps({k: order.get(k) for k in keys})

    section("saga timeline (Orchestrator GET /sagas/{orderId})", lambda: saga(order_id), render_saga)
    section("order (Order GET /orders/{orderId})", lambda: get_order(order_id), render_order)
    section("payments (Payment GET /payments/{orderId})", lambda: payments(order_id))
    section("reservation (Inventory GET /reservations/{orderId})",
            lambda: get_json(f"{INVENTORY_URL}/reservations/{order_id}"))
    return "\n".join(parts)
