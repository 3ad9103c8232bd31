#!/usr/bin/env bash
# Runs every test of confab: the Rust unit and integration tests (real server
# binary on loopback, temporary data directories), then the protocol
# conformance tests with the official phoenix JS client, then the browser
# tests of the web UI when Chromium is installed; then the Rust integration
# tests and the phoenix-client tests again with confab on PostgreSQL (a
# private server per test binary, or per suite, started and stopped by the
# harness); then the phoenix-client scenarios with clients on different
# nodes of a cluster (three nodes, one PostgreSQL, three routed nats-server
# processes, all started and stopped by the harness).
#
#   ./test.sh            everything
#   ./test.sh rust       only the Rust tests
#   ./test.sh js         only the phoenix-client tests
#   ./test.sh browser    only the browser tests
#   ./test.sh rust-pg    only the Rust integration tests on PostgreSQL
#   ./test.sh js-pg      only the phoenix-client tests on PostgreSQL
#   ./test.sh js-cluster only the phoenix-client tests across cluster nodes
set -euo pipefail
cd "$(dirname "$0")"

ONLY="${*:-}"
passed=0
failed=0

run_suite() {
  local name=$1; shift
  echo "==> $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "!! $name failed"; fi
}

if [ -z "$ONLY" ] || [[ " $ONLY " == *" rust "* ]]; then
  run_suite "rust tests" cargo test --locked --no-fail-fast
fi

if [ -z "$ONLY" ] || [[ " $ONLY " == *" js "* ]] || [[ " $ONLY " == *" browser "* ]] \
  || [[ " $ONLY " == *" js-pg "* ]] || [[ " $ONLY " == *" js-cluster "* ]]; then
  if ! command -v node >/dev/null; then
    echo "node is not installed: the phoenix-client and browser tests need Node.js 20+" >&2
    exit 1
  fi
  cargo build --locked --quiet
  ( cd tests/js && { [ -d node_modules/phoenix ] || npm ci --no-audit --no-fund --silent; } )
fi

if [ -z "$ONLY" ] || [[ " $ONLY " == *" js "* ]]; then
  run_suite "phoenix client conformance" bash -c 'cd tests/js && npm test --silent'
fi

if [ -z "$ONLY" ] || [[ " $ONLY " == *" browser "* ]]; then
  if [ -d tests/js/browser ]; then
    if [ -x /usr/bin/chromium ]; then
      run_suite "browser tests" bash -c 'cd tests/js && npm run --silent test:browser'
    else
      echo "!! /usr/bin/chromium is missing: install Debian's chromium to run the browser tests" >&2
      failed=$((failed + 1))
    fi
  fi
fi

# On PostgreSQL: every integration test binary but those that test framing
# or parsing only (the store plays no part) and those that run PostgreSQL
# themselves (postgres_*, and cluster_* with their own cluster).
PG_SKIP=" websocket_conformance websocket_framing websocket_deflate fuzz_regressions login_flood cluster_faults cluster_longpoll "
if [ -z "$ONLY" ] || [[ " $ONLY " == *" rust-pg "* ]]; then
  pg_tests=()
  for file in tests/*.rs; do
    name=$(basename "$file" .rs)
    [[ "$PG_SKIP" == *" $name "* || "$name" == postgres_* ]] || pg_tests+=(--test "$name")
  done
  run_suite "rust tests on PostgreSQL" \
    env CONFAB_TEST_BACKEND=postgres cargo test --locked --no-fail-fast "${pg_tests[@]}"
fi

if [ -z "$ONLY" ] || [[ " $ONLY " == *" js-pg "* ]]; then
  run_suite "phoenix client conformance on PostgreSQL" bash -c 'cd tests/js && npm run --silent test:pg'
fi

if [ -z "$ONLY" ] || [[ " $ONLY " == *" js-cluster "* ]]; then
  if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
    run_suite "phoenix client conformance across cluster nodes" bash -c 'cd tests/js && npm run --silent test:cluster'
  else
    echo "!! nats-server is missing: install Debian's nats-server to run the cluster tests" >&2
    failed=$((failed + 1))
  fi
fi

echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
