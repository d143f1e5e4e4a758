#!/usr/bin/env bash
# Installs what the test suite needs on a Debian or Ubuntu machine, and skips what is there:
# Debian packages (QEMU and debootstrap for the VM tests, curl, iproute2, openssl for the VM
# tests' TLS certificates, ...), the Rust toolchain with rustfmt and clippy (rustup), the Python
# Kubernetes client (PyPI) and kubectl 1.32 (dl.k8s.io). Called by scripts/test.sh (and
# .ci/run); safe to run again.
# Prints what it could not install, and which tests will fail for it, instead of stopping.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
say() { echo "deps: $*"; }

apt_pkgs=(qemu-system-x86 qemu-utils debootstrap zstd xz-utils e2fsprogs systemd util-linux
          procps iproute2 curl ca-certificates openssl gcc libc6-dev python3 python3-pip
          jq docker-registry busybox-static skopeo umoci runc containernetworking-plugins iptables
          apparmor)
# jq: the labs read the API with it (tests/labs.rs); docker-registry, busybox-static, skopeo,
# umoci: tests/images.rs (a loopback registry and images built from busybox); runc: the
# oracle of tests/oci_oracle.rs; containernetworking-plugins (the CNI plugins, in /usr/lib/cni)
# and iptables (portmap and the bridge's ipMasq run it): tests/cni.rs, tests/pod_network.rs;
# apparmor: apparmor_parser compiles the VM test's AppArmor profile (tests/vm/run-all.sh) and
# checks that minikubelet's default profile compiles (unit test).
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || say "apt-get failed for: ${missing[*]} (the VM tests need qemu-system-x86 and debootstrap)"
fi

if ! command -v cargo >/dev/null; then
  say "installing the Rust toolchain with rustup (https://rustup.rs)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null \
    || say "rustup failed: install Rust 1.85 or newer (cargo) by hand"
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || say "rustup could not add rustfmt/clippy"
fi

if ! python3 -c 'import kubernetes' 2>/dev/null; then
  # Debian 12 and Ubuntu 24.04 mark the system Python as externally managed (PEP 668).
  pip_flags=(-q --disable-pip-version-check)
  python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages \
    && pip_flags+=(--break-system-packages)
  python3 -m pip install "${pip_flags[@]}" kubernetes==31.0.0 >/dev/null 2>&1 \
    || say "pip could not install kubernetes==31.0.0: the Python client tests in tests/kubectl.rs and tests/streaming.rs will fail"
fi

# kubectl 1.32: the tests run the versioned binary (a kubectl of another minor version may print
# other columns). Found at $MKL_KUBECTL, beside the Cloud SDK's dispatcher, as kubectl on PATH
# when it is 1.32, or fetched here into /usr/local/lib/minikubelet-test/.
KUBECTL_DIR=/usr/local/lib/minikubelet-test
kubectl_132() {
  for k in "${MKL_KUBECTL:-}" /usr/lib/google-cloud-sdk/bin/kubectl.1.32 "$KUBECTL_DIR/kubectl" \
           "$(command -v kubectl 2>/dev/null)"; do
    [ -n "$k" ] && [ -x "$k" ] || continue
    "$k" version --client -o json 2>/dev/null | grep -q '"minor": *"32"' && { echo "$k"; return 0; }
  done
  return 1
}
if ! kubectl_132 >/dev/null; then
  say "fetching kubectl 1.32 from dl.k8s.io"
  ver=$(curl -fsSL --max-time 20 https://dl.k8s.io/release/stable-1.32.txt 2>/dev/null)
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  if [ -n "$ver" ] && mkdir -p "$KUBECTL_DIR" \
     && curl -fsSL --max-time 120 -o "$KUBECTL_DIR/kubectl" "https://dl.k8s.io/release/$ver/bin/linux/$arch/kubectl" \
     && echo "$(curl -fsSL --max-time 20 "https://dl.k8s.io/release/$ver/bin/linux/$arch/kubectl.sha256")  $KUBECTL_DIR/kubectl" | sha256sum -c --quiet; then
    chmod 755 "$KUBECTL_DIR/kubectl"
  else
    rm -f "$KUBECTL_DIR/kubectl"
    say "no kubectl 1.32 (dl.k8s.io unreachable?): tests/kubectl.rs and tests/streaming.rs need it; put one at $KUBECTL_DIR/kubectl or set MKL_KUBECTL"
  fi
fi
if k=$(kubectl_132); then say "kubectl 1.32: $k"; fi
exit 0
