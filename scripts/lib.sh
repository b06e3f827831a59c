# shellcheck shell=bash
# Shared functions for scripts/up, scripts/down and scripts/test. Source it; do not run it.
#
# Everything runs as root in a private state folder ($PETS_STATE) without systemd or Docker: PostgreSQL and
# RabbitMQ are started from their Debian binaries with our own data dirs and ports, so several instances (the
# `up` one and the `test` one) can coexist and none touches the system-wide services. What these functions rely
# on, found by trying on Debian 12: Debian's rabbitmq-server wrapper switches user, so the scripts in
# /usr/lib/rabbitmq/bin run directly with HOME, node name, ports and folders of our own (every CLI call must share
# that environment and its Erlang cookie); initdb and pg_ctl refuse root and run as the postgres user; epmd
# outlives the node and is stopped by its port.
#
# Functions return non-zero on failure instead of relying on `set -e`, because `set -e` is switched off inside a
# function called from an `if` or `||` context, and the scripts call several of them that way.

PETS_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PETS_PG_BIN="${PETS_PG_BIN:-/usr/lib/postgresql/15/bin}"
PETS_RABBIT_BIN="${PETS_RABBIT_BIN:-/usr/lib/rabbitmq/bin}"
# A fixed PATH for the processes we start with a cleaned environment (the caller's may hold pyenv shims etc.).
PETS_SYSTEM_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Start order: participants first, then the orchestrator that commands them, then the gateway and the notifier
# that face clients. Stopping goes in reverse.
PETS_SERVICES=(Inventory Payment Orchestrator Order Notifier)
# One database per service that has one; its role has the same name and can reach only that database.
PETS_DATABASES=(orders inventory payments orchestrator)

pets_log() { printf '[pets] %s\n' "$*" >&2; }
pets_die() {
    printf '[pets] ERROR: %s\n' "$*" >&2
    exit 1
}

# Fills in every setting the scripts use, keeping values already set by the caller (scripts/test sets its own
# ports before calling this). Safe to call more than once.
pets_defaults() {
    : "${PETS_STATE:=$PETS_REPO/.pets/run}"
    : "${PETS_PG_HOST:=127.0.0.1}"
    : "${PETS_PG_PORT:=5432}"
    : "${PETS_AMQP_PORT:=5672}"
    : "${PETS_RABBIT_NODES:=1}"
    : "${PETS_RABBIT_DIST_PORT:=25672}"
    : "${PETS_EPMD_PORT:=4369}"
    : "${PETS_RABBIT_MANAGEMENT:=0}"
    : "${PETS_RABBIT_MGMT_PORT:=15672}"
    # Erlang's schedulers spin while waiting for work; on a small machine that spinning takes CPU from the services
    # beside the broker (it showed as a third of RabbitMQ's CPU in the benchmark). Off: they sleep at once.
    : "${PETS_RABBIT_ERL_ARGS:=+sbwt none +sbwtdcpu none +sbwtdio none}"
    : "${PETS_ORDER_PORT:=8080}"
    : "${PETS_NOTIFIER_PORT:=8081}"
    : "${PETS_INVENTORY_PORT:=8082}"
    : "${PETS_PAYMENT_PORT:=8083}"
    : "${PETS_ORCHESTRATOR_PORT:=8084}"
    : "${PETS_INITIAL_STOCK:=1000}"
    : "${LOG_LEVEL:=info}"
    : "${PETS_HEALTH_TIMEOUT:=60}"
    # The broker's loopback-only administrator, for the tests and tools that inspect queues. No service uses it:
    # each has its own user (pets_amqp_url).
    PETS_AMQP_URL="amqp://guest:guest@127.0.0.1:${PETS_AMQP_PORT}/"
    pets_cluster_defaults
}

# Creates the state folder layout. Folders PostgreSQL writes to are created by pets_start_postgres.
pets_prepare_state() {
    mkdir -p "$PETS_STATE/logs" "$PETS_STATE/pids" || return 1
}

# ---------------------------------------------------------------------------------------------------------------
# Packages

pets_pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# Installs what the scripts and the Swift build need, only if missing, so a normal run never touches apt.
# chromium and chromium-driver are for the browser tests (Tests/browser): a real headless browser on the shop.
pets_install_packages() {
    local wanted=(postgresql rabbitmq-server librabbitmq-dev pkg-config curl ca-certificates chromium chromium-driver)
    local missing=() p
    # The e2e tests need `python3 -m venv`; Debian's python3 lacks ensurepip without python3-venv, while a
    # python3 from elsewhere (pyenv) has it. This check also catches a machine with no python3 at all.
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || wanted+=(python3-venv)
    for p in "${wanted[@]}"; do
        pets_pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        [[ $EUID -eq 0 ]] || pets_die "missing packages (${missing[*]}); run as root to install them"
        pets_log "installing: ${missing[*]}"
        # Without systemd, invoke-rc.d would start the system-wide postgresql/rabbitmq on 5432/5672 right after
        # installing them and collide with ours. A policy-rc.d that answers 101 ("action forbidden") prevents
        # that; Docker images ship one already, a plain Debian does not.
        local policy=/usr/sbin/policy-rc.d ours=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
        fi
        local rc=0
        apt-get update || rc=$?
        ((rc)) || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || rc=$?
        ((ours)) && rm -f "$policy"
        ((rc == 0)) || pets_die "apt-get failed (exit $rc)"
    fi
    [[ -x $PETS_PG_BIN/initdb ]] || pets_die "PostgreSQL 15 binaries not found in $PETS_PG_BIN"
    [[ -x $PETS_RABBIT_BIN/rabbitmq-server ]] || pets_die "RabbitMQ scripts not found in $PETS_RABBIT_BIN"
}

# ---------------------------------------------------------------------------------------------------------------
# Secrets

pets_random_hex() { od -An -v -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Every secret the native run generates: the WebSocket token secret, the operator's bearer token, one password
# per database role and one per broker user.
PETS_SECRET_KEYS=(PETS_TOKEN_SECRET PETS_OPERATOR_TOKEN PETS_PW_ORDERS PETS_PW_INVENTORY PETS_PW_PAYMENTS
    PETS_PW_ORCHESTRATOR PETS_AMQP_PW_ORDER PETS_AMQP_PW_INVENTORY PETS_AMQP_PW_PAYMENT PETS_AMQP_PW_ORCHESTRATOR
    PETS_AMQP_PW_NOTIFIER)

# Creates $PETS_REPO/.pets/secrets.env once (a key missing from an older file is added) and sources it. The
# variables are not exported: each service gets only its own password from pets_start_service.
pets_secrets() {
    local file="$PETS_REPO/.pets/secrets.env" key
    mkdir -p "$PETS_REPO/.pets" || return 1
    (
        umask 077
        [[ -e $file ]] || printf '# Generated by scripts/lib.sh; delete it to get new secrets.\n' >"$file"
        for key in "${PETS_SECRET_KEYS[@]}"; do
            grep -q "^$key=" "$file" || printf '%s=%s\n' "$key" "$(pets_random_hex 32)" >>"$file"
        done
    ) || return 1
    chmod 600 "$file" || return 1
    # shellcheck source=/dev/null
    source "$file"
}

# The broker URL of a service, as its own user: pets_amqp_url Order -> amqp://pets-order:$PETS_AMQP_PW_ORDER@...
pets_amqp_url() {
    local service var
    service="$(pets_instance_service "$1")"
    var="PETS_AMQP_PW_${service^^}"
    printf 'amqp://pets-%s:%s@127.0.0.1:%s/' "${service,,}" \
        "${!var:?secrets not loaded (pets_secrets) or no broker password for $service}" "$PETS_AMQP_PORT"
}

# The password of a database role: pets_db_password orders -> $PETS_PW_ORDERS.
pets_db_password() {
    local var="PETS_PW_${1^^}"
    printf '%s' "${!var:?secrets not loaded (pets_secrets) or no password for role $1}"
}

# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL

pets_pg_dir() { printf '%s/postgres' "$PETS_STATE"; }

# psql as the superuser over the unix socket (trusted locally), never over TCP.
pets_psql() {
    "$PETS_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pets_pg_dir)/sock" -p "$PETS_PG_PORT" -U postgres "$@"
}

pets_pg_ctl() {
    # initdb and pg_ctl refuse to run as root. `cd /` because postgres may not be allowed into the caller's cwd.
    (cd / && runuser -u postgres -- "$PETS_PG_BIN/pg_ctl" -D "$(pets_pg_dir)/data" "$@")
}

pets_start_postgres() {
    local dir data sock log
    dir="$(pets_pg_dir)" data="$dir/data" sock="$dir/sock" log="$PETS_STATE/logs/postgres.log"
    # A unix socket path is limited to 107 bytes; a deep checkout would make the server fail obscurely.
    ((${#sock} + 20 < 107)) || pets_die "socket dir path too long for a unix socket: $sock (set a shorter PETS_STATE)"

    install -d -o postgres -g postgres -m 700 "$dir" "$sock" || return 1
    touch "$log" && chown postgres:postgres "$log" || return 1
    # The postgres user must be able to walk down to its folders (fails for a checkout under /root, mode 700).
    runuser -u postgres -- test -w "$dir" ||
        pets_die "user postgres cannot reach $dir; a parent folder is not searchable by others"

    if [[ ! -s $data/PG_VERSION ]]; then
        rm -rf "$data" # the remains of an interrupted initdb would make it refuse the folder
        pets_log "initdb $data"
        (cd / && runuser -u postgres -- "$PETS_PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256) >>"$log" 2>&1 ||
            pets_die "initdb failed; see $log"
        # Our settings live in their own file, rewritten at each start so changed ports take effect.
        echo "include_if_exists = 'pets.conf'" >>"$data/postgresql.conf"
    fi
    # fsync and synchronous_commit are the defaults; stated so nobody "speeds up" the tests by turning them off:
    # the outbox/inbox guarantees only hold if a commit is on disk.
    cat >"$data/pets.conf" <<EOF
# Written by scripts/lib.sh at each start.
listen_addresses = '127.0.0.1'
port = $PETS_PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
fsync = on
synchronous_commit = on
EOF
    chown postgres:postgres "$data/pets.conf" || return 1

    if pets_pg_ctl status >/dev/null 2>&1; then
        pets_log "postgres already running ($data)"
    else
        pets_log "starting postgres on 127.0.0.1:$PETS_PG_PORT"
        pets_pg_ctl -l "$log" -w -t 60 start >/dev/null || {
            tail -n 20 "$log" >&2
            pets_die "postgres did not start; see $log"
        }
    fi
    pets_create_databases
}

# Idempotent: creates the roles and databases if missing, (re)sets every password from secrets.env, and limits
# each role to its own database. The SQL comes on stdin so no password appears in a process's arguments.
pets_create_databases() {
    local db
    {
        # Nobody but the superuser connects to the maintenance databases.
        echo 'REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;'
        echo 'REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;'
        for db in "${PETS_DATABASES[@]}"; do
            cat <<EOF
\\set role '$db'
\\set pw '$(pets_db_password "$db")'
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \\gexec
ALTER DATABASE :"role" OWNER TO :"role";
REVOKE CONNECT, TEMPORARY ON DATABASE :"role" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"role" TO :"role";
\\connect :"role"
GRANT ALL ON SCHEMA public TO :"role";
\\connect postgres
EOF
        done
    } | pets_psql -d postgres >/dev/null || pets_die "creating roles and databases failed"
}

pets_stop_postgres() {
    local data
    data="$(pets_pg_dir)/data"
    # postmaster.pid exists only while a server runs on our data folder: we never touch another cluster.
    [[ -f $data/postmaster.pid ]] || return 0
    pets_log "stopping postgres"
    # fast: roll back open transactions and shut down cleanly (a checkpoint), without waiting for clients.
    pets_pg_ctl -m fast -w -t 60 stop >/dev/null || {
        pets_log "postgres did not stop cleanly; see $PETS_STATE/logs/postgres.log"
        return 1
    }
}

# ---------------------------------------------------------------------------------------------------------------
# RabbitMQ

pets_rabbit_dir() { printf '%s/rabbitmq' "$PETS_STATE"; }

# Every rabbitmqctl call must see exactly the server's environment (HOME for the cookie, node name, epmd port),
# or it starts a stray epmd / writes a new cookie. So the environment lives in one file and each call runs with
# nothing but that file (env -i).
pets_rabbit_env() {
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    env -i PATH="$PETS_SYSTEM_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        bash -c 'source "$0" && exec "$@"' "$(pets_rabbit_dir)/cli.env" "$@"
}

pets_rabbitmqctl() {
    [[ -f "$(pets_rabbit_dir)/cli.env" ]] || pets_die "RabbitMQ was never set up in $PETS_STATE"
    pets_rabbit_env "$PETS_RABBIT_BIN/rabbitmqctl" "$@"
}

pets_write_rabbit_config() {
    local dir node
    dir="$(pets_rabbit_dir)"
    # The node name only has to be unique per epmd; naming it after the state folder helps reading `ps`.
    node="pets-$(basename "$PETS_STATE" | tr -c 'A-Za-z0-9_\n-' '_')@localhost"
    mkdir -p "$dir/home" "$dir/mnesia" "$dir/log" || return 1
    if [[ ! -s $dir/home/.erlang.cookie ]]; then
        (umask 077 && pets_random_hex 20 >"$dir/home/.erlang.cookie") || return 1
        chmod 400 "$dir/home/.erlang.cookie" # Erlang refuses a cookie others can read
    fi
    : >"$dir/rabbitmq-env.conf" # empty on purpose: skips /etc/rabbitmq/rabbitmq-env.conf
    {
        echo '# Written by scripts/lib.sh at each start.'
        echo "listeners.tcp.default = 127.0.0.1:$PETS_AMQP_PORT"
        echo 'loopback_users.guest = true'
        # Management keys are only valid when the plugin is enabled: unknown keys stop the node.
        if [[ $PETS_RABBIT_MANAGEMENT == 1 ]]; then
            echo 'management.tcp.ip = 127.0.0.1'
            echo "management.tcp.port = $PETS_RABBIT_MGMT_PORT"
        fi
    } >"$dir/rabbitmq.conf"
    if [[ $PETS_RABBIT_MANAGEMENT == 1 ]]; then
        echo '[rabbitmq_management].' >"$dir/enabled_plugins"
    else
        echo '[].' >"$dir/enabled_plugins"
    fi
    {
        echo '# Written by scripts/lib.sh: the environment of the RabbitMQ node and of every CLI call.'
        printf 'export %s=%q\n' \
            HOME "$dir/home" \
            RABBITMQ_NODENAME "$node" \
            RABBITMQ_NODE_IP_ADDRESS 127.0.0.1 \
            RABBITMQ_NODE_PORT "$PETS_AMQP_PORT" \
            RABBITMQ_DIST_PORT "$PETS_RABBIT_DIST_PORT" \
            ERL_EPMD_ADDRESS 127.0.0.1 \
            ERL_EPMD_PORT "$PETS_EPMD_PORT" \
            RABBITMQ_MNESIA_BASE "$dir/mnesia" \
            RABBITMQ_LOG_BASE "$dir/log" \
            RABBITMQ_CONFIG_FILE "$dir/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE "$dir/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE "$dir/enabled_plugins" \
            RABBITMQ_CONF_ENV_FILE "$dir/rabbitmq-env.conf" \
            RABBITMQ_PID_FILE "$dir/rabbit.pid" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS "-kernel inet_dist_use_interface {127,0,0,1} $PETS_RABBIT_ERL_ARGS"
    } >"$dir/cli.env"
}

# True when the pid in FILE is alive and its command line contains WORD (a recycled pid is not ours).
pets_pid_is() {
    local file=$1 word=$2 pid
    [[ -s $file ]] || return 1
    pid="$(<"$file")"
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$word"
}

pets_start_rabbitmq() {
    local dir pidfile="$PETS_STATE/pids/rabbitmq.pid" log="$PETS_STATE/logs/rabbitmq.log"
    dir="$(pets_rabbit_dir)"
    if pets_pid_is "$pidfile" rabbitmq-server; then
        pets_log "rabbitmq already running (pid $(<"$pidfile"))"
        return 0
    fi
    pets_write_rabbit_config || return 1
    pets_log "starting rabbitmq on 127.0.0.1:$PETS_AMQP_PORT"
    # setsid: its own session, so a Ctrl-C in the terminal reaches only our trap, which stops things in order.
    # The recorded pid is the rabbitmq-server wrapper script; the Erlang VM's pid is in rabbit.pid.
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    setsid env -i PATH="$PETS_SYSTEM_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        bash -c 'source "$0" && exec "$@"' "$dir/cli.env" "$PETS_RABBIT_BIN/rabbitmq-server" \
        </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
    disown $! # no job notice if we ever have to kill it
    # await_startup fails at once while the node is not yet registered with epmd, so first `wait` for the pid
    # file the node writes early in its boot (it also waits for the app), then await_startup to be sure.
    if ! { pets_rabbitmqctl wait "$dir/rabbit.pid" --timeout 60 &&
        pets_rabbitmqctl await_startup --timeout 60; } >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        pets_stop_rabbitmq || true
        pets_die "rabbitmq did not start; see $log and $dir/log/"
    fi
    pets_configure_broker
}

# Declares the durable topology once, as the administrator, and (re)creates one user per service with
# permissions for only what that service uses, all from docker/rabbitmq-definitions.sh (compose's broker loads
# the same definitions). Idempotent; passwords are (re)set from secrets.env at each start. The definitions hold
# the passwords, so they live in a private file only for the length of the import.
pets_configure_broker() {
    local defs rc=0
    defs="$(pets_rabbit_dir)/definitions.json"
    (
        umask 077
        export PETS_AMQP_PW_ORDER PETS_AMQP_PW_INVENTORY PETS_AMQP_PW_PAYMENT PETS_AMQP_PW_ORCHESTRATOR \
            PETS_AMQP_PW_NOTIFIER
        sh "$PETS_REPO/docker/rabbitmq-definitions.sh" >"$defs"
    ) || rc=1
    ((rc)) || pets_rabbitmqctl import_definitions "$defs" >>"$PETS_STATE/logs/rabbitmq.log" 2>&1 || rc=1
    rm -f "$defs"
    ((rc == 0)) || pets_die "declaring the broker's topology and users failed; see $PETS_STATE/logs/rabbitmq.log"
    # The import finishes in the background. Bindings are imported last (after users, permissions, queues and
    # exchanges): once the three of ours exist, no service can connect to a half-declared broker.
    local i
    for ((i = 0; i < 30; i++)); do
        [[ $(pets_rabbitmqctl list_bindings source_name destination_name --quiet 2>/dev/null |
            grep -c '^pets\.') -ge 3 ]] && return 0
        sleep 1
    done
    pets_die "the broker's definitions were not in place after 30 tries; see $PETS_STATE/logs/rabbitmq.log"
}

pets_stop_rabbitmq() {
    local dir pidfile="$PETS_STATE/pids/rabbitmq.pid" beamfile
    dir="$(pets_rabbit_dir)" beamfile="$(pets_rabbit_dir)/rabbit.pid"
    [[ -f $dir/cli.env ]] || return 0 # never configured here: nothing of ours can be running
    if pets_pid_is "$pidfile" rabbitmq-server || pets_pid_is "$beamfile" beam; then
        pets_log "stopping rabbitmq"
        pets_rabbitmqctl shutdown >>"$PETS_STATE/logs/rabbitmq.log" 2>&1 || true
        # If the node did not answer, fall back to signals, still only to the processes we recorded.
        local f
        for f in "$pidfile" "$beamfile"; do
            if pets_pid_is "$f" rabbitmq-server || pets_pid_is "$f" beam; then
                pets_kill_and_wait "$(<"$f")" 10
            fi
        done
    fi
    # epmd outlives the node; this kills only the epmd on our private port, read back from the node's own
    # environment file so `down` needs none of the variables `up` had.
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    pets_rabbit_env bash -c 'exec epmd -port "$ERL_EPMD_PORT" -kill' >/dev/null 2>&1 || true
    rm -f "$pidfile" "$beamfile"
}

# ---------------------------------------------------------------------------------------------------------------
# A RabbitMQ cluster (PETS_RABBIT_NODES=3)
#
# Node 1 is the single node above, unchanged: same folder, name, ports and cli.env, so pets_rabbitmqctl talks to it.
# Node K (2, 3, ...) lives in $PETS_STATE/rabbitmq-K with AMQP on PETS_AMQP_PORT + K - 1, Erlang distribution on
# PETS_RABBIT_DIST_PORT + K - 1 and management on PETS_RABBIT_MGMT_PORT + K - 1; every node shares the one epmd,
# node 1's HOME (so the one Erlang cookie) and the scheduler flags. Nodes K >= 2 list the cluster's nodes for classic
# config peer discovery: on their first start they join node 1; from then on their data folder names the cluster
# and a restarted node (SIGKILL included) rejoins by itself.

# Called by pets_defaults: PETS_AMQP_URLS lists every node's address (with PETS_AMQP_URL's user).
pets_cluster_defaults() {
    [[ $PETS_RABBIT_NODES =~ ^[1-9]$ ]] || pets_die "PETS_RABBIT_NODES must be a number of nodes (1 or 3), not '$PETS_RABBIT_NODES'"
    PETS_AMQP_URLS="$(pets_cluster_urls "$PETS_AMQP_URL")"
    # Node K takes every broker port + K - 1: three ranges that must not overlap (scripts/test's AMQP 16672 and
    # distribution 16673 would, for example).
    local n=$PETS_RABBIT_NODES a=$PETS_AMQP_PORT d=$PETS_RABBIT_DIST_PORT m=$PETS_RABBIT_MGMT_PORT
    if ((n > 1)) && { ((a < d + n && d < a + n)) || ((a < m + n && m < a + n)) || ((d < m + n && m < d + n)); }; then
        pets_die "$n RabbitMQ nodes need AMQP ports $a.., distribution ports $d.. and management ports $m.. that do not overlap"
    fi
}

# pets_cluster_urls URL: node 1's URL (amqp://USER:PW@127.0.0.1:PETS_AMQP_PORT/) once per node, comma separated,
# with node K's port. The same user and password reach every node: users live in the cluster, not in a node.
pets_cluster_urls() {
    local url=$1 k urls=()
    for ((k = 1; k <= PETS_RABBIT_NODES; k++)); do
        urls+=("${url/:$PETS_AMQP_PORT\//:$((PETS_AMQP_PORT + k - 1))/}")
    done
    (IFS=, && printf '%s' "${urls[*]}")
}

pets_rabbit_node_dir() {
    if (($1 == 1)); then pets_rabbit_dir; else printf '%s/rabbitmq-%s' "$PETS_STATE" "$1"; fi
}
pets_rabbit_node_pidfile() {
    if (($1 == 1)); then printf '%s/pids/rabbitmq.pid' "$PETS_STATE"; else printf '%s/pids/rabbitmq-%s.pid' "$PETS_STATE" "$1"; fi
}
pets_rabbit_node_log() {
    if (($1 == 1)); then printf '%s/logs/rabbitmq.log' "$PETS_STATE"; else printf '%s/logs/rabbitmq-%s.log' "$PETS_STATE" "$1"; fi
}
# Node 1's name is the one pets_write_rabbit_config gives the single node; node K's is pets<K>-<state folder>.
pets_rabbit_node_name() {
    local base
    base="$(basename "$PETS_STATE" | tr -c 'A-Za-z0-9_\n-' '_')"
    if (($1 == 1)); then printf 'pets-%s@localhost' "$base"; else printf 'pets%s-%s@localhost' "$1" "$base"; fi
}

# Like pets_rabbit_env, for node K.
pets_rabbit_node_env() {
    local k=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    env -i PATH="$PETS_SYSTEM_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        bash -c 'source "$0" && exec "$@"' "$(pets_rabbit_node_dir "$k")/cli.env" "$@"
}

# Node K >= 2's files; node 1's are pets_write_rabbit_config's.
pets_write_rabbit_node_config() {
    local k=$1 dir home i
    dir="$(pets_rabbit_node_dir "$k")" home="$(pets_rabbit_dir)/home"
    [[ -s $home/.erlang.cookie ]] || pets_die "no Erlang cookie in $home (node 1's config is written first)"
    mkdir -p "$dir/mnesia" "$dir/log" || return 1
    : >"$dir/rabbitmq-env.conf"
    {
        echo '# Written by scripts/lib.sh at each start.'
        echo "listeners.tcp.default = 127.0.0.1:$((PETS_AMQP_PORT + k - 1))"
        echo 'loopback_users.guest = true'
        echo 'cluster_formation.peer_discovery_backend = classic_config'
        for ((i = 1; i <= PETS_RABBIT_NODES; i++)); do
            echo "cluster_formation.classic_config.nodes.$i = $(pets_rabbit_node_name "$i")"
        done
        echo 'cluster_partition_handling = pause_minority'
        if [[ $PETS_RABBIT_MANAGEMENT == 1 ]]; then
            echo 'management.tcp.ip = 127.0.0.1'
            echo "management.tcp.port = $((PETS_RABBIT_MGMT_PORT + k - 1))"
        fi
    } >"$dir/rabbitmq.conf"
    if [[ $PETS_RABBIT_MANAGEMENT == 1 ]]; then
        echo '[rabbitmq_management].' >"$dir/enabled_plugins"
    else
        echo '[].' >"$dir/enabled_plugins"
    fi
    {
        echo '# Written by scripts/lib.sh: the environment of the RabbitMQ node and of every CLI call.'
        printf 'export %s=%q\n' \
            HOME "$home" \
            RABBITMQ_NODENAME "$(pets_rabbit_node_name "$k")" \
            RABBITMQ_NODE_IP_ADDRESS 127.0.0.1 \
            RABBITMQ_NODE_PORT "$((PETS_AMQP_PORT + k - 1))" \
            RABBITMQ_DIST_PORT "$((PETS_RABBIT_DIST_PORT + k - 1))" \
            ERL_EPMD_ADDRESS 127.0.0.1 \
            ERL_EPMD_PORT "$PETS_EPMD_PORT" \
            RABBITMQ_MNESIA_BASE "$dir/mnesia" \
            RABBITMQ_LOG_BASE "$dir/log" \
            RABBITMQ_CONFIG_FILE "$dir/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE "$dir/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE "$dir/enabled_plugins" \
            RABBITMQ_CONF_ENV_FILE "$dir/rabbitmq-env.conf" \
            RABBITMQ_PID_FILE "$dir/rabbit.pid" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS "-kernel inet_dist_use_interface {127,0,0,1} $PETS_RABBIT_ERL_ARGS"
    } >"$dir/cli.env"
}

# Starts node K in the background without waiting (pets_await_rabbit_node waits). Node 1 keeps the config
# pets_write_rabbit_config wrote; node K >= 2 gets its own.
pets_start_rabbit_node() {
    local k=$1 dir pidfile log
    dir="$(pets_rabbit_node_dir "$k")" pidfile="$(pets_rabbit_node_pidfile "$k")" log="$(pets_rabbit_node_log "$k")"
    if pets_pid_is "$pidfile" rabbitmq-server; then
        pets_log "rabbitmq node $k already running (pid $(<"$pidfile"))"
        return 0
    fi
    if ((k == 1)); then pets_write_rabbit_config; else pets_write_rabbit_node_config "$k"; fi || return 1
    pets_log "starting rabbitmq node $k ($(pets_rabbit_node_name "$k")) on 127.0.0.1:$((PETS_AMQP_PORT + k - 1))"
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    setsid env -i PATH="$PETS_SYSTEM_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        bash -c 'source "$0" && exec "$@"' "$dir/cli.env" "$PETS_RABBIT_BIN/rabbitmq-server" \
        </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
    disown $!
}

# Waits until node K has booted (joined the cluster included). Leaves a node that did not start to the caller.
pets_await_rabbit_node() {
    local k=$1 dir log
    dir="$(pets_rabbit_node_dir "$k")" log="$(pets_rabbit_node_log "$k")"
    if ! { pets_rabbit_node_env "$k" "$PETS_RABBIT_BIN/rabbitmqctl" wait "$dir/rabbit.pid" --timeout 120 &&
        pets_rabbit_node_env "$k" "$PETS_RABBIT_BIN/rabbitmqctl" await_startup --timeout 120; } >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        pets_log "rabbitmq node $k did not start; see $log and $dir/log/"
        return 1
    fi
}

# SIGKILLs what is left of node K (its wrapper or its VM), only by the pids recorded for it. Never epmd: the
# other nodes are registered there.
pets_kill_rabbit_node() {
    local k=$1 f
    for f in "$(pets_rabbit_node_pidfile "$k")" "$(pets_rabbit_node_dir "$k")/rabbit.pid"; do
        if pets_pid_is "$f" rabbitmq-server || pets_pid_is "$f" beam; then kill -KILL "$(<"$f")" 2>/dev/null || true; fi
        rm -f "$f"
    done
}

# Starts the whole cluster and waits until every node runs in it. A first start goes one node after the other
# (node K joins a running node 1). A restart starts the nodes that already have data before node 1: a node that
# was not the last to stop waits at boot for the others, so they must all be on their way. Whatever sets up the
# broker's contents (users, topology) belongs after the last line, once every node runs: a quorum queue declared
# earlier gets members only on the nodes running then.
pets_start_rabbit_cluster() {
    local k early=() late=() running i
    pets_write_rabbit_config || return 1 # node 1's folder and the cookie every node shares
    echo '[{rabbit, [{cluster_partition_handling, pause_minority}]}].' >"$(pets_rabbit_dir)/advanced.config"
    for ((k = 2; k <= PETS_RABBIT_NODES; k++)); do
        if [[ -n "$(ls -A "$(pets_rabbit_node_dir "$k")/mnesia" 2>/dev/null)" ]]; then early+=("$k"); else late+=("$k"); fi
    done
    for k in "${early[@]}"; do pets_start_rabbit_node "$k" || return 1; done
    { pets_start_rabbit_node 1 && pets_await_rabbit_node 1; } || pets_die "rabbitmq node 1 did not start"
    for k in "${late[@]}"; do
        { pets_start_rabbit_node "$k" && pets_await_rabbit_node "$k"; } || pets_die "rabbitmq node $k did not join"
    done
    for k in "${early[@]}"; do pets_await_rabbit_node "$k" || pets_die "rabbitmq node $k did not rejoin"; done
    for ((i = 0; i < 60; i++)); do
        running="$(pets_rabbitmqctl eval 'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -dc 0-9)"
        [[ $running == "$PETS_RABBIT_NODES" ]] && break
        sleep 1
    done
    [[ $running == "$PETS_RABBIT_NODES" ]] ||
        pets_die "the RabbitMQ cluster has ${running:-no} running nodes of $PETS_RABBIT_NODES; see $PETS_STATE/logs/"
    # The topology and the users, declared once all nodes run, so every quorum queue starts with a member on each.
    pets_configure_broker
    # A quorum queue declared while fewer nodes ran (or a node that lost its data folder and joined afresh) has no
    # member on some node: add one on every node, so each queue has three. Does nothing when all have them.
    for ((k = 2; k <= PETS_RABBIT_NODES; k++)); do
        pets_rabbit_env "$PETS_RABBIT_BIN/rabbitmq-queues" grow "$(pets_rabbit_node_name "$k")" all \
            >>"$PETS_STATE/logs/rabbitmq.log" 2>&1 || pets_log "rabbitmq-queues grow on node $k failed; see logs/rabbitmq.log"
    done
    pets_log "rabbitmq cluster of $PETS_RABBIT_NODES nodes running (AMQP ports $PETS_AMQP_PORT-$((PETS_AMQP_PORT + PETS_RABBIT_NODES - 1)))"
}

# One node or the cluster, as PETS_RABBIT_NODES says.
pets_start_broker() {
    if ((PETS_RABBIT_NODES > 1)); then pets_start_rabbit_cluster; else pets_start_rabbitmq; fi
}

# Stops nodes K >= 2 (newest first) of whatever cluster was started on this state folder, whatever PETS_RABBIT_NODES
# says now; pets_stop_rabbitmq then stops node 1, the last one, and epmd. Node 1 being the last to stop, it is the
# one that boots without waiting for the others next time.
pets_stop_rabbit_cluster_nodes() {
    local dir k
    for dir in $(find "$PETS_STATE" -maxdepth 1 -name 'rabbitmq-[0-9]*' -type d 2>/dev/null | sort -r); do
        [[ -f $dir/cli.env ]] || continue
        k="${dir##*-}"
        if pets_pid_is "$(pets_rabbit_node_pidfile "$k")" rabbitmq-server || pets_pid_is "$dir/rabbit.pid" beam; then
            pets_log "stopping rabbitmq node $k"
            pets_rabbit_node_env "$k" "$PETS_RABBIT_BIN/rabbitmqctl" shutdown >>"$(pets_rabbit_node_log "$k")" 2>&1 || true
        fi
        pets_kill_rabbit_node "$k"
    done
}

# The supervisor's turn for a cluster: a node whose process is gone is restarted with its data folder and rejoins.
# Node 1 too goes through pets_start_rabbit_node: pets_start_rabbitmq's failure path would stop epmd under the
# other nodes.
pets_supervise_rabbit_cluster() {
    local k
    for ((k = 1; k <= PETS_RABBIT_NODES; k++)); do
        pets_pid_is "$(pets_rabbit_node_pidfile "$k")" rabbitmq-server && continue
        pets_log "supervisor: rabbitmq node $k is down; restarting"
        pets_kill_rabbit_node "$k"
        (pets_start_rabbit_node "$k" && pets_await_rabbit_node "$k") ||
            pets_log "supervisor: rabbitmq node $k did not restart; trying again"
    done
}

# ---------------------------------------------------------------------------------------------------------------
# Build and services

# pets_build [debug|release] [extra swift build args...]; exports PETS_BIN.
pets_build() {
    local config=${1:-release}
    shift || true
    # The import check makes an import that Package.swift does not declare a build error, so the module graph
    # stays what Package.swift says it is.
    pets_log "swift build -c $config --explicit-target-dependency-import-check error $*"
    (cd "$PETS_REPO" && swift build -c "$config" --explicit-target-dependency-import-check error "$@") || return 1
    PETS_BIN="$(cd "$PETS_REPO" && swift build -c "$config" --show-bin-path)" || return 1
    export PETS_BIN
}

# Replicas: an instance is NAME (the first) or NAME-K (K = 2, 3, ...). PETS_SCALE says how many of each, e.g.
# PETS_SCALE="Inventory=2 Payment=2 Orchestrator=2"; replica K listens on the service's port + 100 * (K - 1).
pets_instance_service() { printf '%s' "${1%%-*}"; }
pets_instance_index() { [[ $1 == *-* ]] && printf '%s' "${1##*-}" || printf '1'; }

pets_scale_of() {
    local item
    for item in ${PETS_SCALE:-}; do
        [[ ${item%%=*} == "$1" ]] && {
            printf '%s' "${item#*=}"
            return
        }
    done
    printf '1'
}

# Every instance to run, in start order.
pets_instances() {
    local name k
    for name in "${PETS_SERVICES[@]}"; do
        printf '%s\n' "$name"
        for ((k = 2; k <= $(pets_scale_of "$name"); k++)); do printf '%s\n' "$name-$k"; done
    done
}

pets_service_port() {
    local base offset=$((($(pets_instance_index "$1") - 1) * 100))
    case $(pets_instance_service "$1") in
    Order) base=$PETS_ORDER_PORT ;;
    Notifier) base=$PETS_NOTIFIER_PORT ;;
    Inventory) base=$PETS_INVENTORY_PORT ;;
    Payment) base=$PETS_PAYMENT_PORT ;;
    Orchestrator) base=$PETS_ORCHESTRATOR_PORT ;;
    *) pets_die "unknown service $1" ;;
    esac
    echo $((base + offset))
}

pets_service_db() {
    case $(pets_instance_service "$1") in
    Order) echo orders ;;
    Inventory) echo inventory ;;
    Payment) echo payments ;;
    Orchestrator) echo orchestrator ;;
    Notifier) echo "" ;;
    *) pets_die "unknown service $1" ;;
    esac
}

# True when the recorded pid of service NAME is alive and is still that binary (argv[0] ends in /NAME).
pets_service_alive() {
    local file="$PETS_STATE/pids/$1.pid" pid argv0
    [[ -s $file ]] || return 1
    pid="$(<"$file")"
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)"
    [[ ${argv0##*/} == "$(pets_instance_service "$1")" ]]
}

# Starts $PETS_BIN/NAME in the background with exactly the environment of the service contract.
pets_start_service() {
    local name=$1 bin log="$PETS_STATE/logs/$1.log" pidfile="$PETS_STATE/pids/$1.pid" db pid i
    bin="$PETS_BIN/$(pets_instance_service "$1")"
    [[ -x $bin ]] || pets_die "no executable $bin (run the build first)"
    pets_service_alive "$name" && pets_die "$name is already running (pid $(<"$pidfile"))"
    db="$(pets_service_db "$name")"
    printf '==== %s starting %s\n' "$(date -Is)" "$name" >>"$log"
    (
        # Drop every inherited variable (the secrets of the other roles, the caller's PETS_* settings) so the
        # service sees only its contract; export -n keeps the values in this subshell for the lines below.
        # shellcheck disable=SC2163 # $v names the variable to un-export
        for v in $(compgen -e); do
            case $v in PATH | HOME | LANG | LC_ALL | TZ | TMPDIR) ;; *) export -n "$v" ;; esac
        done
        PETS_HTTP_PORT="$(pets_service_port "$name")" || exit 1
        export PETS_HTTP_HOST=127.0.0.1 PETS_HTTP_PORT
        # Its own broker user, not the administrator.
        PETS_AMQP_URL="$(pets_amqp_url "$name")" || exit 1
        export PETS_AMQP_URL LOG_LEVEL
        # A cluster: every node's address, tried in turn (PETS_AMQP_URLS wins over PETS_AMQP_URL).
        if ((PETS_RABBIT_NODES > 1)); then
            PETS_AMQP_URLS="$(pets_cluster_urls "$PETS_AMQP_URL")"
            export PETS_AMQP_URLS
        fi
        # Two malloc arenas instead of glibc's 8 per core: each event loop and AMQP thread otherwise grows an arena
        # of its own, which costs resident memory and buys nothing at these allocation rates.
        export MALLOC_ARENA_MAX=2
        if [[ -n $db ]]; then
            PETS_DB_PASSWORD="$(pets_db_password "$db")" || exit 1
            export PETS_PG_HOST PETS_PG_PORT PETS_DB_NAME="$db" PETS_DB_USER="$db" PETS_DB_PASSWORD
        fi
        case $(pets_instance_service "$name") in
        Order) export PETS_TOKEN_SECRET PETS_OPERATOR_TOKEN PETS_PUBLIC_WS_URL="ws://localhost:$PETS_NOTIFIER_PORT" \
            PETS_PUBLIC_ORCHESTRATOR_URL="http://localhost:$PETS_ORCHESTRATOR_PORT" ;;
        Notifier) export PETS_TOKEN_SECRET PETS_ORCHESTRATOR_URL="http://127.0.0.1:$PETS_ORCHESTRATOR_PORT" ;;
        Inventory) export PETS_OPERATOR_TOKEN PETS_INITIAL_STOCK ;;
        Payment) export PETS_OPERATOR_TOKEN ;;
        # The token secret verifies the order tokens the Notifier fetches history with; the shop's origins are the
        # only ones whose pages (the saga monitor) may call the operator API.
        Orchestrator) export PETS_OPERATOR_TOKEN PETS_TOKEN_SECRET \
            PETS_SHOP_ORIGINS="http://localhost:$PETS_ORDER_PORT,http://127.0.0.1:$PETS_ORDER_PORT" ;;
        esac
        # Optional knobs, passed on only when the caller set them: the saga's timing (Orchestrator), the start's
        # deadline and attempts (Order), retention (every service with a database), fault injection for the
        # reliability tests (every service with a database), the broker heartbeat, HTTP and WebSocket limits.
        for v in PETS_STEP_DEADLINE_SECONDS PETS_STEP_ATTEMPTS PETS_COMPENSATION_ATTEMPTS PETS_RETRY_INTERVAL_SECONDS \
            PETS_START_DEADLINE_SECONDS PETS_START_ATTEMPTS PETS_PRUNE_INTERVAL_SECONDS PETS_INBOX_RETENTION_HOURS \
            PETS_HISTORY_RETENTION_DAYS PETS_FAULTS PETS_FAULTS_FILE PETS_AMQP_HEARTBEAT_SECONDS \
            PETS_MESSAGE_DEADLINE_SECONDS PETS_MESSAGE_ATTEMPTS PETS_MESSAGE_DELIVERIES \
            PETS_HTTP_IDLE_TIMEOUT_SECONDS PETS_HTTP_MAX_BODY_BYTES PETS_WS_MAX_SESSIONS PETS_WS_MAX_SESSIONS_PER_ORDER; do
            if [[ -n ${!v:-} ]]; then export "${v?}"; fi
        done
        # A fixed working folder, whatever the caller's: relative paths (static files) resolve from the repo.
        cd "$PETS_REPO" || exit 1
        # setsid: own session, so a terminal Ctrl-C does not hit the services before our trap stops them.
        # Without job control this subshell is not a group leader, so setsid execs in place: $! is the service.
        exec setsid "$bin" </dev/null >>"$log" 2>&1
    ) &
    pid=$!
    # Out of our job table: bash would otherwise print a "Killed (...)" notice with this subshell's source code
    # when pets_stop_services has to SIGKILL it.
    disown "$pid"
    echo "$pid" >"$pidfile"
    # Wait for the exec so the pid file check in pets_stop_services recognises the binary even if we stop at once.
    for ((i = 0; i < 20; i++)); do
        pets_service_alive "$name" && break
        sleep 0.1
    done
    pets_log "started $name (pid $pid, port $(pets_service_port "$name"), log $log)"
}

pets_start_services() {
    local name
    for name in $(pets_instances); do
        pets_start_service "$name"
    done
}

# Polls GET /health of every service until it answers 200. Fails fast, naming the service, if one exits.
pets_wait_healthy() {
    local deadline=$((SECONDS + PETS_HEALTH_TIMEOUT)) name url code
    for name in $(pets_instances); do
        url="http://127.0.0.1:$(pets_service_port "$name")/health"
        while :; do
            code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
            [[ $code == 200 ]] && break
            if ! pets_service_alive "$name"; then
                pets_log "$name exited before becoming healthy; last lines of $PETS_STATE/logs/$name.log:"
                tail -n 40 "$PETS_STATE/logs/$name.log" >&2
                return 1
            fi
            if ((SECONDS >= deadline)); then
                pets_log "$name not healthy after ${PETS_HEALTH_TIMEOUT}s ($url answered '${code:-nothing}');" \
                    "last lines of $PETS_STATE/logs/$name.log:"
                tail -n 40 "$PETS_STATE/logs/$name.log" >&2
                return 1
            fi
            sleep 0.5
        done
    done
    pets_log "all services healthy"
}

# SIGTERM, then SIGKILL after TIMEOUT seconds. Caller has checked the pid is ours.
pets_kill_and_wait() {
    local pid=$1 timeout=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    pets_log "pid $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Stops the services we recorded, newest first: SIGTERM to all (graceful shutdown runs in parallel), up to 10 s,
# then SIGKILL to those left. A pid whose process is no longer our binary is left alone.
pets_stop_services() {
    local i name pid pids=() names=() recorded=()
    # Whatever has a pid file, replicas included, services in reverse start order.
    for ((i = ${#PETS_SERVICES[@]} - 1; i >= 0; i--)); do
        for pid in "$PETS_STATE/pids/${PETS_SERVICES[i]}.pid" "$PETS_STATE/pids/${PETS_SERVICES[i]}"-*.pid; do
            [[ -f $pid ]] && name="${pid##*/}" && recorded+=("${name%.pid}")
        done
    done
    for name in "${recorded[@]}"; do
        if pets_service_alive "$name"; then
            pid="$(<"$PETS_STATE/pids/$name.pid")"
            pets_log "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid") names+=("$name")
        fi
        rm -f "$PETS_STATE/pids/$name.pid"
    done
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[i]}" 2>/dev/null; then
            pets_log "${names[i]} did not stop within 10s; sending SIGKILL"
            kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
    done
}

# Like compose's `restart: unless-stopped`: every second, restarts the database, the broker and any service
# instance whose pid file says it should run but whose process is gone (SIGKILL included). `pets_stop_all` stops
# the supervisor first, so a deliberate stop is never undone.
pets_supervise() {
    local name
    while :; do
        if ! pets_pg_ctl status >/dev/null 2>&1; then
            pets_log "supervisor: postgres is down; restarting"
            (pets_start_postgres) || pets_log "supervisor: postgres did not restart; trying again"
        fi
        if ((PETS_RABBIT_NODES > 1)); then
            pets_supervise_rabbit_cluster
        elif [[ -f $PETS_STATE/pids/rabbitmq.pid ]] && ! pets_pid_is "$PETS_STATE/pids/rabbitmq.pid" rabbitmq-server; then
            pets_log "supervisor: rabbitmq is down; restarting"
            pets_stop_rabbitmq >/dev/null 2>&1 || true
            (pets_start_rabbitmq) || pets_log "supervisor: rabbitmq did not restart; trying again"
        fi
        for name in $(pets_instances); do
            if [[ -f $PETS_STATE/pids/$name.pid ]] && ! pets_service_alive "$name"; then
                pets_log "supervisor: $name is down; restarting"
                rm -f "$PETS_STATE/pids/$name.pid"
                (pets_start_service "$name") || pets_log "supervisor: $name did not restart; trying again"
            fi
        done
        sleep 1
    done
}

# Starts the supervisor in the background (its own session), recording its pid.
pets_start_supervisor() {
    # The supervisor restarts things with the same settings: hand it every one (secrets it reads itself).
    export PETS_STATE PETS_BIN PETS_SCALE PETS_PG_HOST PETS_PG_PORT PETS_AMQP_PORT PETS_RABBIT_DIST_PORT PETS_EPMD_PORT \
        PETS_RABBIT_NODES \
        PETS_RABBIT_MANAGEMENT PETS_RABBIT_MGMT_PORT PETS_ORDER_PORT PETS_NOTIFIER_PORT PETS_INVENTORY_PORT \
        PETS_PAYMENT_PORT PETS_ORCHESTRATOR_PORT PETS_INITIAL_STOCK LOG_LEVEL PETS_HEALTH_TIMEOUT \
        PETS_STEP_DEADLINE_SECONDS PETS_STEP_ATTEMPTS PETS_COMPENSATION_ATTEMPTS PETS_RETRY_INTERVAL_SECONDS \
        PETS_START_DEADLINE_SECONDS PETS_START_ATTEMPTS PETS_PRUNE_INTERVAL_SECONDS PETS_INBOX_RETENTION_HOURS \
        PETS_HISTORY_RETENTION_DAYS PETS_FAULTS PETS_FAULTS_FILE PETS_AMQP_HEARTBEAT_SECONDS \
        PETS_MESSAGE_DEADLINE_SECONDS PETS_MESSAGE_ATTEMPTS PETS_MESSAGE_DELIVERIES \
        PETS_HTTP_IDLE_TIMEOUT_SECONDS PETS_HTTP_MAX_BODY_BYTES PETS_WS_MAX_SESSIONS PETS_WS_MAX_SESSIONS_PER_ORDER
    (
        trap - EXIT INT TERM
        exec setsid bash -c 'source "$0" && pets_defaults && pets_secrets && pets_supervise' "$PETS_REPO/scripts/lib.sh"
    ) >>"$PETS_STATE/logs/supervisor.log" 2>&1 </dev/null &
    echo $! >"$PETS_STATE/pids/supervisor.pid"
    disown $!
}

pets_stop_supervisor() {
    if pets_pid_is "$PETS_STATE/pids/supervisor.pid" pets_supervise; then
        kill -TERM "$(<"$PETS_STATE/pids/supervisor.pid")" 2>/dev/null || true
    fi
    rm -f "$PETS_STATE/pids/supervisor.pid"
}

# Everything, in the order that lets services shut down cleanly against a still-running broker and database.
pets_stop_all() {
    local rc=0
    pets_stop_supervisor || rc=1
    pets_stop_services || rc=1
    pets_stop_rabbit_cluster_nodes || rc=1
    pets_stop_rabbitmq || rc=1
    pets_stop_postgres || rc=1
    return "$rc"
}
