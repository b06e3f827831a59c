#!/usr/bin/env bash
# Entry point of the RabbitMQ stand-in image (rabbitmq.Dockerfile). What it honours of the official image:
#   - the command `rabbitmq-server`, run as the `rabbitmq` user in the foreground, logging to stdout;
#   - RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS: the user created (administrator, vhost /) when the data
#     folder is empty (as `default_user`/`default_pass` in rabbitmq.conf, as the official entry point writes them);
#   - RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS, read by rabbitmq-server itself;
#   - the node name rabbit@<hostname>, its data under /var/lib/rabbitmq (the volume), the management plugin
#     on 15672, and `rabbitmq-diagnostics` working as root in the container (compose's health check).
# Not imitated: the other RABBITMQ_* variables, *_FILE secrets, TLS settings; the broker is Debian's 3.10, not
# 3.13 (no Khepri, older management UI).
set -Eeuo pipefail

if [[ ${1:-} == rabbitmq-server && $(id -u) == 0 ]]; then
    for var in RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS; do
        if [[ ${!var:-} == *$'\n'* ]]; then
            echo "docker-entrypoint.sh: $var must be one line" >&2
            exit 1
        fi
    done
    {
        echo "log.console = true"
        echo "log.console.level = info"
        echo "log.file = false"
        [[ -n ${RABBITMQ_DEFAULT_USER:-} ]] && echo "default_user = $RABBITMQ_DEFAULT_USER"
        [[ -n ${RABBITMQ_DEFAULT_PASS:-} ]] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
        true
    } >/etc/rabbitmq/rabbitmq.conf
    chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf
    chmod 600 /etc/rabbitmq/rabbitmq.conf
    mkdir -p /var/lib/rabbitmq
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
    shift
    cd /var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi

exec "$@"
