#!/usr/bin/env bash
# PostgreSQL for the tests of the PostgreSQL backend (tests/conformance_postgres.rs,
# tests/postgres.rs, benches/postgres.rs).
#
#   bash .ci/services/postgres.sh start   # prints `export VAR=...` lines on stdout
#   bash .ci/services/postgres.sh stop    # stops the server, removes its data; idempotent
#
# `start` installs PostgreSQL if it is missing (Debian package), then runs a throwaway server
# as the `postgres` user: a fresh data directory under $TOKENVAULT_POSTGRES_BASE (default
# /tmp/tokenvault-ci-postgres), listening on 127.0.0.1 only, on the first free port from 55432,
# with a role `tv` (random password) owning a database `tokenvault`. TLS is on too, with a
# throwaway CA and a server certificate for localhost / 127.0.0.1, so the tests can check a
# verified TLS connection. Logs go to stderr (server log: $BASE/server.log). Exports:
#   TOKENVAULT_TEST_POSTGRES          postgres://tv:PASS@127.0.0.1:PORT/tokenvault?sslmode=disable
#   TOKENVAULT_TEST_POSTGRES_TLS      postgres://tv:PASS@localhost:PORT/tokenvault?sslrootcert=CA
#   TOKENVAULT_TEST_POSTGRES_CA       the throwaway CA certificate (PEM)
#   TOKENVAULT_TEST_POSTGRES_DATADIR  the data directory
#   TOKENVAULT_TEST_POSTGRES_CTL      a pg_ctl command line for this server; append e.g.
#                                     `-w -m fast restart` (run it with `sh -c`)
set -euo pipefail

BASE=${TOKENVAULT_POSTGRES_BASE:-/tmp/tokenvault-ci-postgres}
DATA=$BASE/data
FIRST_PORT=55432

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

as_postgres() {
    if [[ $(id -un) == postgres ]]; then
        "$@"
    else
        runuser -u postgres -- "$@"
    fi
}

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/pg_ctl && -x $dir/initdb ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

install_if_missing() {
    if find_bindir >/dev/null && command -v openssl >/dev/null; then
        return 0
    fi
    log "PostgreSQL not found: installing the Debian package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql openssl >&2
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop() {
    local bindir
    if [[ -f $DATA/postmaster.pid ]] && bindir=$(find_bindir); then
        log "stopping the server in $DATA"
        as_postgres "$bindir/pg_ctl" -D "$DATA" -w -m fast stop >&2 || log "warning: pg_ctl stop failed"
    fi
    rm -rf "$BASE"
}

start() {
    install_if_missing
    local bindir port password ca
    bindir=$(find_bindir) || {
        log "no pg_ctl/initdb under /usr/lib/postgresql/*/bin"
        exit 1
    }
    stop # a fresh server every time
    mkdir -p "$BASE"
    chown postgres: "$BASE"
    chmod 755 "$BASE" # the CA certificate is read by the tests; data/ itself is 0700

    port=$FIRST_PORT
    while ! port_free "$port"; do
        port=$((port + 1))
        if ((port > FIRST_PORT + 100)); then
            log "no free port in $FIRST_PORT..$((FIRST_PORT + 100))"
            exit 1
        fi
    done
    password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

    log "initdb in $DATA ($("$bindir/postgres" --version))"
    printf '%s\n' "$password" >"$BASE/pwfile"
    chown postgres: "$BASE/pwfile"
    as_postgres "$bindir/initdb" -D "$DATA" -U postgres --auth-local=peer \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2

    # A throwaway CA and a server certificate it signs, for localhost and 127.0.0.1.
    ca=$BASE/ca.crt
    (
        cd "$BASE"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tokenvault test CA" \
            -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$DATA/server.key" -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out "$DATA/server.crt" 2>/dev/null
        rm -f ca.key server.csr server.ext ca.srl
    )
    chown postgres: "$DATA/server.key" "$DATA/server.crt"
    chmod 600 "$DATA/server.key"
    chmod 644 "$ca"

    cat >>"$DATA/postgresql.conf" <<EOF
# tokenvault CI
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$BASE'
max_connections = 200
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
    log "starting on 127.0.0.1:$port"
    as_postgres "$bindir/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 start >&2 || {
        log "server failed to start; its log:"
        cat "$BASE/server.log" >&2 || true
        exit 1
    }
    as_postgres "$bindir/psql" -h "$BASE" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -v pw="$password" >&2 <<'EOF'
CREATE ROLE tv LOGIN PASSWORD :'pw';
CREATE DATABASE tokenvault OWNER tv;
EOF
    rm -f "$BASE/pwfile"

    local plain tls ctl
    plain="postgres://tv:$password@127.0.0.1:$port/tokenvault?sslmode=disable"
    tls="postgres://tv:$password@localhost:$port/tokenvault?sslrootcert=$ca"
    ctl="runuser -u postgres -- $bindir/pg_ctl -D $DATA -l $BASE/server.log"
    if [[ $(id -un) == postgres ]]; then
        ctl="$bindir/pg_ctl -D $DATA -l $BASE/server.log"
    fi
    printf 'export TOKENVAULT_TEST_POSTGRES=%q\n' "$plain"
    printf 'export TOKENVAULT_TEST_POSTGRES_TLS=%q\n' "$tls"
    printf 'export TOKENVAULT_TEST_POSTGRES_CA=%q\n' "$ca"
    printf 'export TOKENVAULT_TEST_POSTGRES_DATADIR=%q\n' "$DATA"
    printf 'export TOKENVAULT_TEST_POSTGRES_CTL=%q\n' "$ctl"
    log "ready"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
