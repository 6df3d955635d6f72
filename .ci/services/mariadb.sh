#!/usr/bin/env bash
# A throwaway MariaDB server for the MySQL backend's tests (tests/conformance_mysql.rs,
# tests/mysql.rs, benches/mysql.rs).
#
#   bash .ci/services/mariadb.sh start     install if needed, start, print `export` lines
#   bash .ci/services/mariadb.sh restart   SIGKILL the server, stay down ~1 s, start it again
#                                          on the same data (the tests' server-restart case)
#   bash .ci/services/mariadb.sh stop      shut it down and delete its data (idempotent)
#
# `start` never uses the system service: it makes a fresh data directory in a temporary
# directory, runs `mariadbd --no-defaults` on 127.0.0.1 and a free port (33306 upwards) with
# its own socket, pid file and a TLS certificate from a throwaway CA, creates the database
# `tokenvault` and a user `tv` with a random password, and prints on stdout (everything else
# goes to stderr):
#
#   TOKENVAULT_TEST_MYSQL          mysql://tv:PASS@127.0.0.1:PORT/tokenvault?ssl_mode=disabled
#   TOKENVAULT_TEST_MYSQL_TLS      mysql://tvtls:PASS@127.0.0.1:PORT/tokenvault?root_cert_path=DIR/ca.pem
#                                  user tvtls is REQUIRE SSL; the certificate names 127.0.0.1
#                                  (IP only) and chains to the throwaway CA DIR/ca.pem
#   TOKENVAULT_TEST_MYSQL_RESTART  the command that restarts the server (`… restart`)
#
# `tv` has every privilege on `tokenvault`, on the databases named `t_…` (tests and benches
# make one per store) and on `zohooauth` (the Zoho DBStore import test), and nothing else;
# `tvtls` (same password) the same but `zohooauth`, and only over TLS.
# Where the state lives: $TOKENVAULT_MARIADB_STATE (default ${TMPDIR:-/tmp}/tokenvault-ci-mariadb.state)
# holds the path of the temporary directory.
set -euo pipefail

STATE_FILE=${TOKENVAULT_MARIADB_STATE:-${TMPDIR:-/tmp}/tokenvault-ci-mariadb.state}
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
READY_TIMEOUT=60

log() { printf 'mariadb: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# Debian puts the server in /usr/sbin, which a non-login shell may not have on PATH.
export PATH="$PATH:/usr/sbin:/sbin"

install_packages() {
    local wanted=()
    if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1; then
        wanted+=(mariadb-server)
    fi
    command -v mariadb >/dev/null 2>&1 || wanted+=(mariadb-client)
    command -v openssl >/dev/null 2>&1 || wanted+=(openssl)
    if ((${#wanted[@]} == 0)); then
        log "packages present: $(mariadbd --version 2>/dev/null | head -n1)"
        return 0
    fi
    log "installing: ${wanted[*]}"
    # Keep the package's maintainer scripts from starting the system service (101 = action
    # forbidden), unless the machine already has a policy of its own.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local status=0
    {
        as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${wanted[@]}"
    } >&2 || status=$?
    if ((own_policy)); then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    ((status == 0)) || die "apt-get install failed (exit $status)"
    log "installed: $(mariadbd --version | head -n1)"
}

port_in_use() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port
    for port in $(seq 33306 33406); do
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free port in 33306..33406"
}

# A CA and a server certificate for the IP address 127.0.0.1 only (ECDSA P-256, valid 2 days):
# a client that checks the name must connect to 127.0.0.1, not localhost.
make_certs() {
    local dir=$1
    openssl req -x509 -new -nodes -days 2 -subj "/CN=tokenvault CI throwaway CA" \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -nodes -subj "/CN=127.0.0.1" \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/server-key.pem" -out "$dir/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1" >"$dir/server.ext"
    openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl" "$dir/ca-key.pem"
}

# The directory of the running server, from the state file (empty if there is none).
state_dir() {
    if [[ -f "$STATE_FILE" ]]; then cat "$STATE_FILE"; fi
}

server_pid() {
    local dir=$1
    if [[ -f "$dir/mariadbd.pid" ]]; then cat "$dir/mariadbd.pid" 2>/dev/null || true; fi
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# Starts the server described by $dir/env in the background and waits until it answers.
launch() {
    local dir=$1
    local PORT RUN_AS # set by $dir/env
    # shellcheck source=/dev/null
    source "$dir/env"
    rm -f "$dir/mariadbd.pid"
    # setsid + every stream redirected: the server must not hold the caller's stdout (the
    # `$(… start)` in .ci/run would wait for it) nor die with the caller's process group.
    setsid mariadbd --no-defaults \
        --datadir="$dir/data" --socket="$dir/mariadbd.sock" --pid-file="$dir/mariadbd.pid" \
        --port="$PORT" --bind-address=127.0.0.1 --user="$RUN_AS" \
        --log-error="$dir/error.log" --skip-name-resolve \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --max-connections=400 --innodb-buffer-pool-size=256M \
        --ssl-ca="$dir/ca.pem" --ssl-cert="$dir/server.pem" --ssl-key="$dir/server-key.pem" \
        </dev/null >>"$dir/mariadbd.out" 2>&1 &
    local launched=$! waited=0
    until mariadb-admin --no-defaults --socket="$dir/mariadbd.sock" -uroot ping >/dev/null 2>&1; do
        if ! alive "$launched"; then
            tail -n 30 "$dir/error.log" >&2 || true
            die "mariadbd exited during startup (log above)"
        fi
        if ((waited >= READY_TIMEOUT * 5)); then
            tail -n 30 "$dir/error.log" >&2 || true
            die "mariadbd not ready after ${READY_TIMEOUT}s"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    log "ready on 127.0.0.1:$PORT after $((waited / 5)).$((waited % 5 * 2))s (pid $(server_pid "$dir"))"
}

sql() {
    local dir=$1
    shift
    mariadb --no-defaults --socket="$dir/mariadbd.sock" -uroot --batch --skip-column-names "$@"
}

start() {
    if [[ -n "$(state_dir)" ]]; then
        log "a previous server is still registered: stopping it first"
        stop
    fi
    install_packages
    local dir port password run_as
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tokenvault-mariadb.XXXXXX")
    echo "$dir" >"$STATE_FILE"
    port=$(free_port)
    password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    # mariadbd refuses to run as root without --user=root; the package's `mysql` user is used
    # when it exists.
    if id mysql >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
        run_as=mysql
    else
        run_as=$(id -un)
    fi
    make_certs "$dir"
    printf 'PORT=%q\nRUN_AS=%q\n' "$port" "$run_as" >"$dir/env"
    mkdir "$dir/data"
    if [[ $run_as != "$(id -un)" ]]; then
        chown -R "$run_as" "$dir"
        chmod 755 "$dir"
    fi
    log "initialising a data directory in $dir/data (running as $run_as)"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$run_as" \
        --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
        {
            cat "$dir/install.log" >&2
            die "mariadb-install-db failed"
        }
    launch "$dir"
    sql "$dir" <<SQL
CREATE DATABASE IF NOT EXISTS \`tokenvault\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'tv'@'%' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`tokenvault\`.* TO 'tv'@'%';
GRANT ALL PRIVILEGES ON \`t\\_%\`.* TO 'tv'@'%';
GRANT ALL PRIVILEGES ON \`zohooauth\`.* TO 'tv'@'%';
CREATE USER 'tvtls'@'%' IDENTIFIED BY '$password' REQUIRE SSL;
GRANT ALL PRIVILEGES ON \`tokenvault\`.* TO 'tvtls'@'%';
GRANT ALL PRIVILEGES ON \`t\\_%\`.* TO 'tvtls'@'%';
SQL
    log "database tokenvault, users tv and tvtls (REQUIRE SSL) created"
    printf 'export TOKENVAULT_TEST_MYSQL=%q\n' \
        "mysql://tv:$password@127.0.0.1:$port/tokenvault?ssl_mode=disabled"
    printf 'export TOKENVAULT_TEST_MYSQL_TLS=%q\n' \
        "mysql://tvtls:$password@127.0.0.1:$port/tokenvault?root_cert_path=$dir/ca.pem"
    printf 'export TOKENVAULT_TEST_MYSQL_RESTART=%q\n' "bash $SCRIPT_PATH restart"
}

# Waits up to $2 seconds for process $1 to exit.
wait_exit() {
    local pid=$1 limit=$(($2 * 10)) i=0
    while alive "$pid" && ((i < limit)); do
        sleep 0.1
        i=$((i + 1))
    done
    ! alive "$pid"
}

restart() {
    local dir pid down=${1:-1}
    dir=$(state_dir)
    [[ -n "$dir" && -d "$dir" ]] || die "no server to restart (start it first)"
    pid=$(server_pid "$dir")
    alive "$pid" || die "the server is not running"
    log "SIGKILL to mariadbd (pid $pid), down for ${down}s"
    kill -KILL "$pid"
    wait_exit "$pid" 10 || die "mariadbd (pid $pid) did not die"
    sleep "$down"
    launch "$dir"
}

stop() {
    local dir pid
    dir=$(state_dir)
    if [[ -z "$dir" ]]; then
        log "nothing to stop"
        return 0
    fi
    if [[ -d "$dir" ]]; then
        pid=$(server_pid "$dir")
        if alive "$pid"; then
            log "shutting down mariadbd (pid $pid)"
            mariadb-admin --no-defaults --socket="$dir/mariadbd.sock" -uroot shutdown \
                >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
            if ! wait_exit "$pid" 30; then
                log "still running after 30s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                wait_exit "$pid" 10 || true
            fi
        fi
        rm -rf "$dir"
    fi
    rm -f "$STATE_FILE"
    log "stopped; removed $dir"
}

case "${1:-}" in
start) start ;;
restart) restart "${2:-1}" ;;
stop) stop ;;
*)
    echo "usage: $0 start|restart [SECONDS_DOWN]|stop" >&2
    exit 2
    ;;
esac
