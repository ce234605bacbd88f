# shellcheck shell=bash
# A throwaway PostgreSQL server for tests and the bench: initdb in a temp dir owned by the `postgres`
# system user (PostgreSQL refuses to run as root), listening on 127.0.0.1:$PG_PORT and on a Unix socket
# in $PG_SOCKDIR, trust authentication for the test role. Stopped with `pg_ctl stop -m immediate`.
#
#   . tests/e2e/lib-pg.sh
#   pg_test_init DIR            # initdb + start; sets PG_PORT, PG_SOCKDIR, PG_DATA, PG_LOG
#   pg_test_psql SQL...         # runs SQL as the superuser in database "mail"
#   pg_test_stop / pg_test_start   # stop (immediate) and start the same cluster on the same port
#   pg_test_cleanup             # stop and remove; call it from an EXIT trap (idempotent)
#
# Runs as root (uses runuser) or as any user that can run initdb itself. Binaries: $PG_BIN or
# /usr/lib/postgresql/<newest>/bin.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DIR=
PG_DATA=
PG_PORT=
PG_SOCKDIR=
PG_LOG=
PG_RUNNING=no

pg_test_available() { [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; }

# Runs a command as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_test_init() { # DIR
    PG_DIR=$1
    PG_DATA=$PG_DIR/data
    PG_SOCKDIR=$PG_DIR/sock
    PG_LOG=$PG_DIR/postgres.log
    mkdir -p "$PG_DIR" "$PG_SOCKDIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR" "$PG_SOCKDIR"
        # The temp dir's parents must be traversable by postgres.
        chmod 755 "$PG_DIR"
    fi
    chmod 755 "$PG_SOCKDIR"
    pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
        { echo "initdb failed:"; tail -20 "$PG_DIR/initdb.log"; return 1; }
    PG_PORT=$(pg_free_port)
    pg_test_start || return 1
    pg_test_psql_db postgres "CREATE DATABASE mail" >/dev/null
}

pg_test_start() {
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 30 \
        -o "-p $PG_PORT -k $PG_SOCKDIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null ||
        { echo "postgres did not start:"; tail -20 "$PG_LOG"; return 1; }
    PG_RUNNING=yes
}

pg_test_stop() {
    [ "$PG_RUNNING" = yes ] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    PG_RUNNING=no
}

pg_test_psql_db() { # DB SQL...
    local db=$1
    shift
    pg_as_owner psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d "$db" -At -c "$*"
}

pg_test_psql() { pg_test_psql_db mail "$@"; }

# Connections open to database "mail" by application `saslgated` right now.
pg_test_connections() {
    pg_test_psql "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mail' AND application_name = 'saslgated'"
}

pg_test_cleanup() {
    pg_test_stop
    [ -n "$PG_DIR" ] && [ "${SASLGATE_E2E_KEEP:-0}" != 1 ] && rm -rf "$PG_DIR"
    return 0
}
