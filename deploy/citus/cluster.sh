#!/usr/bin/env bash
# A local Citus cluster for trying Promos on a distributed PostgreSQL: one coordinator and two
# workers, three PostgreSQL instances on their own ports and data folders, trust on loopback.
#
#   deploy/citus/cluster.sh up       start it (initialise on the first run), create the
#                                    extension, register the workers; idempotent
#   deploy/citus/cluster.sh down     stop it and remove its data folders; idempotent
#   deploy/citus/cluster.sh status   one line per node
#   deploy/citus/cluster.sh restart NODE    restart one node (coordinator, worker1, worker2)
#   deploy/citus/cluster.sh dropdb NAME     drop a database on every node
#
# It needs a PostgreSQL with Citus installed into it (docs/deployment.md: "Growing past one
# database"). Settings, from the environment:
#   PROMOS_CITUS_DIR    data folders' parent             (default /var/tmp/promos-citus)
#   PROMOS_CITUS_PORT   the coordinator's port; the workers take the next two (default 9700)
#   PROMOS_CITUS_PG_BIN PostgreSQL's programs             (default /usr/lib/postgresql/15/bin)
#   PROMOS_CITUS_DBS    databases made ready for Promos (default "promos postgres")
# Run as root, it runs PostgreSQL as the `postgres` user (PostgreSQL refuses to run as root).
# Every wait is bounded: pg_ctl waits at most 60 s for a node to start or stop.
set -euo pipefail

DIR=${PROMOS_CITUS_DIR:-/var/tmp/promos-citus}
PORT=${PROMOS_CITUS_PORT:-9700}
PG_BIN=${PROMOS_CITUS_PG_BIN:-/usr/lib/postgresql/15/bin}
DBS=${PROMOS_CITUS_DBS:-promos postgres}
PORTS=("$PORT" "$((PORT + 1))" "$((PORT + 2))")
NAMES=(coordinator worker1 worker2)

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

sql() { # port database statement
    PGOPTIONS="-c client_min_messages=warning" as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$2" \
        -tA -c "$3"
}

init_node() { # name port
    local data="$DIR/$1"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --no-instructions >/dev/null
        cat >>"$data/postgresql.conf" <<EOF
# deploy/citus/cluster.sh
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'citus'
max_connections = 300
shared_buffers = 128MB
wal_level = logical
max_prepared_transactions = 200
citus.max_client_connections = 280
EOF
        # Trust on loopback only: a local test cluster, never a production setting.
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
    fi
}

start_node() { # name
    local data="$DIR/$1"
    if ! as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
    fi
}

prepare_database() { # database
    local db=$1 port
    for port in "${PORTS[@]}"; do
        if [ -z "$(sql "$port" postgres "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            sql "$port" postgres "CREATE DATABASE \"$db\""
        fi
        sql "$port" "$db" "CREATE EXTENSION IF NOT EXISTS citus"
    done
    sql "$PORT" "$db" "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" >/dev/null
    for port in "${PORTS[@]:1}"; do
        if [ -z "$(sql "$PORT" "$db" "SELECT 1 FROM pg_dist_node WHERE nodeport = $port")" ]; then
            sql "$PORT" "$db" "SELECT citus_add_node('127.0.0.1', $port)" >/dev/null
        fi
    done
}

up() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        echo "no PostgreSQL at $PG_BIN (PROMOS_CITUS_PG_BIN)" >&2
        exit 1
    fi
    if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir)/citus.so" ] &&
        [ ! -f "$(dirname "$PG_BIN")/lib/citus.so" ]; then
        echo "Citus is not installed into the PostgreSQL at $PG_BIN" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR"; fi
    local i
    for i in 0 1 2; do
        init_node "${NAMES[$i]}" "${PORTS[$i]}"
        start_node "${NAMES[$i]}"
    done
    local db
    for db in $DBS; do prepare_database "$db"; done
    status
    echo "coordinator: postgresql://postgres@127.0.0.1:$PORT/promos"
}

down() {
    local name
    for name in "${NAMES[@]}"; do
        if [ -f "$DIR/$name/PG_VERSION" ]; then
            as_owner "$PG_BIN/pg_ctl" -D "$DIR/$name" -m fast -w -t 60 stop >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$DIR"
    echo "stopped; $DIR removed"
}

status() {
    local i state
    for i in 0 1 2; do
        if as_owner "$PG_BIN/pg_ctl" -D "$DIR/${NAMES[$i]}" status >/dev/null 2>&1; then
            state=running
        else
            state=stopped
        fi
        echo "${NAMES[$i]} 127.0.0.1:${PORTS[$i]} $state"
    done
}

restart_node() { # name
    as_owner "$PG_BIN/pg_ctl" -D "$DIR/$1" -l "$DIR/$1/server.log" -m fast -w -t 60 restart \
        >/dev/null
    echo "$1 restarted"
}

dropdb() { # database
    local port
    for port in "${PORTS[@]}"; do
        sql "$port" postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"
    done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
restart) restart_node "${2:?which node: coordinator, worker1 or worker2}" ;;
dropdb) dropdb "${2:?which database}" ;;
*)
    echo "usage: $0 up|down|status|restart NODE|dropdb NAME" >&2
    exit 2
    ;;
esac
