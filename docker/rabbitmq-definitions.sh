#!/bin/sh
# Prints the RabbitMQ definitions of AWSomePets (JSON, for `rabbitmqctl import_definitions` or `load_definitions`):
# the durable topology every service relies on, and one broker user per service with permissions for only the
# queues and exchanges that service uses. scripts/lib.sh imports it after the native broker starts; compose's
# broker loads it at boot (docker/rabbitmq-entrypoint.sh). Declaring the topology here, as the administrator, is
# what lets the services' users go without any `configure` permission on durable resources, while a message
# published before its consumer ever ran still has a queue to wait in.
#
# Reads the passwords from PETS_AMQP_PW_ORDER, PETS_AMQP_PW_INVENTORY, PETS_AMQP_PW_PAYMENT,
# PETS_AMQP_PW_ORCHESTRATOR and PETS_AMQP_PW_NOTIFIER; each must be URL-safe (it goes into PETS_AMQP_URL), which
# also keeps it JSON-safe here. Users are named pets-<service>.
#
# Permissions (regular expressions over resource names in vhost /; RabbitMQ checks configure for declare/delete,
# write for publish and for binding a queue, read for consume/get and for the exchange of a binding):
#   service       configure          write                          read
#   order         -                  amq.default                    order.commands, order.events
#   inventory     -                  amq.default, pets.stock        inventory.commands
#   payment       -                  amq.default                    payment.commands
#   orchestrator  -                  amq.default, pets.status       orchestrator.commands, orchestrator.replies
#   notifier      amq.gen-*          amq.gen-*, pets.dlx            amq.gen-*, pets.status
# Commands and replies travel through the default exchange, so `amq.default` write lets a service send to any
# queue by name; what it can never do is read another service's queue or declare, purge or delete anything.
set -eu

delivery_limit=20 # PetsTopology.deliveryLimit

user() { # name password configure write read
    case $2 in
    '' | *[!A-Za-z0-9._~-]*)
        echo "rabbitmq-definitions.sh: the password of $1 is empty or not URL-safe (use hex, e.g. openssl rand -hex 24)" >&2
        exit 1
        ;;
    esac
    users="${users:+$users,}
    {\"name\": \"$1\", \"password\": \"$2\", \"tags\": \"\"}"
    permissions="${permissions:+$permissions,}
    {\"user\": \"$1\", \"vhost\": \"/\", \"configure\": \"$3\", \"write\": \"$4\", \"read\": \"$5\"}"
}

users='' permissions=''
# Compose's broker loads these definitions at boot, and RabbitMQ then creates no default user: its entrypoint
# passes the administrator (the management UI's login) in PETS_RABBIT_ADMIN_USER/PASSWORD. Natively the
# definitions are imported after boot and the loopback-only `guest` stays the administrator.
if [ -n "${PETS_RABBIT_ADMIN_USER:-}" ]; then
    user "$PETS_RABBIT_ADMIN_USER" "${PETS_RABBIT_ADMIN_PASSWORD:-}" '.*' '.*' '.*'
    users=$(printf '%s' "$users" | sed 's/"tags": ""}$/"tags": "administrator"}/')
fi
user pets-order "${PETS_AMQP_PW_ORDER:-}" '^$' '^amq\\.default$' '^order\\.(commands|events)$'
user pets-inventory "${PETS_AMQP_PW_INVENTORY:-}" '^$' '^(amq\\.default|pets\\.stock)$' '^inventory\\.commands$'
user pets-payment "${PETS_AMQP_PW_PAYMENT:-}" '^$' '^amq\\.default$' '^payment\\.commands$'
user pets-orchestrator "${PETS_AMQP_PW_ORCHESTRATOR:-}" '^$' '^(amq\\.default|pets\\.status)$' \
    '^orchestrator\\.(commands|replies)$'
user pets-notifier "${PETS_AMQP_PW_NOTIFIER:-}" '^amq\\.gen-.*$' '^(amq\\.gen-.*|pets\\.dlx)$' \
    '^(amq\\.gen-.*|pets\\.status)$'

queue() { # name [dead-letter-exchange] [delivery-limit]
    printf '    {"name": "%s", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum", "x-delivery-limit": %s%s}}' \
        "$1" "${3:-$delivery_limit}" "${2:+, \"x-dead-letter-exchange\": \"$2\"}"
}
exchange() { # name
    printf '    {"name": "%s", "vhost": "/", "type": "fanout", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}' "$1"
}
binding() { # exchange queue
    printf '    {"source": "%s", "vhost": "/", "destination": "%s", "destination_type": "queue", "routing_key": "", "arguments": {}}' "$1" "$2"
}

cat <<JSON
{
  "vhosts": [{"name": "/"}],
  "users": [$users
  ],
  "permissions": [$permissions
  ],
  "exchanges": [
$(exchange pets.status),
$(exchange pets.stock),
$(exchange pets.dlx)
  ],
  "queues": [
$(queue order.commands pets.dlx),
$(queue order.events pets.dlx),
$(queue inventory.commands pets.dlx),
$(queue payment.commands pets.dlx),
$(queue orchestrator.commands pets.dlx),
$(queue orchestrator.replies pets.dlx),
$(queue pets.dead-letters '' 1000)
  ],
  "bindings": [
$(binding pets.status order.events),
$(binding pets.stock order.events),
$(binding pets.dlx pets.dead-letters)
  ]
}
JSON
