#!/usr/bin/env bash
# Benchmarks a confab cluster on one machine with target/release/confab-load.
#
#   bench/cluster.sh                        # every scenario, REPEAT rounds
#   bench/cluster.sh spread crossnode       # only these
#   REPEAT=1 DURATION=5s bench/cluster.sh   # a quick pass
#
# Set-up, once per invocation: a private PostgreSQL (bench/postgres.sh, one
# fresh database), NATS_SERVERS [3] nats-server processes clustered through
# routes on free loopback ports, and NODES [3] confab nodes (release build)
# on that one database, node i on its own data directory, port and NATS
# server i. Everything is stopped at the end, on failure and on Ctrl-C.
#
# Scenarios (each fan-out run uses a fresh room, FANOUT_SUBS [1000]
# subscribers and one publisher, 100-byte bodies; accounts loadgen-0..3, the
# room's owner loadgen-0, the publisher loadgen-(FANOUT_SUBS mod 4): keep
# FANOUT_SUBS a multiple of 4, or each post also sends the owner an unread
# count over the bus, see members):
#   spread     subscribers spread round robin over the first 1, 2, 3 nodes,
#              the publisher on node 1, at each of FANOUT_RATES ["100 300"]
#              msg/s; 1,000 x 100 over 3 nodes is the 100,000 deliveries/s
#              target
#   crossnode  subscribers all on node 1 and all on node 2, the publisher on
#              node 1, at each rate: a local against a cross-node delivery
#   standalone the same fan-out against one confab without a bus on its own
#              fresh database in the same PostgreSQL (reference)
#   members    subscribers over 3 nodes at 100 msg/s in a room whose
#              MEMBERS [50] accounts (member-0 the owner and publisher) are
#              all members: each post also tells every other member their
#              unread count on user:<id>
#   outage     subscribers over 3 nodes at OUTAGE_RATE [50] msg/s for
#              OUTAGE_DURATION [30s]; OUTAGE_AT [10] s into the window every
#              nats-server is killed, and started again OUTAGE_S [5] s later
# The fan-out scenarios run REPEAT [3] rounds, configurations alternating
# inside each round; outage runs once after them.
#
# Every run passes --watch for each confab node, each nats-server and the
# PostgreSQL postmaster (with its backends), so the generator reports their
# CPU over its measured window next to its own; and --scrape for each node's
# /metrics, so the bus and gap-fill counters' increase over the same window
# is in the report. Before the runs, BUS_IDLE_S [10] s with no load measure
# each node's background bus traffic (heartbeats, presence).
#
# Output: each run's final JSON line in bench/out/<stamp>-cluster.json, the
# human summaries and the servers' logs in bench/out/<stamp>-cluster.log,
# and the tables (medians per configuration) in bench/out/<stamp>-cluster.md.
#
# Knobs: DURATION [10s], WARMUP [2s], REPEAT, NODES, FANOUT_SUBS,
# FANOUT_RATES, MEMBERS, OUTAGE_*, BUS_IDLE_S, LOADGEN_THREADS [1], SKIP_BUILD=1,
# SERVER, OUT_DIR,
# NATS_SERVER [nats-server], CONFAB_CLUSTER_HEARTBEAT_MS (the server's
# default, 1000). Server settings as in bench/lib.sh.

set -euo pipefail

LOG_TAG=cluster
BENCH_POSTGRES=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
REPEAT="${REPEAT:-3}"
NODES="${NODES:-3}"
NATS_COUNT=3
FANOUT_SUBS="${FANOUT_SUBS:-1000}"
FANOUT_RATES="${FANOUT_RATES:-100 300}"
OUTAGE_RATE="${OUTAGE_RATE:-50}"
OUTAGE_DURATION="${OUTAGE_DURATION:-30s}"
OUTAGE_AT="${OUTAGE_AT:-10}"
OUTAGE_S="${OUTAGE_S:-5}"
BUS_IDLE_S="${BUS_IDLE_S:-10}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
NATS_SERVER="${NATS_SERVER:-nats-server}"
MEMBERS="${MEMBERS:-50}"
ALL_SCENARIOS=(spread crossnode standalone members outage)

JSON_FILE="$OUT_DIR/$STAMP-cluster.json"
LOG_FILE="$OUT_DIR/$STAMP-cluster.log"
MD_FILE="$OUT_DIR/$STAMP-cluster.md"
RUN_DIR="$(mktemp -d -t confab-cluster.XXXXXX)"

command -v "$NATS_SERVER" >/dev/null || { log "no $NATS_SERVER on PATH (apt-get install nats-server)"; exit 1; }
ulimit -n "$(ulimit -Hn)"
log "open files limit: $(ulimit -n); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

NATS_PIDS=()
NATS_PORTS=()
NATS_ROUTE_PORTS=()
NATS_MON_PORTS=()
NODE_PIDS=()
NODE_PORTS=()
NODE_DIRS=()
SOLO_PID=""
SOLO_PORT=""
SOLO_DIR=""

# --- processes ----------------------------------------------------------------

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
  local pid="$1" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# start_nats I: nats-server I (0-based) on its client, route and monitoring
# ports, with routes to all the others (ports picked once, kept on restart).
start_nats() {
  local i="$1" routes="" j
  for j in $(seq 0 $((NATS_COUNT - 1))); do
    routes+="${routes:+,}nats://127.0.0.1:${NATS_ROUTE_PORTS[$j]}"
  done
  "$NATS_SERVER" -a 127.0.0.1 -p "${NATS_PORTS[$i]}" -m "${NATS_MON_PORTS[$i]}" \
    --server_name "bench-nats$((i + 1))" --cluster_name confab-bench \
    --cluster "nats://127.0.0.1:${NATS_ROUTE_PORTS[$i]}" --routes "$routes" \
    -l "$RUN_DIR/nats$((i + 1)).log" &
  NATS_PIDS[i]=$!
}

# wait_nats_routes: every nats-server answers and has a route to each other one.
wait_nats_routes() {
  local i n
  for i in $(seq 0 $((NATS_COUNT - 1))); do
    for _ in $(seq 1 200); do
      n="$(curl -fsS "http://127.0.0.1:${NATS_MON_PORTS[$i]}/routez" 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_routes"])' 2>/dev/null || echo 0)"
      (( n >= NATS_COUNT - 1 )) && break
      sleep 0.05
    done
    if (( n < NATS_COUNT - 1 )); then
      log "nats-server $((i + 1)) has $n routes of $((NATS_COUNT - 1)) after 10 s (see $RUN_DIR/nats$((i + 1)).log)"
      return 1
    fi
  done
}

stop_all_nats() {
  local i
  for i in "${!NATS_PIDS[@]}"; do
    kill -KILL "${NATS_PIDS[$i]}" 2>/dev/null || true
    wait "${NATS_PIDS[$i]}" 2>/dev/null || true
  done
}

# wait_ready PID PORT WHAT: until /readyz answers 200 (10 s).
wait_ready() {
  local pid="$1" port="$2" what="$3" i
  for i in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited during start-up; see $RUN_DIR (logs copied to $LOG_FILE at exit)"
      return 1
    fi
    sleep 0.05
  done
  log "$what not ready after 10 s"
  return 1
}

# start_node I: confab node I (0-based) on the cluster's database and NATS
# server I.
start_node() {
  local i="$1"
  NODE_DIRS[i]="$(mktemp -d -t confab-node.XXXXXX)"
  NODE_PORTS[i]="$(free_port)"
  CONFAB_NATS_URL="nats://127.0.0.1:${NATS_PORTS[$((i % NATS_COUNT))]}" \
  CONFAB_NODE_NAME="node$((i + 1))" \
    "$SERVER" --data "${NODE_DIRS[$i]}" --listen "127.0.0.1:${NODE_PORTS[$i]}" \
    >>"$RUN_DIR/node$((i + 1)).log" 2>&1 &
  NODE_PIDS[i]=$!
  wait_ready "${NODE_PIDS[$i]}" "${NODE_PORTS[$i]}" "node $((i + 1))"
  log "node $((i + 1)): pid ${NODE_PIDS[$i]}, port ${NODE_PORTS[$i]}, nats ${NATS_PORTS[$((i % NATS_COUNT))]}"
}

cleanup() {
  local i
  set +e
  for i in "${!NODE_PIDS[@]}"; do stop_pid "${NODE_PIDS[$i]}"; done
  stop_pid "$SOLO_PID"
  stop_all_nats
  pg_stop
  for i in "${!NODE_DIRS[@]}"; do rm -rf "${NODE_DIRS[$i]}"; done
  [[ -n "$SOLO_DIR" ]] && rm -rf "$SOLO_DIR"
  if [[ -d "$RUN_DIR" ]]; then
    for f in "$RUN_DIR"/*.log; do
      [[ -e "$f" ]] || continue
      echo "=== $(basename "$f")" >>"$LOG_FILE"
      cat "$f" >>"$LOG_FILE"
    done
    rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# --- set-up -------------------------------------------------------------------

export CONFAB_JWT_SECRET="${CONFAB_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
pg_fresh_database
CLUSTER_DB_URL="$CONFAB_DATABASE_URL"
for i in $(seq 0 $((NATS_COUNT - 1))); do
  NATS_PORTS[i]="$(free_port)"
  NATS_ROUTE_PORTS[i]="$(free_port)"
  NATS_MON_PORTS[i]="$(free_port)"
done
for i in $(seq 0 $((NATS_COUNT - 1))); do start_nats "$i"; done
wait_nats_routes
log "nats-server $("$NATS_SERVER" --version | awk '{print $NF}') x $NATS_COUNT, client ports ${NATS_PORTS[*]}, routes formed"
# Node 1 first: it migrates the fresh database.
for i in $(seq 0 $((NODES - 1))); do start_node "$i"; done

(( FANOUT_SUBS % 4 == 0 )) || log "FANOUT_SUBS is not a multiple of 4: the publisher is not the room's owner, and each post also sends the owner an unread count over the bus"

ws_url() { echo "ws://127.0.0.1:$1/socket/websocket"; }
metrics_of() { curl -fsS "http://127.0.0.1:$1/metrics"; }
counter() { awk -v n="$1" '$1 == n { print $2 }'; }

# cpu_ticks PID: utime + stime so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Background bus traffic and CPU with no load: heartbeats, presence, timers.
{
  declare -a pub_before recv_before cpu_before nats_before
  pg_before="$(pg_cpu_seconds)"
  for i in "${!NATS_PIDS[@]}"; do nats_before[i]="$(cpu_ticks "${NATS_PIDS[$i]}")"; done
  for i in "${!NODE_PORTS[@]}"; do
    cpu_before[i]="$(cpu_ticks "${NODE_PIDS[$i]}")"
    m="$(metrics_of "${NODE_PORTS[$i]}")"
    pub_before[i]="$(counter confab_bus_published_total <<<"$m")"
    recv_before[i]="$(counter confab_bus_received_total <<<"$m")"
  done
  sleep "$BUS_IDLE_S"
  for i in "${!NODE_PORTS[@]}"; do
    m="$(metrics_of "${NODE_PORTS[$i]}")"
    pub=$(( $(counter confab_bus_published_total <<<"$m") - pub_before[i] ))
    recv=$(( $(counter confab_bus_received_total <<<"$m") - recv_before[i] ))
    cpu_s="$(python3 -c "print(($(cpu_ticks "${NODE_PIDS[$i]}") - ${cpu_before[i]}) / $(getconf CLK_TCK))")"
    echo "{\"idle_bus\": {\"node\": $((i + 1)), \"seconds\": $BUS_IDLE_S, \"published\": $pub, \"received\": $recv, \"cpu_s\": $cpu_s}}" >>"$JSON_FILE"
    log "node $((i + 1)) idle for $BUS_IDLE_S s: $pub bus messages published, $recv received, $cpu_s s CPU"
  done
  nats_ticks=0
  for i in "${!NATS_PIDS[@]}"; do
    nats_ticks=$(( nats_ticks + $(cpu_ticks "${NATS_PIDS[$i]}") - nats_before[i] ))
  done
  idle_line="$(python3 -c "print('{\"idle_cpu\": {\"seconds\": $BUS_IDLE_S, \"nats_cpu_s\": %s, \"postgres_cpu_s\": %s}}' % (round($nats_ticks / $(getconf CLK_TCK), 2), round($(pg_cpu_seconds) - $pg_before, 2)))")"
  echo "$idle_line" >>"$JSON_FILE"
  log "idle: $idle_line"
}

RUN_NO=0

# watch_args: --watch for every node, nats-server and PostgreSQL, and
# --scrape for every node's /metrics (no nats-server with NO_NATS_WATCH=1:
# the outage replaces them mid-run).
watch_args() {
  local i
  for i in "${!NODE_PIDS[@]}"; do
    printf -- '--watch\nnode%d=%s\n--scrape\nhttp://127.0.0.1:%s/metrics\n' "$((i + 1))" "${NODE_PIDS[$i]}" "${NODE_PORTS[$i]}"
  done
  [[ "${NO_NATS_WATCH:-0}" == 1 ]] || for i in "${!NATS_PIDS[@]}"; do
    printf -- '--watch\nnats%d=%s\n' "$((i + 1))" "${NATS_PIDS[$i]}"
  done
  printf -- '--watch\npostgres=%s\n' "$(pg_server_pid)"
}

# fanout LABEL RATE DURATION URL-ARGS...: one fan-out run on a fresh room;
# the JSON line goes to the .json file with a "bench" object added. Runs in
# the background when BACKGROUND=1 (its pid in LOADGEN_PID).
fanout() {
  local label="$1" rate="$2" duration="$3"; shift 3
  RUN_NO=$((RUN_NO + 1))
  local server_pid="${NODE_PIDS[0]}"
  [[ "$label" == standalone* ]] && server_pid="$SOLO_PID"
  local args=(fanout --subscribers "$FANOUT_SUBS" --publishers 1 --rate "$rate"
    --topic "${TOPIC:-room:cluster-$RUN_NO}" --duration "$duration" --warmup "$WARMUP"
    --label "$label" "$@" --server-pid "$server_pid" --threads "$LOADGEN_THREADS"
    --register-prefix "${PREFIX:-loadgen}" --users "${USERS:-4}" --create-rooms)
  local watch
  mapfile -t watch < <(if [[ "$label" == standalone* ]]; then
      printf -- '--watch\nnode=%s\n--scrape\nhttp://127.0.0.1:%s/metrics\n--watch\npostgres=%s\n' \
        "$SOLO_PID" "$SOLO_PORT" "$(pg_server_pid)"
    else watch_args; fi)
  args+=("${watch[@]}")
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  log "run $RUN_NO $label (load average $load): confab-load ${args[*]}"
  echo "\$ confab-load ${args[*]}" >>"$LOG_FILE"
  local out="$RUN_DIR/run-$RUN_NO.out"
  "$LOADGEN" "${args[@]}" >"$out" 2>"$out.err" &
  LOADGEN_PID=$!
  if [[ "${BACKGROUND:-0}" == 1 ]]; then
    LAST_OUT="$out"; LAST_LOAD="$load"; LAST_LABEL="$label"
    return 0
  fi
  finish_run "$out" "$load" "$label"
}

# finish_run OUT LOAD LABEL: waits for the generator, files its output.
finish_run() {
  local out="$1" load="$2" label="$3" status=0
  wait "$LOADGEN_PID" || status=$?
  cat "$out.err" >>"$LOG_FILE"
  sed '$d' "$out" | tee -a "$LOG_FILE" >&2
  tail -n 1 "$out" | python3 -c '
import json, sys
line = json.loads(sys.stdin.read())
line["bench"] = {"load_average_1m": float(sys.argv[1]), "round": int(sys.argv[2]), "exit_status": int(sys.argv[3])}
print(json.dumps(line))' "$load" "${ROUND:-0}" "$status" >>"$JSON_FILE"
  (( status == 0 )) || log "confab-load exited with status $status ($label; see $LOG_FILE)"
  local i
  for i in "${!NODE_PIDS[@]}"; do
    kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || { log "NODE $((i + 1)) DIED during $label"; exit 1; }
  done
}

# urls_of I...: the WebSocket URLs of nodes I... (1-based), comma-separated.
urls_of() {
  local out="" n
  for n in "$@"; do out+="${out:+,}$(ws_url "${NODE_PORTS[$((n - 1))]}")"; done
  echo "$out"
}

run_spread_round() {
  local rate k
  local -a nodes
  for rate in $FANOUT_RATES; do
    for k in $(seq 1 "$NODES"); do
      mapfile -t nodes < <(seq 1 "$k")
      # The publisher is socket 0 of --url's round robin: node 1.
      fanout "spread-$k-r$rate" "$rate" "$DURATION" --url "$(urls_of "${nodes[@]}")"
    done
  done
}

run_crossnode_round() {
  local rate
  for rate in $FANOUT_RATES; do
    fanout "local-node1-r$rate" "$rate" "$DURATION" --url "$(urls_of 1)"
    fanout "remote-node2-r$rate" "$rate" "$DURATION" --url "$(urls_of 2)" --publisher-url "$(urls_of 1)"
  done
}

start_standalone() {
  [[ -n "$SOLO_PID" ]] && return 0
  pg_fresh_database
  SOLO_DIR="$(mktemp -d -t confab-solo.XXXXXX)"
  SOLO_PORT="$(free_port)"
  "$SERVER" --data "$SOLO_DIR" --listen "127.0.0.1:$SOLO_PORT" \
    >>"$RUN_DIR/standalone.log" 2>&1 &
  SOLO_PID=$!
  export CONFAB_DATABASE_URL="$CLUSTER_DB_URL"
  wait_ready "$SOLO_PID" "$SOLO_PORT" "standalone node"
  log "standalone node (no bus, own database): pid $SOLO_PID, port $SOLO_PORT"
}

run_standalone_round() {
  start_standalone
  local rate
  for rate in $FANOUT_RATES; do
    fanout "standalone-r$rate" "$rate" "$DURATION" --url "$(ws_url "$SOLO_PORT")"
  done
}

# make_members ROOM: registers member-0 .. member-(MEMBERS-1) on node 1,
# member-0 creates ROOM and adds every other one as a member.
make_members() {
  python3 - "http://127.0.0.1:${NODE_PORTS[0]}" "$1" "$MEMBERS" <<'PY'
import json, sys, urllib.request, urllib.error
base, room, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(path, body, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, None
def token(name):
    cred = {"username": name, "password": "loadgen-password"}
    status, body = call("/api/register", cred)
    if status not in (200, 201):
        status, body = call("/api/login", cred)
    return body["token"]
owner = token("member-0")
for i in range(1, n):
    token(f"member-{i}")
status, _ = call("/api/rooms", {"name": room}, owner)
assert status in (200, 201, 409, 422), status
for i in range(1, n):
    status, _ = call(f"/api/rooms/{room}/members", {"username": f"member-{i}"}, owner)
    assert status == 204, status
PY
}

run_members_round() {
  local room="members-$ROUND"
  make_members "$room"
  # Publisher token index FANOUT_SUBS: member-0 (the owner) when MEMBERS
  # divides FANOUT_SUBS.
  TOPIC="room:$room" PREFIX=member USERS="$MEMBERS" \
    fanout "members$MEMBERS-3-r100" 100 "$DURATION" --url "$(urls_of $(seq 1 "$NODES"))"
}

run_outage() {
  local warmup_s
  warmup_s="$(python3 -c "import re,sys; t=sys.argv[1]; print(float(t[:-2])/1000 if t.endswith('ms') else float(t.rstrip('s')))" "$WARMUP")"
  BACKGROUND=1 NO_NATS_WATCH=1 fanout "outage-r$OUTAGE_RATE" "$OUTAGE_RATE" "$OUTAGE_DURATION" \
    --url "$(urls_of $(seq 1 "$NODES"))" --drain 15s
  # Subscribers connect first: wait for the generator's publishing line.
  local i
  for i in $(seq 1 1200); do
    grep -q "confab-load fanout: publishing" "$LAST_OUT.err" 2>/dev/null && break
    kill -0 "$LOADGEN_PID" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$(python3 -c "print($warmup_s + $OUTAGE_AT)")"
  log "outage: killing every nats-server for $OUTAGE_S s"
  stop_all_nats
  sleep "$OUTAGE_S"
  for i in $(seq 0 $((NATS_COUNT - 1))); do start_nats "$i"; done
  wait_nats_routes || true
  log "outage: nats-servers back (pids ${NATS_PIDS[*]})"
  finish_run "$LAST_OUT" "$LAST_LOAD" "$LAST_LABEL"
}

scenarios=("$@")
(( ${#scenarios[@]} == 0 )) && scenarios=("${ALL_SCENARIOS[@]}")
for s in "${scenarios[@]}"; do
  case " ${ALL_SCENARIOS[*]} " in
    *" $s "*) ;;
    *) log "unknown scenario $s (known: ${ALL_SCENARIOS[*]})"; exit 2 ;;
  esac
done
for ROUND in $(seq 1 "$REPEAT"); do
  for s in "${scenarios[@]}"; do
    case "$s" in
      spread) run_spread_round ;;
      crossnode) run_crossnode_round ;;
      standalone) run_standalone_round ;;
      members) run_members_round ;;
    esac
  done
done
for s in "${scenarios[@]}"; do
  [[ "$s" == outage ]] && { ROUND=1; run_outage; }
done

python3 "$ROOT/bench/cluster_report.py" "$JSON_FILE" | tee "$MD_FILE"
log "results in $JSON_FILE, tables in $MD_FILE"
