#!/bin/bash
# Base initramfs: static busybox + ./init + the modules in $MKL_VM_MODULES and their deps (closure
# over modules.dep) -> $1 (run.sh passes the kernel-keyed cache path). Tests append their own cpio.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
CACHE=$MKL_VM_CACHE; KVER=$(cat "$CACHE/KVER"); BB=$CACHE/bb/bin/busybox
OUT=${1:?usage: mkinitrd.sh OUT.cpio.gz}; MD=$(kernel_dir)/tree/lib/modules/$KVER
MODULES=${MKL_VM_MODULES:-"virtio_pci virtio_blk virtio_console 9pnet_virtio 9p ext4 overlay crc32c_generic bridge veth"}
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
mkdir -p "$S"/{bin,etc,proc,sys,dev,tmp,run,mnt,payload,lib/modules/$KVER}
cp "$BB" "$S/bin/busybox"
for a in $("$BB" --list); do [ "$a" = busybox ] || ln -s busybox "$S/bin/$a"; done
install -m 755 "$HERE/init" "$S/init"
declare -A want=()
add() {
  [ -n "${want[$1]:-}" ] && return 0; want[$1]=1
  local line; line=$(grep -m1 "^$1:" "$MD/modules.dep")
  for dep in ${line#*:}; do add "$dep"; done
}
load=
for m in $MODULES; do
  grep -qE "/${m//[-_]/[-_]}\.ko$" "$MD/modules.builtin" 2>/dev/null && continue   # built in (6.12: virtio_pci)
  load+=" $m"
  p=$(grep -m1 -E "(^|/)${m//[-_]/[-_]}\.ko(\.xz|\.zst)?:" "$MD/modules.dep" | cut -d: -f1) || { echo "no module $m" >&2; exit 1; }
  add "$p"
done
for p in "${!want[@]}"; do   # store uncompressed (6.12 ships .ko.xz)
  o=$S/lib/modules/$KVER/${p%.xz}; o=${o%.zst}; mkdir -p "$(dirname "$o")"
  case $p in *.xz) xz -dc "$MD/$p" > "$o";; *.zst) zstd -dcq "$MD/$p" > "$o";; *) cp "$MD/$p" "$o";; esac
done
grep -F -f <(printf '%s:\n' "${!want[@]}") "$MD/modules.dep" | sed -E 's/\.ko\.(xz|zst)/.ko/g' > "$S/lib/modules/$KVER/modules.dep"
echo "$load" > "$S/etc/vmlab-modules"
(cd "$S" && find . | sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "mkinitrd: $OUT ($(du -h "$OUT" | cut -f1), ${#want[@]} modules)"
