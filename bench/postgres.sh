# Sourced by bench/lib.sh when BENCH_POSTGRES=1: a private PostgreSQL for the
# benchmarks (initdb into a temporary directory, a free loopback port,
# fsync and synchronous_commit on, as in production), one fresh database per
# server start, stopped when the script exits. As root, the cluster runs as
# the unprivileged user nobody (PostgreSQL refuses to run as root).
#
#   PG_BIN         the server binaries (default: pg_config --bindir, else
#                  the newest /usr/lib/postgresql/*/bin)
#   PG_SHARED_MB   shared_buffers (default 256)

PG_BIN="${PG_BIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
PG_DIR=""
PG_PORT=""
PG_DB_COUNT=0

pg_as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  PG_DIR="$(mktemp -d -t confab-bench-pg.XXXXXX)"
  [[ "$(id -u)" == 0 ]] && chown 65534:65534 "$PG_DIR"
  PG_PORT="$(free_port)"
  pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U confab --auth=trust -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR \
        -c fsync=on -c synchronous_commit=on -c shared_buffers=${PG_SHARED_MB:-256}MB \
        -c max_connections=200" >/dev/null
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $PG_DIR/data)"
}

pg_stop() {
  if [[ -n "$PG_DIR" ]]; then
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
  fi
}

# pg_fresh_database: creates a new database and points CONFAB_DATABASE_URL at it.
pg_fresh_database() {
  PG_DB_COUNT=$((PG_DB_COUNT + 1))
  local name="bench_$PG_DB_COUNT"
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U confab -d postgres -c "CREATE DATABASE $name" >/dev/null
  export CONFAB_DATABASE_URL="postgres://confab@127.0.0.1:$PG_PORT/$name"
}

# pg_server_pid: the postmaster's pid (its backends are its children).
pg_server_pid() {
  head -1 "$PG_DIR/data/postmaster.pid"
}

# pg_cpu_seconds: user+system CPU seconds of the postmaster and all its
# backends so far (ended backends included, via the children's counters).
pg_cpu_seconds() {
  local pid total=0 tick
  tick=$(getconf CLK_TCK)
  for pid in $(pg_server_pid) $(pgrep -P "$(pg_server_pid)"); do
    [[ -r /proc/$pid/stat ]] || continue
    total=$(( total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat") ))
  done
  python3 -c "print(round($total / $tick, 2))"
}
