#!/usr/bin/env bash
# Basic figures of the release binary: size, cold start to /readyz, idle RSS,
# and login latency with the default argon2id parameters. Each timing is the
# median of several runs. Loopback only; everything stops by itself.
#
#   bench/basics.sh            (builds release first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin confab >/dev/null 2>&1
BIN=target/release/confab
RUNS=${RUNS:-7}
LOGINS=${LOGINS:-40}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print int(NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

size_bytes=$(stat -c %s "$BIN")

# Cold start: exec to the first 200 from /readyz, fresh data directory each time.
starts=()
for _ in $(seq "$RUNS"); do
  dir=$(mktemp -d); p=$(port)
  t0=$(date +%s%N)
  "$BIN" --data "$dir" --listen "127.0.0.1:$p" >/dev/null 2>&1 &
  pid=$!
  until curl -fsS "http://127.0.0.1:$p/readyz" >/dev/null 2>&1; do sleep 0.002; done
  t1=$(date +%s%N)
  starts+=($(( (t1 - t0) / 1000 )))
  kill -TERM $pid; wait $pid || true; rm -rf "$dir"
done
start_us=$(printf '%s\n' "${starts[@]}" | median)

# Idle RSS and login latency on one server.
dir=$(mktemp -d); p=$(port)
"$BIN" --data "$dir" --listen "127.0.0.1:$p" >/dev/null 2>&1 &
pid=$!
until curl -fsS "http://127.0.0.1:$p/readyz" >/dev/null 2>&1; do sleep 0.01; done
rss_idle_kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
curl -fsS -X POST "http://127.0.0.1:$p/api/register" -d '{"username":"bench","password":"bench-password"}' >/dev/null
logins=()
for _ in $(seq "$LOGINS"); do
  t=$(curl -fsS -o /dev/null -w '%{time_total}' -X POST "http://127.0.0.1:$p/api/login" \
        -d '{"username":"bench","password":"bench-password"}')
  logins+=($(python3 -c "print(int($t*1e6))"))
done
rss_after_kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true; rm -rf "$dir"
login_p50=$(printf '%s\n' "${logins[@]}" | median)
login_p90=$(printf '%s\n' "${logins[@]}" | sort -n | awk -v n="${#logins[@]}" 'NR==int(n*0.9+0.5){print}')

echo "binary size:            $((size_bytes / 1024)) KiB"
echo "cold start to /readyz:  median $((start_us / 1000)) ms over $RUNS runs"
echo "idle RSS:               ${rss_idle_kib} KiB (after $LOGINS logins: ${rss_after_kib} KiB)"
echo "login latency:          p50 $((login_p50 / 1000)) ms, p90 $((login_p90 / 1000)) ms over $LOGINS logins (argon2id m=19456 KiB, t=2, p=1)"
printf '{"binary_bytes":%d,"cold_start_us":%d,"idle_rss_kib":%d,"rss_after_logins_kib":%d,"login_p50_us":%d,"login_p90_us":%d}\n' \
  "$size_bytes" "$start_us" "$rss_idle_kib" "$rss_after_kib" "$login_p50" "$login_p90"
