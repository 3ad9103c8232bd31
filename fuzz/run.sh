#!/usr/bin/env bash
# Fuzzes confab's parsers with cargo-fuzz (libFuzzer) for a bounded time.
#
#   fuzz/run.sh                       every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 fuzz/run.sh      the longer run (10 minutes per target)
#   fuzz/run.sh frame_v2 query        only these targets
#   FUZZ_ARGS="-fork=2 -ignore_crashes=1" fuzz/run.sh join_payload
#                                     keep going past known crashes
#
# Works on the stable toolchain: cargo-fuzz needs `-Z` flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz from crates.io if it is
# missing (needs a C++ compiler for libFuzzer). The corpus grows in
# fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/); a crashing
# input lands in fuzz/artifacts/<target>/ and makes this script exit 1:
# copy it to fuzz/regressions/<target>/ so tests/fuzz_regressions.rs
# replays it, and fix the bug.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${#targets[@]} targets"
start=$(date +%s)
cargo fuzz build
echo "    build took $(( $(date +%s) - start )) s"

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/last-run.log"
  echo "==> $target for ${seconds} s"
  began=$(date +%s)
  found_before=$(find "artifacts/$target" -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
  if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$target")
    tail -40 "$log"
  fi
  took=$(( $(date +%s) - began ))
  found_after=$(find "artifacts/$target" -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
  if [ "$status" = ok ] && [ "$found_after" -gt "$found_before" ]; then
    status=CRASH # found with -ignore_crashes
    failed+=("$target")
  fi
  # Executions: the final stats, else the last status line ("#N ..." or "#N: ...").
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1 || true)
  fi
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  corpus=$(find "corpus/$target" -type f | wc -l)
  line="$target: $status, ${execs:-?} execs, ${took} s (incl. start-up), coverage ${cov:-?}, corpus $corpus"
  echo "    $line"
  summary+=("$line")
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
