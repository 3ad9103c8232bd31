#!/usr/bin/env bash
# Builds the Dockerfile's runtime stage with podman on a Debian base made
# locally with debootstrap (no registry needed), with a confab binary built by
# cargo, and checks what users of the image rely on:
#   /healthz through the published port, the process is not root, data in the
#   volume survives a restart and a new container, `podman stop` exits 0
#   within the grace period, the HEALTHCHECK command works, and admin
#   commands run inside the live container (`podman exec ... /confab user add`).
#
# Skips (exit 0, with the reason) where this machine cannot run containers.
#
# Environment:
#   CONFAB_BIN             binary to put in the image (default: cargo build, debug)
#   CONFAB_CONTAINER_CACHE where the base root filesystem is cached
#                          (default /var/cache/confab-container-base)
#   DEBIAN_MIRROR          default: the first deb.debian.org-style URI in apt's sources
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "container-test: SKIPPED: $*"
  exit 0
}
say() { echo "container-test: $*"; }
fail() {
  echo "container-test: FAILED: $*" >&2
  if [ -s "${log:-}" ]; then
    echo "podman said:" >&2
    cat "$log" >&2
  fi
  exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root (rootful podman and debootstrap)"
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done

CACHE=${CONFAB_CONTAINER_CACHE:-/var/cache/confab-container-base}
BASE=localhost/confab-base:bookworm
IMAGE=localhost/confab:container-test
NAME=confab-container-test
VOLUME=confab-container-test-data
PORT=${CONFAB_TEST_PORT:-$((20000 + RANDOM % 20000))}

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v security | head -n1 | tr -d ' ' || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

# ---- the base image: Debian bookworm from Debian's own packages ------------
if ! podman image exists "$BASE"; then
  if [ ! -s "$CACHE/rootfs.tar" ]; then
    say "debootstrap bookworm from $DEBIAN_MIRROR into $CACHE"
    mkdir -p "$CACHE"
    rm -rf "$CACHE/rootfs.new"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs.new" "$DEBIAN_MIRROR" \
      >"$CACHE/debootstrap.log" 2>&1 || fail "debootstrap failed, see $CACHE/debootstrap.log"
    tar -C "$CACHE/rootfs.new" -cf "$CACHE/rootfs.tar.new" .
    mv "$CACHE/rootfs.tar.new" "$CACHE/rootfs.tar"
    rm -rf "$CACHE/rootfs.new"
  fi
  say "importing $CACHE/rootfs.tar as $BASE"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$CACHE/rootfs.tar" "$BASE" >/dev/null
fi

# ---- how containers can run here ----------------------------------------------
# podman's rootful defaults raise RLIMIT_NOFILE/NPROC to 1048576/4194304; where
# CAP_SYS_RESOURCE is missing that fails ("setrlimit RLIMIT_NOFILE: Operation
# not permitted"), so ask for what this process already has. crun refuses a
# hybrid cgroup v1/v2 layout; runc handles it. Try crun, then runc.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=65536
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=4096:4096")
RUNTIME=
errors=
for runtime in crun runc; do
  command -v "$runtime" >/dev/null || continue
  if out=$(timeout 60 podman --runtime "$runtime" run --rm "${LIMITS[@]}" "$BASE" true 2>&1); then
    RUNTIME=$runtime
    break
  fi
  errors+="  $runtime: $out"$'\n'
done
[ -n "$RUNTIME" ] || skip "no OCI runtime can start a container here:"$'\n'"$errors"
PODMAN=(podman --runtime "$RUNTIME")
say "using runtime $RUNTIME"

# ---- the binary and the image -------------------------------------------------
if [ -z "${CONFAB_BIN:-}" ]; then
  cargo build --locked --quiet --bin confab
  CONFAB_BIN=${CARGO_TARGET_DIR:-target}/debug/confab
fi
[ -x "$CONFAB_BIN" ] || fail "no binary at $CONFAB_BIN"

context=$(mktemp -d)
cleanup() {
  "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$context"
}
trap cleanup EXIT
cleanup_container() { "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true; }
log=
cleanup_container
podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true

# The Dockerfile's global ARGs and its runtime stage, with the binary taken
# from the context instead of the builder stage: exactly what users get,
# minus the compile.
cp "$CONFAB_BIN" "$context/confab"
{
  sed -n '/^FROM /q;/^ARG /p' Dockerfile
  sed -n '/^FROM \${RUNTIME_BASE} AS runtime/,$p' Dockerfile |
    sed 's|^COPY --from=builder /build/target/release/confab /confab$|COPY confab /confab|'
} >"$context/Containerfile"
grep -q '^COPY confab /confab$' "$context/Containerfile" ||
  fail "the Dockerfile's runtime stage no longer copies /build/target/release/confab"
grep -q '^FROM \${RUNTIME_BASE} AS runtime' "$context/Containerfile" ||
  fail "the Dockerfile has no 'FROM \${RUNTIME_BASE} AS runtime' stage"

say "building $IMAGE on $BASE"
# --format docker keeps HEALTHCHECK (the OCI image format has no such field).
"${PODMAN[@]}" build --quiet --format docker "${LIMITS[@]}" \
  --build-arg RUNTIME_BASE="$BASE" -t "$IMAGE" "$context" >/dev/null

# podman schedules the periodic healthcheck with systemd timers. Without
# systemd it logs "unable to get systemd connection" on run, start and stop;
# that goes to $log (shown on failure), and `podman healthcheck run` below
# runs the image's HEALTHCHECK command itself.
log="$context/podman.log"

run_container() {
  "${PODMAN[@]}" run -d --name "$NAME" "${LIMITS[@]}" \
    -p "127.0.0.1:$PORT:4000" -v "$VOLUME:/data" "$IMAGE" >/dev/null 2>>"$log"
}

wait_healthy() {
  local deadline=$((SECONDS + 30))
  until "$CONFAB_BIN" healthcheck --url "http://127.0.0.1:$PORT" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      podman logs "$NAME" >&2 || true
      fail "/healthz did not answer 200 on 127.0.0.1:$PORT within 30 s"
    fi
    sleep 0.2
  done
}

# Seconds `podman stop` takes; fails unless the container exits 0 (SIGTERM
# handled) within Docker's 10 s stop timeout.
stop_cleanly() {
  local start=$SECONDS
  "${PODMAN[@]}" stop -t 10 "$NAME" >/dev/null 2>>"$log"
  local took=$((SECONDS - start))
  local code
  code=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
  [ "$code" = 0 ] || { podman logs "$NAME" >&2; fail "exit code $code after podman stop"; }
  [ "$took" -lt 10 ] || fail "podman stop took ${took}s (the grace period is 8 s)"
  say "podman stop: exit 0 after ${took}s"
}

podman image inspect -f '{{.Config.Healthcheck.Test}}' "$IMAGE" | grep -q '/confab healthcheck' ||
  fail "the image has no HEALTHCHECK running /confab healthcheck"

say "running on 127.0.0.1:$PORT"
run_container
wait_healthy
say "/healthz answers through the published port"

pid=$(podman inspect -f '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ {print $3}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the server runs as uid $uid, not 65532"
say "the server runs as uid $uid"

health=$("${PODMAN[@]}" healthcheck run "$NAME" 2>&1) || fail "podman healthcheck run: $health"
say "HEALTHCHECK passes${health:+ ($health)}"

# Admin commands run inside the live server, as the image's user.
printf 'alicesecret\n' | "${PODMAN[@]}" exec -i "$NAME" /confab user add alice --password-stdin |
  grep -q '^created user alice' || fail "user add through podman exec"
"${PODMAN[@]}" exec "$NAME" /confab user list | grep -q ' alice ' || fail "alice is not listed"
say "podman exec /confab user add works on the running server"

stop_cleanly
"${PODMAN[@]}" start "$NAME" >/dev/null 2>>"$log"
wait_healthy
"${PODMAN[@]}" exec "$NAME" /confab user list | grep -q ' alice ' ||
  fail "alice did not survive a restart"
say "data survives a container restart"

stop_cleanly
cleanup_container
run_container
wait_healthy
"${PODMAN[@]}" exec "$NAME" /confab user list | grep -q ' alice ' ||
  fail "alice did not survive a new container on the same volume"
say "data survives a new container on the same volume"
stop_cleanly

say "all checks passed"
