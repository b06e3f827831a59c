"""Each service has its own broker user with permissions for only what it uses; none is an administrator, and the
AMQP URL's password never appears in a log or an error message."""

from __future__ import annotations

import os
import secrets as random_secrets
import subprocess
import uuid

import pika
import pytest

from conftest import AMQP_PORT, LOGS, REPO, STATE, secret, service_env, start_service, stop_service

# The queues each service consumes (its user may read them and nothing else durable).
OWN_QUEUES = {
    "Order": {"order.commands", "order.events"},
    "Inventory": {"inventory.commands"},
    "Payment": {"payment.commands"},
    "Orchestrator": {"orchestrator.commands", "orchestrator.replies"},
    "Notifier": set(),
}
ALL_QUEUES = sorted(set().union(*OWN_QUEUES.values()) | {"pets.dead-letters"})


def connect_as(service: str) -> pika.BlockingConnection:
    credentials = pika.PlainCredentials(f"pets-{service.lower()}", secret(f"PETS_AMQP_PW_{service.upper()}"))
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=int(AMQP_PORT), credentials=credentials, connection_attempts=1,
        socket_timeout=5, blocked_connection_timeout=5))


def assert_refused(action, what: str) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        action()
    assert refused.value.reply_code == 403, f"{what}: {refused.value!r}"


@pytest.mark.parametrize("service", sorted(OWN_QUEUES))
def test_each_service_broker_user_cannot_read_other_queues(service):
    connection = connect_as(service)
    try:
        for queue in ALL_QUEUES:
            if queue in OWN_QUEUES[service]:
                continue
            channel = connection.channel()
            assert_refused(lambda: channel.basic_get(queue, auto_ack=False), f"pets-{service.lower()} reading {queue}")
    finally:
        connection.close()


@pytest.mark.parametrize("service", sorted(OWN_QUEUES))
def test_service_broker_users_cannot_declare_delete_or_rebind_anything_durable(service):
    connection = connect_as(service)
    try:
        channel = connection.channel()
        assert_refused(lambda: channel.queue_declare(f"pets.intruder.{uuid.uuid4().hex[:8]}", durable=True),
                       "declaring a queue")
        for queue in ("order.commands", "payment.commands", "pets.dead-letters"):
            channel = connection.channel()
            assert_refused(lambda: channel.queue_delete(queue), f"deleting {queue}")
        channel = connection.channel()
        assert_refused(lambda: channel.exchange_delete("pets.status"), "deleting pets.status")
        channel = connection.channel()
        assert_refused(lambda: channel.queue_bind("payment.commands", "pets.status"), "binding payment.commands")
    finally:
        connection.close()


def test_only_the_publishers_of_an_exchange_may_publish_to_it():
    for service, exchange in (("Order", "pets.status"), ("Payment", "pets.stock"), ("Notifier", "pets.status")):
        connection = connect_as(service)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            assert_refused(lambda: channel.basic_publish(exchange, "", b"{}"), f"{service} publishing to {exchange}")
        finally:
            if connection.is_open:
                connection.close()


def test_services_connect_as_their_own_users_not_the_administrator():
    """The running system's connections, as RabbitMQ lists them."""
    if not (STATE / "rabbitmq" / "cli.env").is_file():
        pytest.skip(f"no native broker in {STATE}")
    script = "source scripts/lib.sh && pets_defaults && pets_rabbitmqctl list_connections user --quiet --no-table-headers"
    result = subprocess.run(["bash", "-c", script], cwd=REPO, env=dict(os.environ, PETS_STATE=str(STATE)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    users = {line.strip() for line in result.stdout.splitlines() if line.strip()}
    assert {f"pets-{s.lower()}" for s in OWN_QUEUES} <= users, users
    assert not users - {f"pets-{s.lower()}" for s in OWN_QUEUES}, f"connections as other users: {users}"


def test_amqp_password_never_appears_in_logs_or_errors():
    marker = random_secrets.token_hex(16)
    # A malformed URL is refused by name, with the password masked.
    bad_port = service_env("Notifier", PETS_AMQP_URL=f"amqp://pets-notifier:{marker}@127.0.0.1:notaport/")
    process = start_service("Notifier", bad_port)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    output = stop_service(process)
    assert process.returncode == 78, output[-2000:]
    assert "PETS_AMQP_URL" in output and marker not in output, output[-2000:]
    # A wrong password: the service keeps trying, and says why, without the password.
    wrong = service_env("Notifier", PETS_AMQP_URL=f"amqp://pets-notifier:{marker}@127.0.0.1:{AMQP_PORT}/")
    process = start_service("Notifier", wrong)
    try:
        process.wait(timeout=6)
    except subprocess.TimeoutExpired:
        pass
    output = stop_service(process)
    assert output.strip(), "the Notifier said nothing about its failed broker login"
    assert marker not in output, f"the broker password is in the output:\n{output[-2000:]}"
    # And the running services' logs hold none of their broker passwords.
    passwords = [secret(f"PETS_AMQP_PW_{s.upper()}") for s in OWN_QUEUES]
    for log in sorted(LOGS.glob("*.log")) if LOGS.is_dir() else []:
        text = log.read_text(errors="replace")
        assert not any(p in text for p in passwords), f"a broker password is in {log}"
