#!/usr/bin/env bash
# The README's first command: build minikubelet and run it in the foreground on the example
# pods in manifests/. The cgroup root is relative (minikubelet-demo beneath the agent's own
# cgroup), state goes to /var/lib/minikubelet-demo and logs to /var/log/pods.
#   scripts/demo.sh           build and run (Ctrl-C stops the agent; the pods keep running)
#   scripts/demo.sh --clean   stop the demo pods and remove their state, cgroups and logs
#                             (builds nothing; the examples are copied on the first run only)
# The pods run from their images: the examples all use busybox:1.36, which the agent pulls from
# Docker Hub. Offline (the registry unreachable), or with MKL_DEMO_OFFLINE=1, the demo builds a
# stand-in from the node's Debian busybox-static (scripts/busybox-image.sh) tagged
# docker.io/library/busybox:1.36 and imports it into the store before the agent starts.
# MKL_BIN=PATH uses that binary instead of building one (the test suite does this).
# MKL_DEMO_PORT, MKL_DEMO_ROOT (/var/lib/minikubelet-demo), MKL_DEMO_LOGS (/var/log: pods/ and
# containers/ below it) and MKL_DEMO_CGROUP (minikubelet-demo) move the demo aside (tests).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo): minikubelet creates cgroups" >&2; exit 2; }
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
BIN=${MKL_BIN:-}
CLEAN=0; [ "${1:-}" = "--clean" ] && CLEAN=1
# --clean builds nothing: it uses the binary the demo ran (or none, see below).
if [ -z "$BIN" ] && [ $CLEAN = 1 ]; then BIN=${CARGO_TARGET_DIR:-target}/release/minikubelet; fi
if [ -z "$BIN" ]; then
  # cargo needs a C linker (cc) and rustup needs curl: a stock cloud image has curl, not gcc.
  if ! command -v cc >/dev/null || ! command -v curl >/dev/null; then
    echo "demo.sh: installing curl and gcc (apt-get)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates gcc libc6-dev
  fi
  if ! command -v cargo >/dev/null; then
    echo "demo.sh: installing the Rust toolchain with rustup (https://rustup.rs)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
  fi
  cargo build --release --locked
  BIN=${CARGO_TARGET_DIR:-target}/release/minikubelet
fi
ROOT=${MKL_DEMO_ROOT:-/var/lib/minikubelet-demo}
MANIFESTS=$ROOT/manifests
PORT=${MKL_DEMO_PORT:-10250}
LOGS=${MKL_DEMO_LOGS:-/var/log}
CG=${MKL_DEMO_CGROUP:-minikubelet-demo}
ARGS=(--pod-manifest-path="$MANIFESTS" --root-dir="$ROOT" --cgroup-root="$CG" --port="$PORT"
      --pod-logs-dir="$LOGS/pods" --container-logs-dir="$LOGS/containers")

# The cgroup root. cgroup v1: minikubelet-demo, relative, beneath this shell's own cgroup in
# each hierarchy. cgroup v2: /minikubelet-demo, absolute, as the systemd unit does it: a relative
# root on v2 needs a delegated cgroup of the agent's own (v2 forbids processes in a cgroup whose
# controllers are delegated), and a scope that still holds the pods after Ctrl-C could not be
# reused by the next run or by --clean. An absolute root is what the kubelet itself uses.
V2=0; [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && V2=1
if [ $V2 = 1 ]; then ARGS[2]=--cgroup-root=/$CG; fi

# The demo cgroups: minikubelet-demo beneath this shell's cgroup in each hierarchy (v1), or
# /sys/fs/cgroup/minikubelet-demo (v2).
demo_cgroups() {
  if [ $V2 = 1 ]; then
    if [ -d "/sys/fs/cgroup/$CG" ]; then echo "/sys/fs/cgroup/$CG"; fi
    return
  fi
  while IFS=: read -r _ ctrls path; do
    case $ctrls in name=*) continue ;; esac
    if [ -z "$ctrls" ]; then d=/sys/fs/cgroup; [ -d /sys/fs/cgroup/unified ] && d=/sys/fs/cgroup/unified
    else d=/sys/fs/cgroup/${ctrls%%,*}; [ -d "$d" ] || d=/sys/fs/cgroup/$ctrls; fi
    if [ -d "$d$path/$CG" ]; then echo "$d$path/$CG"; fi
  done < /proc/self/cgroup | sort -u
}

if [ $CLEAN = 1 ]; then
  mkdir -p "$MANIFESTS"; rm -f "$MANIFESTS"/*.yaml
  if [ -x "$BIN" ]; then
    echo "demo.sh: stopping the demo pods (an agent with an empty manifest directory removes them)"
    "$BIN" "${ARGS[@]}" >/dev/null 2>&1 & agent=$!
    # Every request needs the admin token, which the agent writes into its 0600 kubeconfig.
    for _ in $(seq 300); do
      TOKEN=$(sed -n 's/^ *token: //p' "$ROOT/kubeconfig" 2>/dev/null || true)
      if [ -n "$TOKEN" ] && curl -sf -H "Authorization: Bearer $TOKEN" "127.0.0.1:$PORT/pods" 2>/dev/null | grep -q '"items":\[\]'; then break; fi
      sleep 0.1
    done
    kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null || true
  else
    echo "demo.sh: no $BIN: killing what is left in the demo cgroups"
  fi
  for d in $(demo_cgroups); do
    for _ in 1 2 3; do
      find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      sleep 0.2
    done
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # The demo pods' logs: no empty pod log directories, no dangling /var/log/containers links.
  find "$LOGS/pods" -mindepth 1 -maxdepth 3 -path "$LOGS/pods/default_*" -type d -empty -delete 2>/dev/null || true
  find "$LOGS/containers" -maxdepth 1 -xtype l -lname "$LOGS/pods/*" -delete 2>/dev/null || true
  rm -rf "$ROOT"
  left=$(demo_cgroups)
  [ -z "$left" ] && echo "demo.sh: clean" || { echo "demo.sh: cgroups left: $left" >&2; exit 1; }
  exit 0
fi
# The manifests are copied to a root-owned directory: minikubelet refuses manifests that
# non-root users can write, since their contents run as root. Only on the first run: starting
# the demo again (with extra flags, as labs 8-10 do) keeps the learner's edits and deletions.
if [ ! -d "$MANIFESTS" ]; then
  install -d -m 755 "$MANIFESTS"
  install -m 644 manifests/*.yaml "$MANIFESTS"/
fi
# The examples' one image. Online the agent pulls it (events Pulling, Pulled). Offline it is
# built here from Debian's busybox-static and imported, unless the store already has it.
IMAGE=docker.io/library/busybox:1.36
OFFLINE=${MKL_DEMO_OFFLINE:-}
if [ -z "$OFFLINE" ]; then
  # Docker Hub's registry answers 401 (a token is needed) when it is reachable. 3 s: long
  # enough for a slow link, short enough not to hold a machine without one.
  code=$(curl -s --max-time 3 -o /dev/null -w '%{http_code}' https://registry-1.docker.io/v2/ 2>/dev/null || true)
  case $code in 401|200) OFFLINE=0 ;; *) OFFLINE=1 ;; esac
fi
# A stand-in imported by an earlier run is used online too (a tagged image is pulled only if not
# present): every start says so, from this note, until it is removed from the store.
NOTE=$ROOT/demo-image-note
present() { "$BIN" image ls -q --root-dir "$ROOT" 2>/dev/null | grep -qx "$IMAGE"; }
if [ "$OFFLINE" = 1 ] && ! present; then
  if [ ! -x /bin/busybox ]; then
    echo "demo.sh: installing busybox-static (apt-get) to build $IMAGE offline"
    apt-get install -y -qq --no-install-recommends busybox-static || true
  fi
  BB_VERSION="$( (/bin/busybox 2>&1 || true) | head -n 1 | cut -d' ' -f1-2)"
  DEB_VERSION=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo "version unknown")
  tar=$(mktemp --suffix=.tar)
  scripts/busybox-image.sh "$tar" "$IMAGE" >/dev/null
  "$BIN" image import "$tar" --root-dir "$ROOT" >/dev/null
  rm -f "$tar"
  echo "demo.sh: registry unreachable (or MKL_DEMO_OFFLINE=1): $IMAGE was NOT pulled from Docker Hub; it was built locally by scripts/busybox-image.sh from Debian's busybox-static $DEB_VERSION ($BB_VERSION) and imported"
  echo "$IMAGE in the store was built locally from Debian's busybox-static $DEB_VERSION ($BB_VERSION), not pulled from Docker Hub ('scripts/demo.sh --clean', then a run online, pulls Docker Hub's)" > "$NOTE"
elif [ -e "$NOTE" ]; then
  present || rm -f "$NOTE"
  if [ -e "$NOTE" ]; then echo "demo.sh: note: $(cat "$NOTE")"; fi
fi
echo "demo.sh: pods from $MANIFESTS; try (as root: the kubeconfig holds the API's admin token, mode 0600): kubectl --kubeconfig $ROOT/kubeconfig get pods"
exec "$BIN" "${ARGS[@]}" "${@}"
