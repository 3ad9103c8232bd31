#!/usr/bin/env bash
# History latency in a large store: builds a store of MESSAGES messages
# (default 10,000,000) spread over ROOMS rooms through `confab import`,
# starts the server on it, and measures the `history` request (newest 50
# of one room) with `confab-load rtt`, one request in flight.
#
#   bench/history.sh                     10M messages in 100 rooms
#   MESSAGES=1000000 bench/history.sh    a smaller store
#   REACTED=1 bench/history.sh           every message carries reactions
#                                        (REACTED=N: every Nth message)
#   KEEP=1 bench/history.sh              keep the data directory (path printed)
#   DATA=/tmp/confab-history.X/data bench/history.sh
#                                        measure again on a kept store
#   BENCH_POSTGRES=1 bench/history.sh    the same store in a private
#                                        PostgreSQL (bench/postgres.sh),
#                                        filled by SQL (generate_series)
#
# The generated export goes through the same import as a restore, so the
# store is what a real one with this much history looks like on disk.
# Needs python3 (to write the export) and about 1.5 GB of disk per 10M messages.

set -euo pipefail
LOG_TAG=history
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

MESSAGES="${MESSAGES:-10000000}"
ROOMS="${ROOMS:-100}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
work="$(mktemp -d /tmp/confab-history.XXXXXX)"
cleanup() {
  stop_server
  stop_database
  if [[ "${KEEP:-0}" == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# One user with a known password (lib.sh makes hashing cheap and lifts the
# push rate limit, so requests go back to back).
if [[ "${BENCH_POSTGRES:-0}" == 1 ]]; then
  # The same rooms and messages as the export below, written by the
  # database itself (an import row by row would take far longer than the
  # measurement). The search index is off for this server: with it on, the
  # server would spend the run indexing every message.
  [[ "${REACTED:-0}" == 0 ]] || { echo "REACTED is not supported with BENCH_POSTGRES" >&2; exit 2; }
  data="$work/data"
  pg_fresh_database
  export CONFAB_SEARCH_INDEX=false
  echo "history-password" | "$SERVER" --data "$data" user add reader --password-stdin >/dev/null
  log "writing $MESSAGES messages in $ROOMS rooms into PostgreSQL"
  started=$(date +%s)
  per_room=$(( MESSAGES / ROOMS ))
  "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U confab \
    -d "${CONFAB_DATABASE_URL##*/}" <<SQL
INSERT INTO topics (kind, name, epoch, last_seq, created_at)
  SELECT 'room', 'room:h' || r, 'histepoch' || lpad(r::text, 4, '0'), $per_room, 1795000000000
  FROM generate_series(0, $ROOMS - 1) r;
INSERT INTO rooms (name, topic_id, created_at)
  SELECT substr(name, 6), id, created_at FROM topics WHERE name LIKE 'room:h%';
INSERT INTO messages (topic_id, seq, author_id, body, inserted_at)
  SELECT t.id, s, 1, 'message ' || s || ' of room ' || substr(t.name, 6) || ', long enough to look like chat',
         1795000000000 + s
  FROM topics t CROSS JOIN generate_series(1, $per_room) s
  WHERE t.name LIKE 'room:h%'
  ORDER BY t.id, s;
VACUUM ANALYZE;
SQL
  import_s=$(( $(date +%s) - started ))
  log "written in $import_s s"
elif [[ -n "${DATA:-}" ]]; then
  data="$DATA"
  import_s="(kept store)"
else
data="$work/data"
echo "history-password" | "$SERVER" --data "$work/seed" user add reader --password-stdin >/dev/null
"$SERVER" --data "$work/seed" export >"$work/base.jsonl"

log "writing an export with $MESSAGES messages in $ROOMS rooms"
started=$(date +%s)
python3 - "$work/base.jsonl" "$MESSAGES" "$ROOMS" "${REACTED:-0}" >"$work/big.jsonl" <<'EOF'
import json, sys
base, total, rooms, reacted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
reaction = ',"entries":[{"emoji":"\\ud83d\\udc4d","users":[1,2,3]},{"emoji":"\\ud83c\\udf89","users":[1]}]}\n'
lines = [json.loads(l) for l in open(base)]
counters = {l["name"]: l for l in lines if l["type"] == "counter"}
first_topic = counters["next_topic_id"]["next"]
counters["next_topic_id"]["next"] = first_topic + rooms
counters["next_message_id"] = {"type": "counter", "name": "next_message_id", "next": total + 1}
out = sys.stdout
order = ["header", "counter", "user", "topic", "room"]
for kind in order:
    if kind == "counter":
        for c in counters.values():
            out.write(json.dumps(c) + "\n")
        continue
    for l in lines:
        if l["type"] == kind:
            out.write(json.dumps(l) + "\n")
    if kind == "topic":
        for r in range(rooms):
            out.write(json.dumps({"type": "topic", "id": first_topic + r, "name": f"room:h{r}",
                                  "epoch": f"histepoch{r:04d}", "created_at": 1795000000000}) + "\n")
    if kind == "room":
        for r in range(rooms):
            out.write(json.dumps({"type": "room", "name": f"h{r}", "topic_id": first_topic + r,
                                  "private": False, "description": "", "owner": 0,
                                  "created_at": 1795000000000}) + "\n")
per_room = total // rooms
msg_id = 0
write = out.write
for r in range(rooms):
    topic = first_topic + r
    count = per_room if r < rooms - 1 else total - per_room * (rooms - 1)
    prefix = '{"type":"message","topic_id":%d,"seq":' % topic
    for seq in range(1, count + 1):
        msg_id += 1
        write('%s%d,"id":%d,"user_id":1,"body":"message %d of room h%d, long enough to look like chat","client_id":null,"inserted_at":%d,"edited_at":null,"deleted":false}\n'
              % (prefix, seq, msg_id, seq, r, 1795000000000 + msg_id))
        if reacted and seq % reacted == 0:
            write('{"type":"reactions","topic_id":%d,"seq":%d%s' % (topic, seq, reaction))
EOF
log "export written in $(( $(date +%s) - started )) s ($(du -h "$work/big.jsonl" | cut -f1))"
rm -rf "$work/seed"

started=$(date +%s)
"$SERVER" --data "$data" import "$work/big.jsonl"
import_s=$(( $(date +%s) - started ))
rm -f "$work/big.jsonl"
log "imported in $import_s s"
fi
if [[ "${BENCH_POSTGRES:-0}" == 1 ]]; then
  store_size="$("$PG_BIN/psql" -tA -h 127.0.0.1 -p "$PG_PORT" -U confab -d "${CONFAB_DATABASE_URL##*/}" \
    -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
else
  store_size=$(du -h "$data/confab.redb" | cut -f1)
fi
log "store $store_size"

start_server "$work/server.log" "$data"
token=$(curl -fs -H 'content-type: application/json' \
  -d '{"username":"reader","password":"history-password"}' \
  "http://127.0.0.1:$PORT/api/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
room="room:h$(( ROOMS / 2 ))"
log "history of $room (newest 50) on a store of $MESSAGES messages"
"$LOADGEN" rtt --url "ws://127.0.0.1:$PORT/socket/websocket" --token "$token" \
  --rtt-topic "$room" --rtt-event history --rtt-payload '{}' \
  --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" \
  --label "history-$MESSAGES" | tee "$OUT_DIR/$STAMP-history.json"
echo "import: $import_s s, store: $store_size, messages: $MESSAGES, reacted: ${REACTED:-0}" | tee -a "$OUT_DIR/$STAMP-history.log"
