# shellcheck shell=bash
# Shared by ops/up, ops/test and ops/bench/*: make sure the machine has what PolicyCortex
# needs — a Rust toolchain, PostgreSQL, NATS with JetStream and a Redis-protocol server —
# installing Debian packages and starting services only where they are missing.
# Everything listens on 127.0.0.1 only.

set -euo pipefail

PG_PASSWORD=${CORTEX_PG_PASSWORD:-postgres}
export CORTEX_TEST_DATABASE_URL=${CORTEX_TEST_DATABASE_URL:-postgres://postgres:${PG_PASSWORD}@127.0.0.1:5432/postgres}

log() { printf '[ops] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; return 1
    fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 what=$2
    for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
    log "$what did not start listening on 127.0.0.1:$port"; return 1
}

ensure_rust() {
    if ! command -v cargo >/dev/null; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || { log "cargo not found: install Rust >= 1.85 (rustup)"; return 1; }
    cargo fmt --version >/dev/null 2>&1 || { log "rustfmt missing: rustup component add rustfmt"; return 1; }
    cargo clippy --version >/dev/null 2>&1 || { log "clippy missing: rustup component add clippy"; return 1; }
    command -v cc >/dev/null || apt_install build-essential
}

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql postgresql-contrib; fi
    command -v pgbench >/dev/null || apt_install postgresql-contrib
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n1)
        log "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
        pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL did not start"; return 1; }
    fi
    # A fresh Debian install wants a password over TCP; give the superuser a known one
    # (a trust set-up ignores it). Uses the local socket as the postgres OS user.
    if ! PGPASSWORD=$PG_PASSWORD psql "$CORTEX_TEST_DATABASE_URL" -qtAc 'select 1' >/dev/null 2>&1; then
        log "setting the postgres user's password for TCP connections"
        as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD '${PG_PASSWORD}'" >/dev/null
    fi
    PGPASSWORD=$PG_PASSWORD psql "$CORTEX_TEST_DATABASE_URL" -qtAc 'select 1' >/dev/null
}

ensure_redis() {
    # Installed even when a server already listens: the query tests start their own.
    command -v redis-server >/dev/null || apt_install redis-server
    if port_open 6379; then return 0; fi
    log "starting redis-server"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/cortex.log
    wait_for_port 6379 redis-server
}

ensure_nats() {
    # Installed even when a server already listens: the query tests start their own.
    [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || apt_install nats-server
    if port_open 4222; then return 0; fi
    local bin
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    log "starting nats-server with JetStream"
    as_root mkdir -p /var/lib/nats-server
    as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for_port 4222 nats-server
}

ensure_services() {
    ensure_postgres
    ensure_redis
    ensure_nats
    command -v python3 >/dev/null || apt_install python3
}
