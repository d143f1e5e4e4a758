#!/usr/bin/env bash
# The whole test suite, as the README shows it: format and lint gates, unit and integration
# tests (as root: they create cgroups beneath this shell's own cgroup and remove them), then the
# cgroup v2 / systemd VM tests when tests/vm exists. Prints each runner's own summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (sudo): the tests create real cgroups" >&2; exit 2; }
step() { echo "=== $*"; }
# What the tests need (QEMU, debootstrap, Rust, the Python client, kubectl 1.32): installed when
# missing, so this command works on a fresh Debian or Ubuntu machine. MKL_NO_DEPS=1 skips it.
if [ "${MKL_NO_DEPS:-0}" != 1 ]; then step "dependencies (scripts/deps.sh)"; scripts/deps.sh; fi
step "cargo fmt --check"; cargo fmt --all -- --check
step "cargo clippy";      cargo clippy --all-targets --locked -- -D warnings
step "module graph";      scripts/module-cycles.sh
step "unit and integration tests"
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
if [ -x tests/vm/run-all.sh ] && [ "${MKL_SKIP_VM:-0}" != 1 ]; then
  step "VM tests (cgroup v2, systemd)"; tests/vm/run-all.sh
fi
# Optional, not part of the pass/fail gate: the spine benchmark's quick mode (~15 s; prints
# figures beside a same-run baseline, PASS/MISS per target, always exits 0 when it could run).
if [ "${MKL_BENCH:-0}" = 1 ]; then
  step "OPTIONAL: spine benchmark, quick mode (MKL_BENCH=1; docs/benchmarks.md)"
  MKL_BENCH_QUICK=1 cargo bench --locked --bench spine
fi
