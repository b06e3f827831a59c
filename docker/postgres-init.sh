#!/usr/bin/env bash
# Creates the AWSomePets roles and databases in the official postgres image. compose.yaml mounts it (read-only)
# into /docker-entrypoint-initdb.d, so it runs once, when the data volume is first initialised; to apply new
# passwords to an existing volume, run the same SQL by hand or recreate the volume (docs/DEPLOYMENT.md).
#
# It mirrors scripts/lib.sh's pets_create_databases statement for statement (Tests/static/test_deployment.py
# checks that): one role per database with the same name, owning it, the only non-superuser allowed to connect
# to it; nobody but the superuser connects to `postgres` and `template1`.
#
# Passwords come from the environment (PETS_PW_ORDERS, PETS_PW_INVENTORY, PETS_PW_PAYMENTS,
# PETS_PW_ORCHESTRATOR) and reach psql through `\getenv` (psql 15+): they never appear in a command line or in
# SQL text, and psql quotes them as literals (:'pw'), so any character is safe.
#
# The image sources a non-executable *.sh file instead of running it: everything happens in a subshell so that
# neither `set -euo pipefail` nor `exit` leaks into the entrypoint's shell.
(
    set -euo pipefail

    # The same list, in the same order, as PETS_DATABASES in scripts/lib.sh.
    PETS_DATABASES=(orders inventory payments orchestrator)

    for db in "${PETS_DATABASES[@]}"; do
        var="PETS_PW_${db^^}"
        if [[ -z ${!var:-} ]]; then
            echo "postgres-init.sh: $var is not set; it is the password of role $db (see .env.example)" >&2
            exit 1
        fi
    done

    {
        # Nobody but the superuser connects to the maintenance databases.
        echo 'REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;'
        echo 'REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;'
        for db in "${PETS_DATABASES[@]}"; do
            cat <<EOF
\\set role '$db'
\\getenv pw PETS_PW_${db^^}
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
    } | psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres >/dev/null

    echo "postgres-init.sh: created roles and databases: ${PETS_DATABASES[*]}"
)
