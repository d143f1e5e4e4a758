#!/usr/bin/env bash
# Install minikubelet as a systemd service: binary, unit, configuration, manifests directory.
# Idempotent: files already up to date are left alone, and a second run reports "0 changed".
# Used by vagrant/provision.sh and by the VM tests (tests/vm/run-all.sh).
#
#   scripts/install.sh [--binary PATH] [--with-examples] [--start] [--force-config] [--root DIR]
#
#   --binary PATH     the minikubelet binary (default: target/release/minikubelet, then
#                     $CARGO_TARGET_DIR/release/minikubelet); a minikubelet-shim beside it
#                     (the per-container supervisor's own small binary) is installed too
#   --with-examples   also copy manifests/*.yaml into /etc/kubernetes/manifests
#   --start           enable the unit and start it (restart it if the binary or unit changed)
#   --force-config    overwrite /etc/minikubelet/config.yaml and /etc/default/minikubelet
#                     (by default an existing, possibly edited, copy is kept)
#   --root DIR        install below DIR instead of / (for tests; no systemctl calls)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BINARY=; EXAMPLES=0; START=0; FORCE_CONFIG=0; ROOT=
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --binary) BINARY=${2:?--binary needs a path}; shift ;;
    --binary=*) BINARY=${1#*=} ;;
    --with-examples) EXAMPLES=1 ;;
    --start) START=1 ;;
    --force-config) FORCE_CONFIG=1 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#*=} ;;
    -h|--help) usage 0 ;;
    *) echo "install: unknown argument $1" >&2; usage 2 >&2 ;;
  esac
  shift
done
if [ -z "$BINARY" ]; then
  for c in "$REPO/target/release/minikubelet" "${CARGO_TARGET_DIR:-/nonexistent}/release/minikubelet"; do
    [ -x "$c" ] && { BINARY=$c; break; }
  done
fi
[ -n "$BINARY" ] && [ -x "$BINARY" ] || {
  echo "install: no minikubelet binary (build it: cargo build --release, or pass --binary PATH)" >&2; exit 1; }
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || { echo "install: run as root" >&2; exit 1; }
ROOT=${ROOT%/}

changed=0; unchanged=0; unit_changed=0; bin_changed=0
# put SRC DST MODE [keep]: install SRC as $ROOT/DST unless identical; "keep" leaves an existing DST
put() {
  local src=$1 dst=$ROOT$2 mode=$3 keep=${4:-}
  if [ -e "$dst" ]; then
    if cmp -s "$src" "$dst"; then
      if [ "$(stat -c %a "$dst")" = "$mode" ]; then unchanged=$((unchanged + 1)); return 1; fi
      chmod "$mode" "$dst"; echo "install: $2 (mode $mode)"; changed=$((changed + 1)); return 0
    elif [ "$keep" = keep ]; then
      echo "install: kept $2 (differs from $src; --force-config replaces it)"
      unchanged=$((unchanged + 1)); return 1
    fi
  fi
  mkdir -p "$(dirname "$dst")"
  # write beside, then rename: a running binary is replaced, never truncated
  install -m "$mode" "$src" "$dst.install-tmp" && mv -f "$dst.install-tmp" "$dst"
  echo "install: $2"; changed=$((changed + 1)); return 0
}
keep=keep; [ "$FORCE_CONFIG" = 1 ] && keep=
put "$BINARY" /usr/local/bin/minikubelet 755 && bin_changed=1
# the shim's own small binary goes with the agent it was built with; an agent without one falls
# back to `minikubelet shim`, so a left-over shim from an earlier build is removed, not mixed in
# (running shims keep their deleted inode, and pods keep running)
SHIM=$(dirname "$BINARY")/minikubelet-shim
if [ -x "$SHIM" ]; then
  put "$SHIM" /usr/local/bin/minikubelet-shim 755 && bin_changed=1
elif [ -e "$ROOT/usr/local/bin/minikubelet-shim" ]; then
  rm -f "$ROOT/usr/local/bin/minikubelet-shim"; echo "install: removed /usr/local/bin/minikubelet-shim"
  changed=$((changed + 1)); bin_changed=1
fi
put "$REPO/systemd/minikubelet.service" /etc/systemd/system/minikubelet.service 644 && unit_changed=1
put "$REPO/systemd/minikubelet.default" /etc/default/minikubelet 644 $keep || true
put "$REPO/systemd/config.yaml" /etc/minikubelet/config.yaml 644 $keep || true
for d in /etc/kubernetes/manifests /var/lib/minikubelet /var/log/pods; do
  [ -d "$ROOT$d" ] || { mkdir -p "$ROOT$d"; echo "install: $d/"; changed=$((changed + 1)); }
done
if [ "$EXAMPLES" = 1 ]; then
  for m in "$REPO"/manifests/*.yaml; do
    [ -e "$m" ] || continue
    put "$m" "/etc/kubernetes/manifests/$(basename "$m")" 644 || true
  done
fi
echo "install: $changed changed, $unchanged unchanged"

[ -z "$ROOT" ] && [ -d /run/systemd/system ] || exit 0   # no systemd running: files only
if [ "$unit_changed" = 1 ]; then systemctl daemon-reload; fi
if [ "$START" = 1 ]; then
  systemctl enable --quiet minikubelet.service
  if systemctl is-active --quiet minikubelet.service; then
    if [ "$bin_changed" = 1 ] || [ "$unit_changed" = 1 ]; then
      echo "install: restarting minikubelet.service (pods keep running)"; systemctl restart minikubelet.service
    fi
  else
    systemctl start minikubelet.service
  fi
  systemctl --no-pager --lines=0 status minikubelet.service || true
  echo "install: as root: kubectl --kubeconfig /var/lib/minikubelet/kubeconfig get pods (the API needs its admin token, also on loopback)"
fi
