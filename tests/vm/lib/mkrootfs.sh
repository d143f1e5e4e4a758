#!/bin/bash
# Debian bookworm minbase + systemd 252 + python3 and curl (which every stock Debian/Ubuntu image
# has; the web, probes-and-hooks and memory-hog examples need python3, scripts/demo.sh curl) as an
# ext4 image ($1), from the mirror apt uses; mke2fs -d fills the image (no loop mount). The image
# does not depend on the kernel (it has no modules: the initramfs loads them before switch_root).
# A test runs as vmlab-run.service once boot is done.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
CACHE=$MKL_VM_CACHE; IMG=${1:?usage: mkrootfs.sh OUT.img}; D=$CACHE/rootfs.tree
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
MIRROR=${MKL_VM_MIRROR:-$( (grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}') | grep -v security | head -1 || true)}
rm -rf "$D"
debootstrap --variant=minbase --include=systemd-sysv,dbus,python3,curl bookworm "$D" "${MIRROR:?no Debian mirror found in the apt sources}" \
  > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
echo vmlab > "$D/etc/hostname"; : > "$D/etc/fstab"; : > "$D/etc/machine-id"
# no gettys/timers; no pseudo-fs mounts or modprobe@ units (rootfs has no modules)
for u in getty@tty1.service serial-getty@ttyS0.service {apt-daily,apt-daily-upgrade,dpkg-db-backup,e2scrub_all,fstrim}.timer \
   e2scrub_reap.service systemd-pstore.service systemd-timesyncd.service proc-sys-fs-binfmt_misc.automount \
   {dev-hugepages,dev-mqueue,sys-kernel-debug,sys-kernel-tracing,sys-kernel-config,sys-fs-fuse-connections}.mount \
   modprobe@{configfs,dm_mod,drm,fuse,efi_pstore,loop}.service; do ln -sf /dev/null "$D/etc/systemd/system/$u"; done
cat > "$D/usr/local/sbin/vmlab-run" <<'SH'
#!/bin/sh
if [ -x /vmlab/payload/test.sh ]; then cd /vmlab/payload && ./test.sh; rc=$?
elif [ -x /mnt/host/test.sh ]; then cd /mnt/host && ./test.sh; rc=$?
else rc=122; fi
[ "$rc" -gt 127 ] && rc=127
echo "VMLAB-RESULT rc=$rc"; sync
printf "\\$(printf %03o "$rc")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
systemctl poweroff --force
SH
chmod 755 "$D/usr/local/sbin/vmlab-run"
# Type=simple + After=multi-user.target: boot is finished ("running") when the test starts
printf '%s\n' '[Unit]' 'After=multi-user.target' '[Service]' 'Type=simple' \
  'ExecStart=/usr/local/sbin/vmlab-run' 'StandardOutput=journal+console' 'StandardError=journal+console' \
  > "$D/etc/systemd/system/vmlab-run.service"
ln -sf ../vmlab-run.service "$D/etc/systemd/system/multi-user.target.wants/vmlab-run.service"
rm -rf "$D"/var/cache/apt/* "$D"/var/lib/apt/lists/* "$D"/usr/share/{doc,man,info,locale}/*
rm -f "$IMG.tmp"; mke2fs -q -t ext4 -L vmroot -d "$D" "$IMG.tmp" "$(( $(du -sm "$D" | cut -f1) * 3 / 2 + 256 ))M"
mv "$IMG.tmp" "$IMG"
echo "mkrootfs: $IMG ($(du -h "$IMG" | cut -f1) allocated); tree $(du -sh "$D" | cut -f1)"; rm -rf "$D"
