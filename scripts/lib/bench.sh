# Helpers of the benchmark scripts (bench-ratelimit, bench-cpu, bench-events,
# bench-activity): a release server of their own, started on its own port
# with its own database and Redis key prefix, and the summary of a
# switchyard-bench JSON report. Sourced after lib/services.sh and
# `ensure_services`, not executed.
#
# Sets: redis_host, redis_port (from SY_REDIS_URL); server (the pid of the
# running bench server, empty when none).

redis_host="$(printf '%s' "$SY_REDIS_URL" | sed -E 's#^redis://([^:/]+).*#\1#')"
redis_port="$(printf '%s' "$SY_REDIS_URL" | sed -E 's#^redis://[^:/]+:?([0-9]*).*#\1#')"
redis_port="${redis_port:-6379}"
server=""

rcli() { redis-cli -h "$redis_host" -p "$redis_port" "$@"; }

secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# Secrets shared by every server a script starts (API keys made by one
# server stay valid for the next).
bench_jwt="$(secret)" bench_pepper="$(secret)" bench_webhook="$(secret)"

# User + system CPU time of process $1 so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# "pid ticks" of every PostgreSQL server process (backends included).
pg_ticks() {
  local pid
  for pid in $(pgrep -x postgres); do
    [ -r "/proc/$pid/stat" ] && printf '%s %s\n' "$pid" "$(cpu_ticks "$pid" 2>/dev/null || echo 0)"
  done
  return 0
}

# Deletes every Redis key under prefix $1.
drop_redis_prefix() {
  rcli --scan --pattern "$1*" | xargs -r -n 500 redis-cli -h "$redis_host" -p "$redis_port" del >/dev/null
}

# bench_settings PORT DATABASE_URL PREFIX
# Sets bench_vars, the environment of a bench server (its port, database,
# key prefix and the shared secrets), for `env "${bench_vars[@]}" ...`:
# `serve`, `worker` and `admin` take the same.
bench_settings() {
  bench_vars=(SWITCHYARD_ENV=dev HOST=127.0.0.1 PORT="$1" DATABASE_URL="$2" REDIS_URL="$SY_REDIS_URL"
    REDIS_KEY_PREFIX="$3" JWT_SECRET="$bench_jwt" API_KEY_PEPPER="$bench_pepper"
    WEBHOOK_SECRET="$bench_webhook" RUST_LOG=warn)
}

# start_server LOG PORT DATABASE_URL PREFIX [VAR=VALUE...] COMMAND...
# Starts `COMMAND... serve` (the switchyard binary, possibly behind a
# wrapper such as valgrind) in the background with the given extra
# environment, sets $server and waits until /ready answers (dies, showing
# the log, if the server exits first).
start_server() {
  local log="$1" port="$2" db_url="$3" prefix="$4"
  shift 4
  # Another server on the port would answer /ready in this one's place.
  port_open "$port" && die "port $port is in use; set BENCH_PORT to a free one"
  bench_settings "$port" "$db_url" "$prefix"
  env "${bench_vars[@]}" "$@" serve >"$log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
    kill -0 "$server" 2>/dev/null || { cat "$log"; die "the server ($*) exited"; }
    sleep 0.2
  done
  cat "$log"
  die "the server ($*) did not get ready in 2 minutes"
}

# Stops the server (SIGTERM: it drains and flushes) and waits for it.
stop_server() {
  [ -n "$server" ] || return 0
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

# Prints "throughput p50 p99 errors" of a switchyard-bench --json report.
bench_summary() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['throughput_rps']:.0f} {r['latency_ms']['p50']:.3f} {r['latency_ms']['p99']:.3f} {r['errors']}")
PY
}
