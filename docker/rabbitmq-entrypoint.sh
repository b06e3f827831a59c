#!/bin/sh
# Entrypoint of compose's RabbitMQ: writes the AWSomePets definitions (the durable topology and one user per
# service, docker/rabbitmq-definitions.sh, the same ones scripts/lib.sh imports natively) where the node loads
# them at every boot, then hands over to the image's own entrypoint. Passwords come from the PETS_AMQP_PW_*
# variables; the administrator (management UI login) from RABBITMQ_DEFAULT_USER/PASS, because a node that loads
# definitions at boot creates no default user of its own.
set -eu
definitions=/etc/rabbitmq/pets-definitions.json
(
    umask 077
    PETS_RABBIT_ADMIN_USER="${RABBITMQ_DEFAULT_USER:?}" PETS_RABBIT_ADMIN_PASSWORD="${RABBITMQ_DEFAULT_PASS:?}" \
        sh /pets/rabbitmq-definitions.sh >"$definitions"
)
chown rabbitmq:rabbitmq "$definitions"
mkdir -p /etc/rabbitmq/conf.d
printf 'load_definitions = %s\n' "$definitions" >/etc/rabbitmq/conf.d/90-pets-definitions.conf
unset PETS_AMQP_PW_ORDER PETS_AMQP_PW_INVENTORY PETS_AMQP_PW_PAYMENT PETS_AMQP_PW_ORCHESTRATOR PETS_AMQP_PW_NOTIFIER
exec docker-entrypoint.sh "$@"
