#!/usr/bin/env bash
# Search latency on a large store: writes an export of MESSAGES messages
# (default 1,000,000) in ROOMS rooms, bodies of 8 words drawn from a
# 20,000-word vocabulary, imports it, builds the index offline with
# `confab reindex` (timed), starts the server, and times QUERIES one-word
# searches (random vocabulary words, one request in flight over a kept-alive
# connection), printing p50/p99/max in ms.
#
#   bench/search.sh                      1M messages in 100 rooms
#   MESSAGES=200000 bench/search.sh      a smaller store
#   KEEP=1 bench/search.sh               keep the data directory
#
# The publish cost of indexing is measured with bench/run.sh publish, once
# as is and once with CONFAB_SEARCH_INDEX=false (see BENCHMARKS.md).
set -euo pipefail

LOG_TAG=search
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

MESSAGES="${MESSAGES:-1000000}"
ROOMS="${ROOMS:-100}"
QUERIES="${QUERIES:-2000}"

work="$(mktemp -d /tmp/confab-search.XXXXXX)"
cleanup() {
  stop_server
  stop_database
  if [[ "${KEEP:-0}" == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

data="$work/data"
echo "search-password" | "$SERVER" --data "$work/seed" user add reader --password-stdin >/dev/null
"$SERVER" --data "$work/seed" export >"$work/base.jsonl"
log "writing an export with $MESSAGES messages in $ROOMS rooms"
started=$(date +%s)
python3 - "$work/base.jsonl" "$MESSAGES" "$ROOMS" >"$work/big.jsonl" <<'EOF'
import json, random, sys
base, total, rooms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
vocab = ["w%05d" % i for i in range(20000)]
lines = [json.loads(l) for l in open(base)]
counters = {l["name"]: l for l in lines if l["type"] == "counter"}
first_topic = counters["next_topic_id"]["next"]
counters["next_topic_id"]["next"] = first_topic + rooms
counters["next_message_id"] = {"type": "counter", "name": "next_message_id", "next": total + 1}
out = sys.stdout
for kind in ["header", "counter", "user", "topic", "room"]:
    if kind == "counter":
        for c in counters.values():
            out.write(json.dumps(c) + "\n")
        continue
    for l in lines:
        if l["type"] == kind:
            out.write(json.dumps(l) + "\n")
    if kind == "topic":
        for r in range(rooms):
            out.write(json.dumps({"type": "topic", "id": first_topic + r, "name": f"room:s{r}",
                                  "epoch": f"srchepoch{r:04d}", "created_at": 1795000000000}) + "\n")
    if kind == "room":
        for r in range(rooms):
            out.write(json.dumps({"type": "room", "name": f"s{r}", "topic_id": first_topic + r,
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
        body = " ".join(rng.choices(vocab, k=8))
        write('%s%d,"id":%d,"user_id":1,"body":"%s","client_id":null,"inserted_at":%d,"edited_at":null,"deleted":false}\n'
              % (prefix, seq, msg_id, body, 1795000000000 + msg_id))
EOF
log "export written in $(( $(date +%s) - started )) s ($(du -h "$work/big.jsonl" | cut -f1))"
rm -rf "$work/seed"
started=$(date +%s)
"$SERVER" --data "$data" import "$work/big.jsonl" >/dev/null
log "imported in $(( $(date +%s) - started )) s"
rm -f "$work/big.jsonl"
started=$(date +%s.%N)
"$SERVER" --data "$data" reindex
reindex_s=$(python3 -c "import time; print(round(time.time() - $started, 1))")
log "reindex: $reindex_s s; index $(du -sh "$data/search" | cut -f1), store $(du -h "$data/confab.redb" | cut -f1)"

start_server "$work/server.log" "$data"
python3 - "$PORT" "$QUERIES" <<'EOF'
import http.client, json, random, sys, time
port, queries = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()
status, body = call("POST", "/api/login", {"username": "reader", "password": "search-password"})
token = json.loads(body)["token"]
rng = random.Random(11)
times, hits = [], 0
for i in range(queries + 100):
    word = "w%05d" % rng.randrange(20000)
    started = time.perf_counter()
    status, body = call("GET", "/api/search?q=" + word, token=token)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200, body
    if i >= 100:  # warm-up
        times.append(elapsed)
        hits += len(json.loads(body)["results"])
times.sort()
pct = lambda p: times[min(len(times) - 1, int(len(times) * p))]
print(json.dumps({"queries": len(times), "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
                  "max_ms": round(times[-1], 2), "mean_results": round(hits / len(times), 1)}))
EOF
