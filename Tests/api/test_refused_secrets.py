"""A service refuses to start with a missing, placeholder or short secret, and says which variable: a copied
`.env.example` must not run with known passwords and forgeable WebSocket tokens."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import requests

from conftest import REPO, service_env, start_service, stop_service

EX_CONFIG = 78


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


EXAMPLE = env_example()


def _amqp_url(service: str, password: str) -> str:
    return f"amqp://pets-{service.lower()}:{password}@127.0.0.1:5672/"


# (service, variable the service reads, value, variable the error must name)
CASES = [
    ("Order", "PETS_TOKEN_SECRET", EXAMPLE["PETS_TOKEN_SECRET"], "PETS_TOKEN_SECRET"),
    ("Notifier", "PETS_TOKEN_SECRET", EXAMPLE["PETS_TOKEN_SECRET"], "PETS_TOKEN_SECRET"),
    ("Orchestrator", "PETS_TOKEN_SECRET", EXAMPLE["PETS_TOKEN_SECRET"], "PETS_TOKEN_SECRET"),
    ("Orchestrator", "PETS_OPERATOR_TOKEN", EXAMPLE["PETS_OPERATOR_TOKEN"], "PETS_OPERATOR_TOKEN"),
    ("Inventory", "PETS_OPERATOR_TOKEN", EXAMPLE["PETS_OPERATOR_TOKEN"], "PETS_OPERATOR_TOKEN"),
    ("Order", "PETS_DB_PASSWORD", EXAMPLE["PETS_PW_ORDERS"], "PETS_DB_PASSWORD"),
    ("Inventory", "PETS_DB_PASSWORD", EXAMPLE["PETS_PW_INVENTORY"], "PETS_DB_PASSWORD"),
    ("Payment", "PETS_DB_PASSWORD", EXAMPLE["PETS_PW_PAYMENTS"], "PETS_DB_PASSWORD"),
    ("Orchestrator", "PETS_DB_PASSWORD", EXAMPLE["PETS_PW_ORCHESTRATOR"], "PETS_DB_PASSWORD"),
    ("Payment", "PETS_AMQP_URL", _amqp_url("Payment", EXAMPLE["PETS_AMQP_PW_PAYMENT"]), "PETS_AMQP_URL"),
    ("Notifier", "PETS_AMQP_URL", _amqp_url("Notifier", EXAMPLE["PETS_AMQP_PW_NOTIFIER"]), "PETS_AMQP_URL"),
    # Short: 16 random bytes where 32 are needed, and a long but typed value.
    ("Notifier", "PETS_TOKEN_SECRET", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "PETS_TOKEN_SECRET"),
    ("Order", "PETS_OPERATOR_TOKEN", "a" * 80, "PETS_OPERATOR_TOKEN"),
    ("Payment", "PETS_DB_PASSWORD", "guest", "PETS_DB_PASSWORD"),
    # Missing.
    ("Order", "PETS_TOKEN_SECRET", None, "PETS_TOKEN_SECRET"),
    ("Payment", "PETS_OPERATOR_TOKEN", None, "PETS_OPERATOR_TOKEN"),
    ("Inventory", "PETS_DB_PASSWORD", None, "PETS_DB_PASSWORD"),
]


def test_env_example_holds_only_placeholders_for_secrets():
    for key, value in EXAMPLE.items():
        if key.startswith(("PETS_PW_", "PETS_AMQP_PW_")) or key in (
                "PETS_TOKEN_SECRET", "PETS_OPERATOR_TOKEN", "PETS_POSTGRES_PASSWORD", "PETS_RABBITMQ_PASSWORD"):
            assert value.startswith("change-me"), f"{key} in .env.example is not a placeholder: {value!r}"


@pytest.mark.parametrize("service,variable,value,named", CASES,
                         ids=[f"{c[0]}-{c[1]}-{'missing' if c[2] is None else c[2][:14]}" for c in CASES])
def test_service_refuses_a_placeholder_short_or_missing_secret(service, variable, value, named):
    process = start_service(service, service_env(service, **{variable: value}))
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        output = stop_service(process)
        pytest.fail(f"{service} started with {variable}={value!r}:\n{output[-2000:]}")
    output = stop_service(process)
    assert process.returncode == EX_CONFIG, f"{service} exited {process.returncode}:\n{output[-2000:]}"
    assert named in output, f"{service}'s refusal does not name {named}:\n{output[-2000:]}"
    assert "Fatal error" not in output, f"a crash instead of a clear refusal:\n{output[-2000:]}"


def test_service_refuses_placeholder_token_secret():
    process = start_service("Notifier", service_env("Notifier", PETS_TOKEN_SECRET=EXAMPLE["PETS_TOKEN_SECRET"]))
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    output = stop_service(process)
    assert process.returncode == EX_CONFIG, f"the Notifier ran with the placeholder token secret:\n{output[-2000:]}"
    assert "PETS_TOKEN_SECRET" in output, output


def test_the_same_service_starts_with_real_secrets():
    """The control for the refusals above: the environment they start from is otherwise complete."""
    env = service_env("Notifier")
    process = start_service("Notifier", env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the Notifier exited {process.returncode}:\n{stop_service(process)}"
            try:
                if requests.get(f"http://127.0.0.1:{env['PETS_HTTP_PORT']}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        pytest.fail("the Notifier with real secrets never became healthy")
    finally:
        stop_service(process)
