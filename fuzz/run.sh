#!/usr/bin/env bash
# Fuzzes confab's parsers with libFuzzer for a bounded time.
#
#   fuzz/run.sh --ci                  the short run CI does: every target,
#                                     FUZZ_SECONDS (default 20) each
#   fuzz/run.sh                       every target with cargo-fuzz,
#                                     FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 fuzz/run.sh      the longer run (10 minutes per target)
#   fuzz/run.sh frame_v2 query        only these targets (also with --ci)
#   FUZZ_ARGS="-fork=2 -ignore_crashes=1" fuzz/run.sh join_payload
#                                     keep going past known crashes
#
# Two builds, both need a C++ compiler for libFuzzer:
#
# - default: cargo-fuzz, optimised, with AddressSanitizer. Works on the
#   stable toolchain: cargo-fuzz needs `-Z` flags, which RUSTC_BOOTSTRAP=1
#   allows. Installs cargo-fuzz from crates.io if it is missing. The corpus
#   grows in fuzz/corpus/<target>/.
# - --ci: plain `cargo build --profile ci` with the coverage flags cargo-fuzz
#   passes to rustc, unoptimised and without AddressSanitizer, so it needs
#   neither cargo-fuzz nor nightly and builds in a few minutes from a clean
#   checkout. The corpus is a temporary directory: every run starts from the
#   committed inputs.
#
# Each target starts from fuzz/seeds/<target>/ and fuzz/regressions/<target>/.
# A crashing input lands in fuzz/artifacts/<target>/ and makes this script
# exit 1: copy it to fuzz/regressions/<target>/ so tests/fuzz_regressions.rs
# replays it, and fix the bug.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
ci=
if [ "${1:-}" = --ci ]; then
  ci=1
  shift
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  # The [[bin]] names in Cargo.toml, as `cargo fuzz list` prints them.
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -vx confab-fuzz)
fi

echo "==> building ${#targets[@]} targets"
start=$(date +%s)
if [ -n "$ci" ]; then
  # What cargo-fuzz passes to rustc for libFuzzer's coverage feedback, less
  # the sanitizer. --target keeps these flags off build scripts and proc
  # macros, which run on the host without libFuzzer.
  host=$(rustc -vV | sed -n 's/^host: //p')
  flags="--cfg fuzzing -Cpasses=sancov-module"
  for opt in level=4 inline-8bit-counters pc-table trace-compares; do
    flags+=" -Cllvm-args=-sanitizer-coverage-$opt"
  done
  [[ $host == *-linux-* ]] && flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth"
  flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
  RUSTFLAGS="$flags ${RUSTFLAGS:-}" \
    cargo build --locked --profile ci --target "$host" --bins
  bin_dir=${CARGO_TARGET_DIR:-target}/$host/ci
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
else
  export RUSTC_BOOTSTRAP=1
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  cargo fuzz build
fi
echo "    build took $(( $(date +%s) - start )) s"

# Crash, leak, timeout and out-of-memory inputs libFuzzer wrote for a target.
found() {
  find "artifacts/$1" -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' \) | sort
}

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "artifacts/$target"
  log="artifacts/$target/last-run.log"
  echo "==> $target for ${seconds} s"
  began=$(date +%s)
  before=$(found "$target")
  libfuzzer_args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  if [ -n "$ci" ]; then
    corpus=$work/$target
    mkdir -p "$corpus"
    run=("$bin_dir/$target" -artifact_prefix="artifacts/$target/" "${libfuzzer_args[@]}"
      ${FUZZ_ARGS:-} "$corpus" "seeds/$target" "regressions/$target")
  else
    corpus=corpus/$target
    mkdir -p "$corpus"
    run=(cargo fuzz run "$target" "$corpus" "seeds/$target" "regressions/$target" --
      "${libfuzzer_args[@]}" ${FUZZ_ARGS:-})
  fi
  if "${run[@]}" >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    tail -40 "$log"
  fi
  took=$(( $(date +%s) - began ))
  new=$(comm -13 <(echo "$before") <(found "$target") | sed '/^$/d')
  if [ -n "$new" ]; then
    status=CRASH # also when found with -ignore_crashes
    echo "    crashing input(s):"
    sed 's|^|      fuzz/|' <<<"$new"
  fi
  [ "$status" = ok ] || failed+=("$target")
  # Executions: the final stats, else the last status line ("#N ..." or "#N: ...").
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1 || true)
  fi
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  size=$(find "$corpus" -type f | wc -l)
  line="$target: $status, ${execs:-?} execs, ${took} s (incl. start-up), coverage ${cov:-?}, corpus $size"
  echo "    $line"
  summary+=("$line")
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/, log in last-run.log beside them)" >&2
  exit 1
fi
