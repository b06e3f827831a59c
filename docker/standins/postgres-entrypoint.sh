#!/usr/bin/env bash
# Entry point of the PostgreSQL stand-in image (postgres.Dockerfile). What it honours of the official image:
#   - the command `postgres ...` (arguments starting with `-` get `postgres` put in front);
#   - started as root, it makes PGDATA belong to `postgres` and runs everything as that user;
#   - on the first start with an empty PGDATA: POSTGRES_PASSWORD (required) for the superuser POSTGRES_USER
#     (default postgres), scram-sha-256 over TCP from anywhere, trust on the local socket; then a temporary server
#     on the socket only runs /docker-entrypoint-initdb.d/* (*.sh executed, or sourced when not executable;
#     *.sql through psql), is stopped, and the real server starts listening on every interface.
# Not imitated: POSTGRES_DB, POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, *_FILE secrets, *.sql.gz/xz, the
# locale (C.UTF-8 here, en_US.utf8 there).
set -Eeuo pipefail

if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi

if [[ $1 == postgres && $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [[ $1 == postgres && ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
        echo "docker-entrypoint.sh: POSTGRES_PASSWORD is not set; the database is uninitialised" >&2
        exit 1
    fi
    export PGUSER="${POSTGRES_USER:-postgres}" PGDATABASE=postgres
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$PGUSER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sh)
            echo "docker-entrypoint.sh: running $f"
            if [[ -x $f ]]; then
                "$f"
            else
                # shellcheck source=/dev/null
                . "$f"
            fi
            ;;
        *.sql)
            echo "docker-entrypoint.sh: running $f"
            psql -X -v ON_ERROR_STOP=1 -f "$f"
            ;;
        *) if [[ -e $f ]]; then echo "docker-entrypoint.sh: ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "docker-entrypoint.sh: initialised $PGDATA"
fi

exec "$@"
