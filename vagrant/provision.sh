#!/usr/bin/env bash
# Vagrant provisioner (runs as root in the lab VM): makes the VM a minikubelet node from the
# synced checkout. Idempotent: `vagrant provision` rebuilds and reinstalls.
#   provision.sh [CHECKOUT]   (default /minikubelet)
# 1. build tools; Rust via rustup if cargo is missing (the distributions' rustc is too old);
# 2. swap off, as for the kubelet (the agent refuses to start with swap on);
# 3. cargo build --release in /var/cache/minikubelet-build (outside the synced checkout);
# 4. scripts/install.sh --with-examples --start: binary, unit, config, example pods, service up.
#   MKL_PREBUILT_BINARY=PATH skips steps 1 and 3 and installs that binary instead: the VM test
#   (tests/vm/scenarios/agent-systemd.sh) runs this very script that way, offline.
set -euo pipefail
SRC=${1:-/minikubelet}
PREBUILT=${MKL_PREBUILT_BINARY:-}
export DEBIAN_FRONTEND=noninteractive
echo "provision: $(. /etc/os-release && echo "$PRETTY_NAME"), $(systemctl --version | head -1)"
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || echo "provision: WARNING: not a pure cgroup v2 host; minikubelet is tested on cgroup v2"

if [ -z "$PREBUILT" ]; then
pkgs=(build-essential ca-certificates curl pkg-config)
missing=(); for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="/root/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  echo "provision: installing Rust with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
fi

fi

if [ -n "$(tail -n +2 /proc/swaps)" ]; then
  echo "provision: turning swap off (and off for good in /etc/fstab), as the kubelet requires"
  swapoff -a
  sed -i -E '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#/' /etc/fstab
  systemctl daemon-reload
fi

if [ -z "$PREBUILT" ]; then
  export CARGO_TARGET_DIR=/var/cache/minikubelet-build
  cargo build --release --locked --manifest-path "$SRC/Cargo.toml"
  PREBUILT=$CARGO_TARGET_DIR/release/minikubelet
fi
"$SRC/scripts/install.sh" --binary "$PREBUILT" --with-examples --start
echo "provision: done. Try: curl -s 127.0.0.1:10250/healthz; systemd-cgls /minikubelet"
