#!/bin/bash
# The VM test suite: cgroup v2 and systemd end-to-end tests under QEMU (scripts/test.sh runs it).
#
#   tests/vm/run-all.sh [--no-systemd] [--no-host] [--only VM-NAME]
#
# Installs the host tools it lacks, fetches Debian's kernel + busybox (cached, keyed by kernel
# version, in ${MKL_VM_CACHE:-/var/cache/minikubelet-vm}, never in the clone), builds the agent
# statically into its own target dir, builds a Debian 12 + systemd 252 rootfs (cached), then boots:
#   harness-cgroup2  busybox initramfs, pure cgroup v2: the harness proves itself (no agent needed)
#   agent-cgroup2    busybox initramfs: the agent's cgroup v2 scenarios (scenarios/agent-cgroup2.sh,
#                    then agent-cgroup2-eviction.sh: v2 eviction notifications, then agent-cgroup2-api.sh
#                    and agent-cgroup2-network.sh (pods' own network through CNI):
#                    logs, probes, exec/attach/port-forward with kubectl over TLS, stats, disk eviction)
#   harness-systemd  Debian 12 + systemd 252: install.sh + minikubelet.service with a stand-in agent
#   agent-systemd    Debian 12 + systemd 252: the same with the real agent (scenarios/agent-systemd.sh)
# and runs the host-side delivery checks (host-checks.sh). Every check prints PASS/FAIL/SKIP NAME;
# the last line is "vm: N passed, M failed"; the exit status is non-zero on any failure.
# The agent scenarios print SKIP (no boot) while the binary is still the skeleton without
# --pod-manifest-path; MKL_VM_REQUIRE_AGENT=1 turns that SKIP into a FAIL.
# Env: MKL_VM_CACHE, MKL_VM_LOGS (keep console logs there), MKL_VM_SMP, MKL_VM_REQUIRE_AGENT,
#      MKL_VM_AGENT (use this agent binary instead of building one; it must run under busybox).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib/common.sh"
CACHE=$MKL_VM_CACHE
[ "$(id -u)" = 0 ] || { echo "run-all: run as root (QEMU, apt, cgroups)" >&2; exit 2; }
SYSTEMD=1; HOST=1; ONLY=
while [ $# -gt 0 ]; do case $1 in
  --no-systemd) SYSTEMD=0 ;; --no-host) HOST=0 ;; --only) ONLY=${2:?}; shift ;;
  *) echo "usage: run-all.sh [--no-systemd] [--no-host] [--only VM-NAME]" >&2; exit 2 ;; esac; shift; done
export PATH="$HOME/.cargo/bin:$PATH" DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE"
# one run at a time per cache (the rootfs build and cargo's target dir are shared)
exec 9>"$CACHE/.lock"; flock -w 1800 9 || { echo "run-all: $CACHE is locked by another run" >&2; exit 2; }
LOGS=${MKL_VM_LOGS:-$(mktemp -d)}; mkdir -p "$LOGS"; rm -f "$LOGS"/*.log
W=$(mktemp -d); rootfs_pid=
trap '[ -z "$rootfs_pid" ] || kill "$rootfs_pid" 2>/dev/null; rm -rf "$W"; [ -n "${MKL_VM_LOGS:-}" ] || rm -rf "$LOGS"' EXIT
t0=$(date +%s); step() { echo "=== [$(( $(date +%s) - t0 ))s] $*"; }
# host-side results go to their own log, counted with the consoles
result() { echo "$1 $2" | tee -a "$LOGS/host.log"; }

step "host packages"
declare -A pkg_of=([qemu-system-x86_64]=qemu-system-x86 [debootstrap]=debootstrap [zstd]=zstd [xz]=xz-utils
  [mke2fs]=e2fsprogs [jq]=jq [gzip]=gzip [dpkg-deb]=dpkg [python3]=python3-minimal
  [apparmor_parser]=apparmor)   # apparmor: compiles agent-cgroup2's AppArmor profile (the VM has no parser)
need=()
for c in "${!pkg_of[@]}"; do command -v "$c" >/dev/null || need+=("${pkg_of[$c]}"); done
if [ ${#need[@]} -gt 0 ] || [ -z "$(apt-cache depends linux-image-amd64 2>/dev/null)" ]; then apt-get update -qq; fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >"$W/apt.log" 2>&1 || { cat "$W/apt.log"; result FAIL host_packages; }
fi

# the rootfs is slow (debootstrap, ~90 s) but mostly network and dpkg: build it while cargo compiles
ROOTFS=$CACHE/rootfs-bookworm-$(content_key "$HERE/lib/mkrootfs.sh").img
if [ "$SYSTEMD" = 1 ] && [ ! -f "$ROOTFS" ]; then
  step "debootstrap rootfs (background)"
  rm -f "$CACHE"/rootfs-bookworm-*.img
  "$HERE/lib/mkrootfs.sh" "$ROOTFS" >"$W/mkrootfs.log" 2>&1 & rootfs_pid=$!
fi

step "kernel + busybox"
"$HERE/lib/fetch.sh" || result FAIL fetch_kernel

step "build: stand-in agent and minikubelet (static, crt-static, target dir $CACHE/target)"
# crt-static glibc binaries run under busybox and in any rootfs; their own CARGO_TARGET_DIR
# because different RUSTFLAGS would otherwise invalidate the normal build
# The VM tests check behaviour, not speed: the release profile is lightened for them (no LTO,
# no optimization, many codegen units) to keep CI's cold build short on 2 cores (measured
# cold here: 393 s at opt-level 1, 298 s at opt-level 0; the binary grows from 21 to 38 MB,
# which the initramfs carries). The binaries users install (scripts/install.sh,
# scripts/demo.sh) keep the full release profile.
# One exception: sha2 is optimized (--config below). At opt-level 0 its SHA-256 (intrinsics as
# function calls) was 72% of an `image import` (perf), ~15 s per import under TCG, and every
# scenario imports its images; the crate is small, so the cold build barely moves.
STATIC=(env RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$CACHE/target"
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=0
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false)
OPTIMIZED=(--config 'profile.release.package.sha2.opt-level=3')
TRIPLE=x86_64-unknown-linux-gnu
STANDIN=$CACHE/target/$TRIPLE/release/mkl-standin
AGENT=$CACHE/target/$TRIPLE/release/minikubelet
if (cd "$HERE/harness/standin" && "${STATIC[@]}" cargo build -q --release --target $TRIPLE) >"$W/standin.log" 2>&1; then :
else cat "$W/standin.log"; result FAIL build_standin; fi
bt=$(date +%s)
if [ -n "${MKL_VM_AGENT:-}" ]; then AGENT=$MKL_VM_AGENT; echo "agent: $AGENT (MKL_VM_AGENT, not built)"
elif (cd "$REPO" && "${STATIC[@]}" cargo build -q --release --locked "${OPTIMIZED[@]}" --target $TRIPLE --bin minikubelet --bin minikubelet-shim) >"$W/agent.log" 2>&1; then
  echo "minikubelet built in $(( $(date +%s) - bt ))s"
else cat "$W/agent.log"; result FAIL build_agent_static; rm -f "$AGENT"; fi
# the agent scenarios need the real agent, not the skeleton that only prints its version
agent_ready=0
if [ -x "$AGENT" ] && "$AGENT" --help 2>&1 | grep -q -- '--pod-manifest-path'; then agent_ready=1; fi
agent_skip() {  # agent_skip NAME
  if [ "${MKL_VM_REQUIRE_AGENT:-1}" = 1 ]; then result FAIL "$1"; echo "  (MKL_VM_REQUIRE_AGENT=1 and no agent)"
  else echo "SKIP $1: minikubelet has no --pod-manifest-path yet (skeleton binary); not booted" | tee -a "$LOGS/host.log"; fi
}

# The images the agent scenarios' pods run from: the VMs have no network, so, as on an offline
# node, each scenario imports them into its agent's store (import_images, guest/lib.sh) before it
# starts that agent. Built from the cached Debian busybox-static (fetch.sh) by the repository's
# scripts/busybox-image.sh: localhost/busybox:test for the scenarios' pods (the image of the
# integration tests), docker.io/library/busybox:1.36 for the examples (manifests/, `busybox:1.36`).
# Cached, keyed by the script and the busybox (the same inputs give the same archives).
IMAGES=$CACHE/images-$(content_key "$REPO/scripts/busybox-image.sh" "$CACHE/bb/bin/busybox" 2>/dev/null)
if [ "$agent_ready" = 1 ] && [ ! -f "$IMAGES/.done" ]; then
  step "images"
  rm -rf "$CACHE"/images-*; mkdir -p "$IMAGES"
  ok=1
  for img in busybox-test.tar:localhost/busybox:test busybox-1.36.tar:docker.io/library/busybox:1.36; do
    "$REPO/scripts/busybox-image.sh" "$IMAGES/${img%%:*}" "${img#*:}" "$CACHE/bb/bin/busybox" >/dev/null \
      || { result FAIL "build_image(${img#*:})"; ok=0; }
  done
  [ "$ok" = 1 ] && touch "$IMAGES/.done"
fi

# mkpayload DIR TEST...: lib.sh, busybox, jq (+ its libs, run through the loader), the stand-in,
# the agent and the image archives (for agent scenarios only: the harness needs neither, and 45 MB
# less to pack and unpack under TCG saves seconds per boot), the install pieces of the repo, test
# manifests, and a test.sh running TESTs
mkpayload() {
  local d=$1 agent=0; shift
  case " $* " in *"/scenarios/"*) agent=$agent_ready ;; esac
  mkdir -p "$d/bin" "$d/lib/jq" "$d/repo/scripts"
  cp "$HERE/guest/lib.sh" "$d/"
  cp "$CACHE/bb/bin/busybox" "$d/bin/"
  cp "$(command -v jq)" "$d/lib/jq/jq"
  for l in $(ldd "$(command -v jq)" | awk '/=>/{print $3} /ld-linux/{print $1}'); do cp -L "$l" "$d/lib/jq/"; done
  printf '%s\n' '#!/bin/sh' 'd=$(cd "$(dirname "$0")/../lib/jq" && pwd)' \
    'exec "$d/ld-linux-x86-64.so.2" --library-path "$d" "$d/jq" "$@"' > "$d/bin/jq"
  chmod 755 "$d/bin/jq"
  [ -x "$STANDIN" ] && cp "$STANDIN" "$d/bin/"
  if [ "$agent" = 1 ]; then
    cp "$AGENT" "$d/bin/"
    # the shim's own small binary beside the agent (install.sh and the agent look for it there)
    [ -x "$(dirname "$AGENT")/minikubelet-shim" ] && cp "$(dirname "$AGENT")/minikubelet-shim" "$d/bin/"
    mkdir -p "$d/images"; cp "$IMAGES"/*.tar "$d/images/"
  fi
  cp "$REPO/scripts/install.sh" "$REPO/scripts/demo.sh" "$d/repo/scripts/"
  cp -r "$REPO/systemd" "$d/repo/"
  mkdir -p "$d/repo/vagrant"; cp "$REPO/vagrant/provision.sh" "$d/repo/vagrant/"
  mkdir -p "$d/repo/manifests"; cp "$REPO"/manifests/*.yaml "$d/repo/manifests/" 2>/dev/null || true
  cp -r "$HERE/scenarios/manifests" "$d/test-manifests"
  { echo '#!/bin/sh'; echo 'rc=0'
    for t in "$@"; do
      cp "$t" "$d/"; echo "echo \"=== $(basename "$t") (uptime \$(cut -d' ' -f1 /proc/uptime)s)\"; sh ./$(basename "$t") || rc=1"
    done
    echo 'echo "=== done (uptime $(cut -d" " -f1 /proc/uptime)s)"; exit $rc'; } > "$d/test.sh"
  chmod 755 "$d/test.sh"
}
# kubectl 1.32 as the tests find it (scripts/deps.sh): static Go, it runs under busybox too
kubectl_132() {
  for k in "${MKL_KUBECTL:-}" /usr/lib/google-cloud-sdk/bin/kubectl.1.32 /usr/local/lib/minikubelet-test/kubectl \
           "$(command -v kubectl 2>/dev/null)"; do
    [ -n "$k" ] && [ -x "$k" ] || continue
    "$k" version --client -o json 2>/dev/null | grep -q '"minor": *"32"' && { echo "$k"; return 0; }
  done
  return 1
}
# mkpki DIR: a CA, a serving certificate for 127.0.0.1, a client certificate (O=system:masters)
# and a --token-auth-file line, for the TLS checks of agent-cgroup2-api.sh (valid 2 days)
mkpki() {
  local d=$1 ext
  mkdir -p "$d"; ext=$d/ext.cnf
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=vmlab-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || return 1
  for who in server client; do
    if [ $who = server ]; then printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'extendedKeyUsage=serverAuth' > "$ext"
      subj=/CN=vmlab
    else printf '%s\n' 'extendedKeyUsage=clientAuth' > "$ext"; subj=/O=system:masters/CN=vm-admin; fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
      -keyout "$d/$who.key" -out "$d/$who.csr" 2>/dev/null || return 1
    openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
      -extfile "$ext" -out "$d/$who.crt" 2>/dev/null || return 1
  done
  echo "$(openssl rand -hex 32),vm-token-user,1001,\"system:masters\"" > "$d/tokens.csv"
  rm -f "$d"/*.csr "$d/ext.cnf" "$d/ca.key" "$d/ca.srl"
}
bad=0
vm() {  # vm NAME run.sh-args...: boots, keeps the console in $LOGS/NAME.log
  local name=$1 rc; shift
  [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || return 0
  step "$name"
  MKL_VM_LOG="$LOGS/$name.log" "$HERE/lib/run.sh" "$@"; rc=$?
  if [ "$rc" != 0 ]; then
    bad=$((bad + 1)); echo "=== $name: exit $rc"
    grep -aqE '(^|: )FAIL ' "$LOGS/$name.log" || result FAIL "vm_$name(exit=$rc)"
  fi
}

if [ -f "$CACHE/KVER" ]; then
  mkpayload "$W/h2" "$HERE/harness/tools.sh" "$HERE/harness/cgroup-demo.sh" "$HERE/harness/standin-cgroup2.sh" "$HERE/harness/swap.sh"
  mke2fs -q -F -t ext4 -L swapfs "$W/h2-disk.img" 64M >/dev/null 2>&1
  MKL_VM_APPEND="mkl.disk=/dev/vda" vm harness-cgroup2 -p "$W/h2" -t 180 -c "${MKL_VM_SMP:-2}" \
    -- -drive "file=$W/h2-disk.img,if=virtio,format=raw"
  if [ "$agent_ready" = 1 ]; then
    mkpayload "$W/a2" "$HERE/scenarios/agent-cgroup2.sh" "$HERE/scenarios/agent-cgroup2-eviction.sh" \
      "$HERE/scenarios/agent-cgroup2-api.sh" "$HERE/scenarios/agent-cgroup2-network.sh"
    # agent-cgroup2-network's CNI plugins: Debian's (dynamically linked), with their libraries,
    # each run through the loader as jq is; without them the scenario skips and says why.
    for p in bridge host-local loopback; do
      [ -x "/usr/lib/cni/$p" ] || continue
      mkdir -p "$W/a2/lib/cni" "$W/a2/cni"
      cp "/usr/lib/cni/$p" "$W/a2/lib/cni/$p"
      for l in $(ldd "/usr/lib/cni/$p" | awk '/=>/{print $3} /ld-linux/{print $1}'); do cp -L "$l" "$W/a2/lib/cni/"; done
      printf '%s\n' '#!/bin/sh' 'd=$(cd "$(dirname "$0")/../lib/cni" && pwd)' \
        "exec \"\$d/ld-linux-x86-64.so.2\" --library-path \"\$d\" \"\$d/$p\" \"\$@\"" > "$W/a2/cni/$p"
      chmod 755 "$W/a2/cni/$p"
    done
    # agent-cgroup2's Localhost AppArmor profile, compiled here (apparmor_parser -Q -S: no kernel
    # needed) since the busybox VM has no parser; the guest loads the binary through securityfs.
    # Without a parser the scenario skips its AppArmor checks and says why.
    if command -v apparmor_parser >/dev/null; then
      mkdir -p "$W/a2/apparmor"
      apparmor_parser -Q -S "$HERE/scenarios/apparmor/mkl-vm-test" > "$W/a2/apparmor/mkl-vm-test.bin" 2>"$W/aa.log" \
        || { cat "$W/aa.log"; rm -f "$W/a2/apparmor/mkl-vm-test.bin"; }
    fi
    # the API scenario's kubectl and certificates (it fails without them)
    if k=$(kubectl_132); then cp "$k" "$W/a2/bin/kubectl"; else echo "run-all: no kubectl 1.32 (scripts/deps.sh)"; fi
    mkpki "$W/a2/pki" || { echo "run-all: openssl could not make the test certificates"; rm -rf "$W/a2/pki"; }
    mke2fs -q -F -t ext4 -L swapfs "$W/a2-disk.img" 64M >/dev/null 2>&1
    # -t: a cap against hangs, not the expected time (~2 min on a quiet 2-vCPU host; 12 min
    # were seen with the host's load at 8-10, where 720 s cut a passing boot short)
    MKL_VM_APPEND="mkl.disk=/dev/vda" vm agent-cgroup2 -p "$W/a2" -t 900 -m 768 -c "${MKL_VM_SMP:-2}" \
      -- -drive "file=$W/a2-disk.img,if=virtio,format=raw"
  else agent_skip agent_cgroup2; fi
fi

if [ "$SYSTEMD" = 1 ]; then
  if [ -n "$rootfs_pid" ]; then
    step "waiting for the rootfs"
    wait "$rootfs_pid" || { cat "$W/mkrootfs.log"; result FAIL build_rootfs; }
    rootfs_pid=
    cat "$W/mkrootfs.log"
  fi
  if [ -f "$ROOTFS" ] && [ -f "$CACHE/KVER" ]; then
    mkpayload "$W/hs" "$HERE/harness/tools.sh" "$HERE/harness/standin-systemd.sh"
    vm harness-systemd -r "$ROOTFS" -p "$W/hs" -t 300 -c 1
    if [ "$agent_ready" = 1 ]; then
      mkpayload "$W/as" "$HERE/scenarios/agent-systemd.sh"
      vm agent-systemd -r "$ROOTFS" -p "$W/as" -t 600 -m 768 -c 1   # cap: ~2.5 min quiet, 6 min at load 8
    else agent_skip agent_systemd; fi
  fi
fi

if [ "$HOST" = 1 ]; then
  step "host-side delivery checks"
  MKL_AGENT_BIN="$AGENT" "$HERE/host-checks.sh" 2>&1 | tee -a "$LOGS/host.log"
fi

step "done"
lines=$(cat "$LOGS"/*.log | tr -d '\r' | grep -aoE '(^|: )(PASS|FAIL|SKIP) [^ ]+' | sed -E 's/^: //')
pass=$(grep -c '^PASS' <<<"$lines"); fail=$(grep -c '^FAIL' <<<"$lines"); skipped=$(grep -c '^SKIP' <<<"$lines")
[ "$fail" -gt 0 ] && { echo "failed:"; grep '^FAIL' <<<"$lines" | sed 's/^/  /'; }
[ "$skipped" -gt 0 ] && echo "vm: $skipped skipped"
echo "vm: $pass passed, $fail failed"
[ "$bad" -eq 0 ] && [ "$fail" -eq 0 ]
