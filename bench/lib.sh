# Shared by the benchmark scripts (sourced, not run): paths, the settings
# the server runs with while benchmarked, the release build, and starting
# and stopping a server on a free loopback port. Set LOG_TAG before sourcing.
#
# The server runs with limits raised for benchmarking (see BENCHMARKS.md):
#   CONFAB_PUSH_BURST / CONFAB_PUSH_REFILL_PER_SEC   per-socket push rate limit
#                                                   (default 50 burst, 20/s)
#   CONFAB_MAX_SOCKETS_PER_USER                     default 20
#   CONFAB_ARGON2_MEMORY_KIB / _ITERATIONS          cheap password hashing for
#                                                   the set-up registrations only
# Override any of them in the environment.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$ROOT/bench/out}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
SERVER="${SERVER:-$ROOT/target/release/confab}"
LOADGEN="$ROOT/target/release/confab-load"

export CONFAB_PUSH_BURST="${CONFAB_PUSH_BURST:-1000000}"
export CONFAB_PUSH_REFILL_PER_SEC="${CONFAB_PUSH_REFILL_PER_SEC:-1000000}"
export CONFAB_MAX_SOCKETS_PER_USER="${CONFAB_MAX_SOCKETS_PER_USER:-100000}"
export CONFAB_ARGON2_MEMORY_KIB="${CONFAB_ARGON2_MEMORY_KIB:-8192}"
export CONFAB_ARGON2_ITERATIONS="${CONFAB_ARGON2_ITERATIONS:-1}"
export CONFAB_LOG_LEVEL="${CONFAB_LOG_LEVEL:-warn}"

log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --bins)
fi
mkdir -p "$OUT_DIR"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $(( 20000 + RANDOM % 20000 ))
}

# BENCH_POSTGRES=1: the store is a private PostgreSQL (bench/postgres.sh).
stop_database() { :; }
if [[ "${BENCH_POSTGRES:-0}" == 1 ]]; then
  source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"
  stop_database() { pg_stop; }
  pg_start
fi

SERVER_PID=""
DATA_DIR=""
OWN_DATA=0
PORT=""

# start_server LOG_FILE [DATA_DIR]: a fresh data directory (removed again by
# stop_server) unless one is given (kept).
start_server() {
  local log_file="$1"
  if [[ -n "${2:-}" ]]; then
    DATA_DIR="$2"; OWN_DATA=0
  else
    DATA_DIR="$(mktemp -d -t confab-bench.XXXXXX)"; OWN_DATA=1
  fi
  PORT="${BENCH_PORT:-$(free_port)}"
  if [[ "${BENCH_POSTGRES:-0}" == 1 && "$OWN_DATA" == 1 ]]; then
    pg_fresh_database
  fi
  "$SERVER" --data "$DATA_DIR" --listen "127.0.0.1:$PORT" >>"$log_file" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 200); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      log "server pid $SERVER_PID ready on port $PORT (data $DATA_DIR)"
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited during start-up; see $log_file"
      return 1
    fi
    sleep 0.05
  done
  log "server not ready after 10 s"
  return 1
}

stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server $SERVER_PID did not stop within 10 s of SIGTERM; killing it"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  if [[ -n "$DATA_DIR" && "$OWN_DATA" == 1 ]]; then
    rm -rf "$DATA_DIR"
  fi
  DATA_DIR=""
}
