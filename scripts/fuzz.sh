#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md), each for a while. Not part of CI.
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]     (default: 60 s, every target)
# Installs cargo-fuzz from crates.io if it is missing. cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module's -Z companions) to rustc; with only the stable
# toolchain installed, RUSTC_BOOTSTRAP=1 lets stable rustc accept them (the sanitizer runtimes
# ship with the stable x86_64-unknown-linux-gnu standard library). Runs under `nice -n 19`: the
# fuzzer takes a whole core per target for the time given.
# Each target starts from the seeds in fuzz/corpus/TARGET (committed, small) and writes what it
# finds to fuzz/work/corpus/TARGET; a crash lands in fuzz/artifacts/TARGET/ and stops the run
# with its input named (reproduce: cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
SECS=${1:-60}
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo fuzz list --fuzz-dir fuzz)
fi
status=0
for t in "${TARGETS[@]}"; do
  work=fuzz/work/corpus/$t
  mkdir -p "$work" "fuzz/corpus/$t"
  echo "fuzz.sh: $t for ${SECS}s"
  start=$(date +%s)
  if nice -n 19 cargo fuzz run --fuzz-dir fuzz "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      > "fuzz/work/$t.log" 2>&1; then
    result=ok
  else
    result="FAILED (see fuzz/work/$t.log and fuzz/artifacts/$t/)"; status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/work/$t.log" | tail -1)
  echo "fuzz.sh: $t: $result, $(( $(date +%s) - start ))s (build included), ${runs:-?} runs, corpus $(ls "$work" | wc -l) inputs"
done
exit $status
