#!/usr/bin/env bash
# Benchmarks confab with target/release/confab-load.
#
#   bench/run.sh                      # every scenario
#   bench/run.sh publish fanout       # only these
#   QUICK=1 bench/run.sh              # 5 s windows instead of 20 s (smoke test)
#
# Scenarios: publish (C = 1, 8, 64, then 64 with PUBLISH_INFLIGHT pushes
# outstanding each, then 64 at PUBLISH_RATE msg/s in all), fanout (1,000
# subscribers at FANOUT_RATES msg/s), fanout10k (10,000 subscribers), rtt,
# connect (19,000 sockets in rooms of 100), storm (reconnect storm, 10,000
# clients).
#
# For each scenario the script starts a fresh server (new data directory
# from mktemp -d, free loopback port, raised open-files limit), registers
# the load generator's users, runs confab-load with --server-pid so the
# server's CPU and RSS (from /proc) are recorded next to the generator's,
# stops the server, and writes the generator's final JSON line to
# bench/out/<date>-<scenario>.json (a scenario with several runs, such as
# publish, writes one line per run). The human summaries go to the terminal
# and bench/out/<date>-<scenario>.log with the server's log.
#
# The server runs with the benchmarking settings of bench/lib.sh (push rate
# limit and sockets per user raised, cheap password hashing for set-up);
# every other setting is the default and can be set as CONFAB_* here.
#
# Other knobs: LOADGEN_ARGS (extra confab-load options for every run, e.g.
# --deflate with CONFAB_WEBSOCKET_COMPRESSION=true), LOADGEN_THREADS (default 1), BENCH_PORT (default: a free
# port), SKIP_BUILD=1, SERVER (the server binary, default target/release/confab; e.g. an older build to compare), OUT_DIR (default bench/out), DURATION / WARMUP,
# CONNECT_SOCKETS (19000), FANOUT_SUBS (1000), FANOUT_RATES ("100 300"),
# FANOUT10K_SUBS (10000), FANOUT10K_RATE (50), PUBLISH_INFLIGHT (16),
# PUBLISH_RATE (10000),
# BENCH_POSTGRES=1 (store in a private PostgreSQL started for the run, a
# fresh database per server; its CPU is logged per run; see bench/postgres.sh),
# STORM_CLIENTS (10000), STORM_ROOMS (1), STORM_DRAIN (60s: the longest the
# storm waits, once publishing stops, for clients to catch up; a client still
# behind then counts its missing messages as gaps).

set -euo pipefail

LOG_TAG=bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

QUICK="${QUICK:-0}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
ALL_SCENARIOS=(publish fanout fanout10k rtt connect storm)

# QUICK=1 shortens the runs; the sizes stay the same. Sizes can be
# overridden (CONNECT_SOCKETS, FANOUT_SUBS, STORM_CLIENTS); keep sockets well
# under the open-files hard limit (each socket is one file in the server
# and one in the generator).
if [[ "$QUICK" == 1 ]]; then
  DURATION="${DURATION:-5s}"; WARMUP="${WARMUP:-1s}"
else
  DURATION="${DURATION:-20s}"; WARMUP="${WARMUP:-3s}"
fi
CONNECT_SOCKETS="${CONNECT_SOCKETS:-19000}"
FANOUT_SUBS="${FANOUT_SUBS:-1000}"
FANOUT_RATES="${FANOUT_RATES:-100 300}"
FANOUT10K_SUBS="${FANOUT10K_SUBS:-10000}"
FANOUT10K_RATE="${FANOUT10K_RATE:-50}"
PUBLISH_INFLIGHT="${PUBLISH_INFLIGHT:-16}"
PUBLISH_RATE="${PUBLISH_RATE:-10000}"
STORM_CLIENTS="${STORM_CLIENTS:-10000}"
STORM_ROOMS="${STORM_ROOMS:-1}"
STORM_DRAIN="${STORM_DRAIN:-60s}"

# --- set-up -------------------------------------------------------------------

# Each socket costs one file in both processes; the hard limit caps both.
ulimit -n "$(ulimit -Hn)"
FILES="$(ulimit -n)"
log "open files limit: $FILES; $(nproc) cores; $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
if (( CONNECT_SOCKETS + 200 > FILES )); then
  CONNECT_SOCKETS=$(( FILES - 500 ))
  log "connect scenario reduced to $CONNECT_SOCKETS sockets by the open-files limit"
fi

trap 'stop_server; stop_database' EXIT INT TERM

# loadgen SCENARIO MODE ARGS...: runs confab-load against the current
# server; appends its final JSON line to the scenario's .json file.
loadgen() {
  local scenario="$1"; shift
  local json_file="$OUT_DIR/$STAMP-$scenario.json"
  local log_file="$OUT_DIR/$STAMP-$scenario.log"
  local args=("$@" --url "ws://127.0.0.1:$PORT/socket/websocket"
    --server-pid "$SERVER_PID" --threads "$LOADGEN_THREADS"
    --register-prefix loadgen --users 4 --create-rooms)
  # LOADGEN_ARGS: extra options for every run, e.g. --deflate.
  # shellcheck disable=SC2206
  args+=(${LOADGEN_ARGS:-})
  log "confab-load ${args[*]}"
  echo "\$ confab-load ${args[*]}" >>"$log_file"
  local out status=0 db_cpu_before=""
  [[ -n "${PG_DIR:-}" ]] && db_cpu_before="$(pg_cpu_seconds)"
  out="$("$LOADGEN" "${args[@]}" 2>>"$log_file")" || status=$?
  if [[ -n "$db_cpu_before" ]]; then
    # PostgreSQL shares the box: its CPU over the run (warm-up included).
    local db_cpu
    db_cpu="$(python3 -c "print(round($(pg_cpu_seconds) - $db_cpu_before, 2))")"
    log "PostgreSQL CPU during the run: ${db_cpu} s"
    echo "postgres_cpu_seconds $db_cpu" >>"$log_file"
  fi
  printf '%s\n' "$out" | tee -a "$log_file" | sed '$d' >&2
  printf '%s\n' "$out" | tail -n 1 >>"$json_file"
  if (( status != 0 )); then
    log "confab-load exited with status $status (see $log_file)"
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "SERVER DIED during $scenario (see $log_file)"
    SERVER_PID=""
  fi
  return 0
}

# scenario NAME MODE ARGS...: one confab-load run against a fresh server.
scenario() {
  local name="$1"; shift
  local log_file="$OUT_DIR/$STAMP-$name.log"
  log "=== $name: $1 ==="
  start_server "$log_file" || { stop_server; return 0; }
  loadgen "$name" "$@"
  stop_server
}

# --- scenarios ----------------------------------------------------------------

run_publish() {
  local c
  for c in 1 8 64; do
    # One topic per publisher: measures durable writes, not fan-out.
    scenario publish publish --concurrency "$c" \
      --topic-pattern 'room:pub-{i}' --rooms "$c" \
      --duration "$DURATION" --warmup "$WARMUP" --label "publish-c$c"
  done
  # The same 64 publishers, each keeping PUBLISH_INFLIGHT pushes outstanding.
  scenario publish publish --concurrency 64 --inflight "$PUBLISH_INFLIGHT" \
    --topic-pattern 'room:pub-{i}' --rooms 64 \
    --duration "$DURATION" --warmup "$WARMUP" --label "publish-c64-inflight$PUBLISH_INFLIGHT"
  # Ack latency at a steady PUBLISH_RATE msg/s in all (64 publishers,
  # up to 8 pushes in flight each so a slow ack does not hold the schedule).
  local paced=64
  scenario publish publish --concurrency "$paced" --inflight 8 \
    --rate "$(awk -v r="$PUBLISH_RATE" -v c="$paced" 'BEGIN { print r / c }')" \
    --topic-pattern 'room:pub-{i}' --rooms "$paced" \
    --duration "$DURATION" --warmup "$WARMUP" --label "publish-c64-rate$PUBLISH_RATE"
}

run_fanout() {
  # --rate is messages/s per publisher; deliveries/s = rate x subscribers.
  local rate
  for rate in $FANOUT_RATES; do
    scenario fanout fanout --subscribers "$FANOUT_SUBS" --publishers 1 \
      --rate "$rate" --topic room:fanout --duration "$DURATION" --warmup "$WARMUP" \
      --label "fanout-$FANOUT_SUBS-r$rate"
  done
}

run_fanout10k() {
  scenario fanout10k fanout --subscribers "$FANOUT10K_SUBS" --publishers 1 \
    --rate "$FANOUT10K_RATE" --topic room:fanout --duration "$DURATION" --warmup "$WARMUP" \
    --label "fanout-$FANOUT10K_SUBS-r$FANOUT10K_RATE"
}

run_rtt() {
  scenario rtt rtt --concurrency 1 --duration "$DURATION" --warmup "$WARMUP" \
    --label rtt-heartbeat
}

run_connect() {
  local rooms=$(( CONNECT_SOCKETS / 100 ))
  scenario connect connect --sockets "$CONNECT_SOCKETS" --topics-per-socket 1 \
    --topic-pattern 'room:conn-{i}' --rooms "$rooms" --heartbeat-interval 5s \
    --duration "$DURATION" --warmup "$WARMUP" --label "connect-$CONNECT_SOCKETS"
}

run_storm() {
  # Every client reconnects at the same moment (as browsers whose first
  # retry comes after 10 ms would): no cap on handshakes in flight.
  # STORM_ROOMS > 1 spreads the clients over that many rooms.
  local where=(--topic room:storm)
  if (( STORM_ROOMS > 1 )); then
    where=(--topic-pattern 'room:storm-{i}' --rooms "$STORM_ROOMS")
  fi
  scenario storm reconnect-storm --clients "$STORM_CLIENTS" --rate 50 \
    "${where[@]}" --warmup "$WARMUP" --duration "$DURATION" --drain "$STORM_DRAIN" \
    --connect-concurrency "$STORM_CLIENTS" --label "storm-$STORM_CLIENTS-rooms$STORM_ROOMS"
}

scenarios=("$@")
if (( ${#scenarios[@]} == 0 )); then
  scenarios=("${ALL_SCENARIOS[@]}")
fi
for s in "${scenarios[@]}"; do
  case "$s" in
    publish) run_publish ;;
    fanout) run_fanout ;;
    fanout10k) run_fanout10k ;;
    rtt) run_rtt ;;
    connect) run_connect ;;
    storm|reconnect-storm) run_storm ;;
    *) log "unknown scenario $s (known: ${ALL_SCENARIOS[*]})"; exit 2 ;;
  esac
done
log "results in $OUT_DIR/$STAMP-*.json"
