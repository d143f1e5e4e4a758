#!/usr/bin/env bash
# The README's first command: build minikubelet and run it in the foreground on the example
# pods in manifests/. The cgroup root is relative (minikubelet-demo beneath this shell's own
# cgroup), state goes to /var/lib/minikubelet-demo and logs to /var/log/pods.
#   scripts/demo.sh           build and run (Ctrl-C stops the agent; the pods keep running)
#   scripts/demo.sh --clean   stop the demo pods and remove their state and cgroups
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo): minikubelet creates cgroups" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  echo "demo.sh: installing the Rust toolchain with rustup (https://rustup.rs)"
  command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl build-essential; }
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build --release --locked
BIN=${CARGO_TARGET_DIR:-target}/release/minikubelet
ROOT=/var/lib/minikubelet-demo
MANIFESTS=$ROOT/manifests
if [ "${1:-}" = "--clean" ]; then
  mkdir -p "$MANIFESTS"; rm -f "$MANIFESTS"/*.yaml
  echo "demo.sh: emptied $MANIFESTS; the agent (run it once more) stops the pods and removes their cgroups"
  exec timeout 20 "$BIN" --pod-manifest-path="$MANIFESTS" --root-dir="$ROOT" --cgroup-root=minikubelet-demo || true
fi
# The manifests are copied to a root-owned directory: minikubelet refuses manifests that
# non-root users can write, since their contents run as root.
install -d -m 755 "$MANIFESTS"
install -m 644 manifests/*.yaml "$MANIFESTS"/
echo "demo.sh: pods from $MANIFESTS; try: curl -s 127.0.0.1:10250/pods | python3 -m json.tool"
exec "$BIN" --pod-manifest-path="$MANIFESTS" --root-dir="$ROOT" --cgroup-root=minikubelet-demo "$@"
