#!/usr/bin/env bash
# The README's first command: build minikubelet and run it in the foreground on the example
# pods in manifests/. The cgroup root is relative (minikubelet-demo beneath the agent's own
# cgroup), state goes to /var/lib/minikubelet-demo and logs to /var/log/pods.
#   scripts/demo.sh           build and run (Ctrl-C stops the agent; the pods keep running)
#   scripts/demo.sh --clean   stop the demo pods and remove their state and cgroups
# MKL_BIN=PATH uses that binary instead of building one (the test suite does this).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo): minikubelet creates cgroups" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:$PATH"
BIN=${MKL_BIN:-}
if [ -z "$BIN" ]; then
  if ! command -v cargo >/dev/null; then
    echo "demo.sh: installing the Rust toolchain with rustup (https://rustup.rs)"
    command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl build-essential; }
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  cargo build --release --locked
  BIN=${CARGO_TARGET_DIR:-target}/release/minikubelet
fi
ROOT=/var/lib/minikubelet-demo
MANIFESTS=$ROOT/manifests
PORT=${MKL_DEMO_PORT:-10250}
ARGS=(--pod-manifest-path="$MANIFESTS" --root-dir="$ROOT" --cgroup-root=minikubelet-demo --port="$PORT")

# On cgroup v2 a relative cgroup root needs a cgroup of the agent's own (v2 forbids processes in
# a cgroup that delegates controllers, and this shell's session scope holds the shell): with
# systemd, start the agent in a delegated transient scope, as a Delegate=yes service would be.
LAUNCH=()
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && command -v systemd-run >/dev/null \
   && [ -d /run/systemd/system ]; then
  LAUNCH=(systemd-run --quiet --collect --scope -p Delegate=yes --unit="minikubelet-demo-$$")
fi

# The demo cgroups: minikubelet-demo beneath this shell's cgroup in each hierarchy (on v2 with
# systemd, beneath the agent's scope: those go away with the scope).
demo_cgroups() {
  while IFS=: read -r _ ctrls path; do
    case $ctrls in name=*) continue ;; esac
    if [ -z "$ctrls" ]; then d=/sys/fs/cgroup; [ -d /sys/fs/cgroup/unified ] && d=/sys/fs/cgroup/unified
    else d=/sys/fs/cgroup/${ctrls%%,*}; [ -d "$d" ] || d=/sys/fs/cgroup/$ctrls; fi
    if [ -d "$d$path/minikubelet-demo" ]; then echo "$d$path/minikubelet-demo"; fi
  done < /proc/self/cgroup | sort -u
}

if [ "${1:-}" = "--clean" ]; then
  mkdir -p "$MANIFESTS"; rm -f "$MANIFESTS"/*.yaml
  echo "demo.sh: stopping the demo pods (an agent with an empty manifest directory removes them)"
  "${LAUNCH[@]}" "$BIN" "${ARGS[@]}" >/dev/null 2>&1 & agent=$!
  for _ in $(seq 300); do
    if curl -sf "127.0.0.1:$PORT/pods" 2>/dev/null | grep -q '"items":\[\]'; then break; fi
    sleep 0.1
  done
  kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null || true
  for d in $(demo_cgroups); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  rm -rf "$ROOT"
  left=$(demo_cgroups)
  [ -z "$left" ] && echo "demo.sh: clean" || { echo "demo.sh: cgroups left: $left" >&2; exit 1; }
  exit 0
fi
# The manifests are copied to a root-owned directory: minikubelet refuses manifests that
# non-root users can write, since their contents run as root.
install -d -m 755 "$MANIFESTS"
install -m 644 manifests/*.yaml "$MANIFESTS"/
echo "demo.sh: pods from $MANIFESTS; try: kubectl --kubeconfig $ROOT/kubeconfig get pods"
exec "${LAUNCH[@]}" "$BIN" "${ARGS[@]}" "${@}"
