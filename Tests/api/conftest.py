"""Shared helpers for the API suite: the OpenAPI contract, hostile input, WebSocket abuse and secrets.

Runs against a running system (scripts/test's services, or `scripts/up`). Everything comes from the environment:
  PETS_ORDER_URL, PETS_NOTIFIER_URL, PETS_INVENTORY_URL, PETS_PAYMENT_URL, PETS_ORCHESTRATOR_URL  the services
  PETS_STATE          the state folder whose logs/*.log the services write (default .pets/run)
  PETS_PG_HOST, PETS_PG_PORT                                                    PostgreSQL (127.0.0.1, 5432)
  PETS_PW_ORDERS, PETS_PW_INVENTORY, PETS_PW_PAYMENTS, PETS_PW_ORCHESTRATOR, PETS_TOKEN_SECRET,
  PETS_OPERATOR_TOKEN, PETS_AMQP_PW_<SERVICE>
                      the secrets; when not exported, read from .pets/secrets.env
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

import pets.orders
import pets.secrets
import pets.websocket
from pets.catalogue import SEED, Catalogue
from pets.services import INVENTORY_URL, NOTIFIER_URL, ORCHESTRATOR_URL, ORDER_URL, PAYMENT_URL, not_ready
from pets.waiting import wait_until
from pets.websocket import FINAL_STATUSES

REPO = Path(__file__).resolve().parents[2]
OPENAPI_PATH = REPO / "openapi.yaml"

SERVICES = {
    "Order": ORDER_URL,
    "Notifier": NOTIFIER_URL,
    "Inventory": INVENTORY_URL,
    "Payment": PAYMENT_URL,
    "Orchestrator": ORCHESTRATOR_URL,
}
STATE = Path(os.environ.get("PETS_STATE", str(REPO / ".pets" / "run")))
LOGS = STATE / "logs"
PG_HOST = os.environ.get("PETS_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PETS_PG_PORT", "5432")
DATABASES = ("orders", "inventory", "payments", "orchestrator")

HTTP_TIMEOUT = 10


def served_catalogue() -> Catalogue:
    """GET /catalogue, read once when the suite is collected: the tests' parameters name its products."""
    try:
        return Catalogue.fetch(ORDER_URL)
    except OSError as error:
        raise RuntimeError(f"GET {ORDER_URL}/catalogue failed ({error}); the API suite runs against a running "
                           f"system (scripts/up, or the services scripts/test starts)") from None


SHOP = served_catalogue()
FISH = SHOP.id("Fish")
CAT = SHOP.id("Cat")
PRODUCT_IDS = tuple(SEED)  # what the shop must serve


# ---------------------------------------------------------------------------------------------------------------
# Secrets


def secret(name: str) -> str:
    """A secret from the environment, else from .pets/secrets.env (or PETS_SECRETS_FILE); skips the test without."""
    path = Path(os.environ.get("PETS_SECRETS_FILE", str(pets.secrets.SECRETS_FILE)))
    value = pets.secrets.secret(name, path)
    if value is None:
        pytest.skip(f"{name} is neither exported nor in {path}")
    return value


def operator_headers() -> dict[str, str]:
    """The operator credential every operator view and action asks for."""
    return {"Authorization": f"Bearer {secret('PETS_OPERATOR_TOKEN')}"}


def db_password(role: str) -> str:
    return secret(f"PETS_PW_{role.upper()}")


def psql(role: str, database: str, sql: str, *, password: str | None = None) -> subprocess.CompletedProcess:
    """Runs one statement with psql as `role` on `database`; unaligned, tuples only. Never raises on failure."""
    env = dict(os.environ, PGPASSWORD=password if password is not None else db_password(role),
               PGCONNECT_TIMEOUT="5", PGAPPNAME="pets-api-tests")
    return subprocess.run(
        ["psql", "-X", "-h", PG_HOST, "-p", str(PG_PORT), "-U", role, "-d", database,
         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
        env=env, capture_output=True, text=True, timeout=30)


# ---------------------------------------------------------------------------------------------------------------
# The OpenAPI contract


def _text(data: bytes, **parameters: str) -> str:
    return data.decode(parameters.get("charset", "utf-8"))


def _yaml(data: bytes, **parameters: str) -> Any:
    return yaml.safe_load(data.decode(parameters.get("charset", "utf-8")))


def load_spec() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI_PATH.read_text())


_SPEC = load_spec()
_served = json.loads(json.dumps(_SPEC))
_served["servers"] = [{"url": ORDER_URL}]
# Streams are text (`type: string` in the document; their items are checked one by one below); YAML is parsed, as
# schemathesis does.
OPENAPI = OpenAPI.from_dict(_served, config=Config(extra_media_type_deserializers={
    "application/x-ndjson": _text, "text/event-stream": _text, "application/yaml": _yaml}))
_REGISTRY = Registry().with_resource("urn:pets-openapi", Resource.from_contents(_SPEC, default_specification=DRAFT4))


def schema_validator(name: str) -> OAS30Validator:
    """A validator for components/schemas/<name>, its $refs resolved in the document."""
    return OAS30Validator({"$ref": f"urn:pets-openapi#/components/schemas/{name}"}, registry=_REGISTRY)


def assert_matches_schema(instance: Any, name: str) -> None:
    errors = sorted(schema_validator(name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"does not match {name}: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]) + f"\n{instance!r}"[:2000]


def parse_stream(response: requests.Response) -> list[Any]:
    """The items of GET /orders: NDJSON lines, or the data of server-sent events."""
    text = response.content.decode("utf-8")
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        items = []
        assert text == "" or text.endswith("\n\n"), f"SSE stream not ended by a blank line: {text[-200:]!r}"
        for block in text.split("\n\n"):
            if not block:
                continue
            lines = block.split("\n")
            assert all(line.startswith("data: ") for line in lines), f"SSE event with non-data lines: {block!r}"
            items.append(json.loads("\n".join(line[len("data: "):] for line in lines)))
        return items
    assert text == "" or text.endswith("\n"), f"NDJSON stream not ended by a newline: {text[-200:]!r}"
    return [json.loads(line) for line in text.split("\n") if line != ""]


def check_contract(response: requests.Response) -> requests.Response:
    """Fails unless the response is one the document allows for its request: status, content type, headers and
    body (for GET /orders, every streamed order matches `Order`)."""
    try:
        OPENAPI.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    except Exception as error:  # openapi-core's errors chain the schema errors as the cause
        cause = error.__cause__
        details = "; ".join(str(e).splitlines()[0] for e in getattr(cause, "schema_errors", None) or [])
        raise AssertionError(
            f"{response.request.method} {response.request.url} -> {response.status_code} "
            f"{response.headers.get('Content-Type')} breaks openapi.yaml: {type(error).__name__}: "
            f"{str(error)[:300]} {details}\nbody: {response.text[:1000]!r}") from None
    path = urlsplit(response.request.url).path
    if response.request.method == "GET" and path == "/orders" and response.status_code == 200:
        for item in parse_stream(response):
            assert_matches_schema(item, "Order")
    return response


# ---------------------------------------------------------------------------------------------------------------
# Requests


def unique_marker(label: str = "api") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def order_body(*, marker: str | None = None, lines: Iterable[tuple[str, Any]] = ((FISH, 1),),
               card_number: str = pets.orders.CARD_NUMBER, expiry: str = pets.orders.VALID_EXPIRY,
               post_code: str = "2880", holder: str = "API Tester") -> dict[str, Any]:
    """A valid order body; `marker` goes into the street address so the order can be found (or not) later."""
    return pets.orders.order_body(lines, address=f"1 Test Street {marker or unique_marker()}", post_code=post_code,
                                  card_number=card_number, holder=holder, expiry=expiry)


def post(path: str, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = HTTP_TIMEOUT) -> requests.Response:
    return pets.orders.post_order(ORDER_URL, body, path=path, raw=raw, headers=headers, timeout=timeout)


def place_order(body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return pets.orders.accepted(
        check_contract(post("/orders", body if body is not None else order_body(), headers=headers)))


def get_order(order_id: str) -> dict[str, Any]:
    response = check_contract(requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=HTTP_TIMEOUT))
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_final(order_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The order once it is completed or cancelled and its history has its final event."""
    def done():
        order = get_order(order_id)
        history = order.get("history") or []
        final = order["orderStatus"] in ("completed", "cancelled") and history and \
            history[-1]["status"] in FINAL_STATUSES
        return order if final else None
    return wait_until(done, timeout, interval=0.2, message=f"order {order_id} final")


def all_orders_text() -> str:
    """The whole NDJSON stream of GET /orders."""
    response = requests.get(f"{ORDER_URL}/orders", headers=operator_headers(), timeout=60)
    assert response.status_code == 200, response.text
    return response.content.decode("utf-8")


def order_count() -> int:
    return sum(1 for line in all_orders_text().split("\n") if line.strip())


def ws_url(callback_url: str) -> str:
    """The callback URL re-pointed at PETS_NOTIFIER_URL (the public URL may name another host or port)."""
    return pets.websocket.repoint(callback_url, NOTIFIER_URL)


def notifier_ws(query: str) -> str:
    target = urlsplit(NOTIFIER_URL)
    scheme = "wss" if target.scheme == "https" else "ws"
    return urlunsplit((scheme, target.netloc, "/ws", query, ""))


def token_of(callback_url: str) -> str:
    match = re.search(r"[?&]token=([^&]+)", callback_url)
    assert match, callback_url
    return match.group(1)


def raw_http(port_url: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes to a service and returns whatever comes back before it closes or goes quiet."""
    parts = urlsplit(port_url)
    chunks = []
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(payload)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------------------------
# A service process of our own, beside the running system: for what only shows at start-up (refused secrets) and
# for limits a test sets lower than the running services have.

BIN = Path(os.environ.get("PETS_BIN") or REPO / ".build" / "debug")
AMQP_PORT = os.environ.get("PETS_AMQP_PORT", "5672")
SERVICE_DATABASES = {"Order": "orders", "Inventory": "inventory", "Payment": "payments", "Orchestrator": "orchestrator"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(service: str, **overrides: str | None) -> dict[str, str]:
    """The environment scripts/lib.sh gives `service`, on a free port; an override of None removes the variable."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_LEVEL": "info",
        "PETS_HTTP_HOST": "127.0.0.1", "PETS_HTTP_PORT": str(free_port()),
        "PETS_AMQP_URL": f"amqp://pets-{service.lower()}:{secret('PETS_AMQP_PW_' + service.upper())}"
                         f"@127.0.0.1:{AMQP_PORT}/",
    }
    if service in SERVICE_DATABASES:
        db = SERVICE_DATABASES[service]
        env.update(PETS_PG_HOST=PG_HOST, PETS_PG_PORT=PG_PORT, PETS_DB_NAME=db, PETS_DB_USER=db,
                   PETS_DB_PASSWORD=db_password(db), PETS_OPERATOR_TOKEN=secret("PETS_OPERATOR_TOKEN"))
    if service in ("Order", "Notifier", "Orchestrator"):
        env["PETS_TOKEN_SECRET"] = secret("PETS_TOKEN_SECRET")
    if service == "Notifier":
        env["PETS_ORCHESTRATOR_URL"] = ORCHESTRATOR_URL
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start_service(service: str, env: dict[str, str]) -> subprocess.Popen:
    binary = BIN / service
    if not binary.is_file():
        pytest.skip(f"no binary {binary} (set PETS_BIN)")
    return subprocess.Popen([str(binary)], env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_service(process: subprocess.Popen) -> str:
    """SIGTERM (then SIGKILL), and everything the process printed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    output, _ = process.communicate(timeout=10)
    return output or ""


# ---------------------------------------------------------------------------------------------------------------
# Crash watch: every service log is read from where it stood when the suite started.

CRASH_PATTERNS = re.compile(r"Program crashed|Fatal error|Segmentation fault|is down; restarting")


def log_offsets() -> dict[Path, int]:
    return {path: path.stat().st_size for path in sorted(LOGS.glob("*.log"))} if LOGS.is_dir() else {}


def new_log_text(offsets: dict[Path, int]) -> dict[Path, str]:
    text = {}
    for path in sorted(LOGS.glob("*.log")) if LOGS.is_dir() else []:
        with path.open("rb") as handle:
            handle.seek(offsets.get(path, 0))
            text[path] = handle.read().decode("utf-8", "replace")
    return text


@pytest.fixture(scope="session")
def logs_at_start() -> dict[Path, int]:
    return log_offsets()


@pytest.fixture(scope="session", autouse=True)
def system_is_up(logs_at_start):
    """Fail fast, with a clear message, when the system is not running."""
    why = not_ready(SERVICES)
    if why:
        pytest.exit(why, returncode=2)


def wait_healthy(timeout: float = 30.0) -> None:
    """Waits until every service answers /health 200 (after a test that may have upset one)."""
    wait_until(lambda: not_ready(SERVICES, timeout=3) is None, timeout, interval=0.5, message="every service healthy")


# Lines worth seeing in every run (the schemathesis counts), printed in pytest's summary.
SUMMARY_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if SUMMARY_LINES:
        terminalreporter.section("API suite")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)
