#!/bin/bash
# Fetch Debian's current amd64 kernel + busybox-static without installing them (apt-get download +
# dpkg-deb extract into the cache). Keeps boot/ and the module dirs a VM needs (~90 MB, not 400),
# runs busybox depmod, and unpacks the ELF vmlinux (PVH entry: skips in-guest decompression, ~2x
# faster boot under TCG). Idempotent; older kernel versions are pruned from the cache.
# MKL_VM_APT_OPTS: extra apt options, e.g. a private sources list for another suite.
set -euo pipefail
. "$(dirname "$0")/common.sh"
CACHE=$MKL_VM_CACHE; mkdir -p "$CACHE/debs" "$CACHE/kernel"; cd "$CACHE/debs"
# shellcheck disable=SC2086  # MKL_VM_APT_OPTS is a list of options
KPKG=$(apt-cache ${MKL_VM_APT_OPTS:-} depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { echo "fetch: no linux-image-amd64 in the apt lists (apt-get update?)" >&2; exit 1; }
KVER=${KPKG#linux-image-}; K=$CACHE/kernel/$KVER; M=./lib/modules/$KVER/kernel
# net/bridge, net/802, net/llc and drivers/net: the bridge and veth modules of the pod network
# scenario (agent-cgroup2-network.sh); a tree unpacked before they were kept is unpacked again.
if [ ! -f "$K/tree/boot/vmlinuz-$KVER" ] || [ ! -d "$K/tree/$M/net/bridge" ]; then
  # shellcheck disable=SC2086
  apt-get ${MKL_VM_APT_OPTS:-} download "$KPKG" 2>&1 | grep -v unsandboxed || true
  rm -rf "$K"; mkdir -p "$K/tree"
  keep=(./boot "./lib/modules/$KVER/modules.order" "./lib/modules/$KVER/modules.builtin")
  for d in fs lib crypto arch net/9p net/vmw_vsock net/bridge net/802 net/llc drivers/virtio \
           drivers/block drivers/char drivers/ata drivers/scsi drivers/net/veth.ko; do keep+=("$M/$d"); done
  dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x -C "$K/tree" "${keep[@]}"
  rm -f "$K/tree/lib/modules/$KVER/modules.dep"
fi
if [ ! -x "$CACHE/bb/bin/busybox" ]; then
  apt-get download busybox-static 2>&1 | grep -v unsandboxed || true
  rm -rf "$CACHE/bb"; dpkg -x busybox-static_*.deb "$CACHE/bb"
fi
# the package has no modules.dep (its postinst runs depmod); busybox has a depmod
[ -f "$K/tree/lib/modules/$KVER/modules.dep" ] || "$CACHE/bb/bin/busybox" depmod -b "$K/tree" "$KVER"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f "$K/vmlinux" ] || "$PY" - "$K/tree/boot/vmlinuz-$KVER" "$K/vmlinux" <<'PY'
import lzma, subprocess, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\xfd7zXZ\x00')                       # 6.1: CONFIG_KERNEL_XZ
if i > 0: out = lzma.LZMADecompressor().decompress(d[i:])
else:                                              # 6.12: CONFIG_KERNEL_ZSTD
    i = d.find(b'\x28\xb5\x2f\xfd')
    out = subprocess.run(['zstd', '-dcq'], input=d[i:], capture_output=True).stdout
assert out[:4] == b'\x7fELF', "could not unpack vmlinux"
open(sys.argv[2], 'wb').write(out)
PY
echo "$KVER" > "$CACHE/KVER"; rm -rf "$CACHE/debs"
for old in "$CACHE"/kernel/*; do [ "$old" = "$K" ] || rm -rf "$old"; done
echo "fetch: kernel $KVER ($(du -scm "$K" "$CACHE/bb" | tail -1 | cut -f1) MB with busybox)"
