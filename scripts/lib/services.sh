#!/usr/bin/env bash
# Finds or starts the PostgreSQL and Redis that switchyard needs, for
# scripts/run and scripts/test. Sourced, not executed.
#
# Reuses servers already answering on the default local ports; otherwise
# installs the distribution's packages when missing (sudo only when not
# root) and starts private instances whose data lives in "$REPO/.data"
# (git-ignored). It never modifies data it did not create.
#
# Exports: SY_PG_ADMIN_URL (a role that may CREATE DATABASE, on database
# "postgres") and SY_REDIS_URL.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="$REPO/.data"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "cannot install $*: no apt-get; install it with your package manager"
  say "installing $* from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d-less containers may fail to auto-start services; that is fine.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (stable) from https://rustup.rs, then rerun"
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (once)"
    cargo install cargo-nextest --locked
  fi
}

# --- PostgreSQL ---------------------------------------------------------

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/$1" ]; then echo "$dir/$1"; return; fi
  command -v "$1" 2>/dev/null || true
}

# Prints a working admin URL for a server on $1, or nothing.
pg_probe() {
  local port="$1" user
  command -v psql >/dev/null 2>&1 || return 0
  for user in postgres root "${USER:-$(id -un)}" switchyard; do
    if psql "postgres://$user@127.0.0.1:$port/postgres" -tAc 'select 1' >/dev/null 2>&1; then
      echo "postgres://$user@127.0.0.1:$port/postgres"; return 0
    fi
  done
}

# Runs a PostgreSQL server binary as a user it accepts (never root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_private_postgres() {
  local port="${SY_PRIVATE_PG_PORT:-55432}" dir="$DATA_DIR/postgres" initdb pg_ctl url
  url="$(pg_probe "$port")"
  if [ -n "$url" ]; then SY_PG_ADMIN_URL="$url"; say "PostgreSQL: reusing the private instance on port $port"; return; fi
  initdb="$(pg_bin initdb)"; pg_ctl="$(pg_bin pg_ctl)"
  if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
    apt_install postgresql postgresql-client
    url="$(pg_probe "${SY_PG_PORT:-5432}")"
    if [ -n "$url" ]; then SY_PG_ADMIN_URL="$url"; say "PostgreSQL: using the newly installed server on port ${SY_PG_PORT:-5432}"; return; fi
    initdb="$(pg_bin initdb)"; pg_ctl="$(pg_bin pg_ctl)"
    [ -n "$initdb" ] || die "PostgreSQL was installed but initdb is not found"
  fi
  mkdir -p "$DATA_DIR"
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "PostgreSQL: creating a private instance in $dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    pg_as_owner "$initdb" -D "$dir" -U switchyard --auth=trust -E UTF8 >/dev/null
  fi
  if ! pg_as_owner "$pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    say "PostgreSQL: starting the private instance on 127.0.0.1:$port"
    pg_as_owner "$pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null \
      || die "the private PostgreSQL did not start; see $dir/server.log"
  fi
  url="postgres://switchyard@127.0.0.1:$port/postgres"
  psql "$url" -tAc 'select 1' >/dev/null 2>&1 || die "the private PostgreSQL on port $port does not answer"
  SY_PG_ADMIN_URL="$url"
}

ensure_postgres() {
  if [ -n "${SY_PG_ADMIN_URL:-}" ]; then say "PostgreSQL: using SY_PG_ADMIN_URL"; return; fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  local url
  url="$(pg_probe "${SY_PG_PORT:-5432}")"
  if [ -n "$url" ]; then
    SY_PG_ADMIN_URL="$url"
    say "PostgreSQL: reusing the server on 127.0.0.1:${SY_PG_PORT:-5432}"
  else
    start_private_postgres
  fi
  export SY_PG_ADMIN_URL
}

# --- Redis --------------------------------------------------------------

redis_ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
  else
    port_open "$1"
  fi
}

ensure_redis() {
  local port="${SY_REDIS_PORT:-6379}" private="${SY_PRIVATE_REDIS_PORT:-56379}" dir="$DATA_DIR/redis"
  if redis_ping "$port"; then
    SY_REDIS_URL="redis://127.0.0.1:$port"
    say "Redis: reusing the server on 127.0.0.1:$port"
  elif redis_ping "$private"; then
    SY_REDIS_URL="redis://127.0.0.1:$private"
    say "Redis: reusing the private instance on port $private"
  else
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    if redis_ping "$port"; then
      SY_REDIS_URL="redis://127.0.0.1:$port"
    else
      mkdir -p "$dir"
      say "Redis: starting a private instance on 127.0.0.1:$private (data in $dir)"
      redis-server --port "$private" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --save "" --appendonly yes --maxmemory-policy noeviction >/dev/null
      for _ in $(seq 1 100); do redis_ping "$private" && break; sleep 0.1; done
      redis_ping "$private" || die "the private Redis did not start; see $dir/redis.log"
      SY_REDIS_URL="redis://127.0.0.1:$private"
    fi
  fi
  export SY_REDIS_URL
}

ensure_services() {
  ensure_postgres
  ensure_redis
}
