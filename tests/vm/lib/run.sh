#!/bin/bash
# run.sh [-p PAYLOAD_DIR] [-s SHARE_DIR] [-r ROOTFS_IMG] [-t TIMEOUT_S] [-m MEM_MB] [-c CPUS] [-- qemu args]
# -p: dir packed as a 2nd cpio after the base initramfs -> /payload; its test.sh runs as root
#     (cgroup2 at /sys/fs/cgroup). -s: dir shared read-write over 9p -> /mnt/host.
# -r: ext4 image from mkrootfs.sh, booted with systemd as PID 1 (snapshot=on: image
#     untouched); test.sh then runs from /vmlab/payload as vmlab-run.service.
# Env: MKL_VM_APPEND (extra kernel cmdline), MKL_VM_LOG (keep the console log there),
#      MKL_VM_ACCEL / MKL_VM_CPU (override the accelerator / CPU model).
# Exit: test.sh's status; 124 timeout; 125 guest never reported (panic...).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
CACHE=$MKL_VM_CACHE; K=$(kernel_dir)
PAYLOAD=; SHARE=; ROOTFS=; TMO=${MKL_VM_TIMEOUT:-300}; MEM=${MKL_VM_MEM:-512}; SMP=${MKL_VM_SMP:-1}
KERNEL=${MKL_VM_KERNEL:-$K/vmlinux}          # the bzImage in $K/tree/boot works too, 2x slower
# KVM only if the CPU has VMX/SVM: on the dev/CI VMs /dev/kvm is kvm_pvm and a stock kernel crawls on it
if [ -n "${MKL_VM_ACCEL:-}" ]; then ACCEL=$MKL_VM_ACCEL
elif [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
CPU=${MKL_VM_CPU:-max}; [ "$ACCEL" = kvm ] && CPU=${MKL_VM_CPU:-host}
while getopts "p:s:r:t:m:c:" o; do case $o in
  p) PAYLOAD=$(realpath "$OPTARG");; s) SHARE=$(realpath "$OPTARG");;
  r) ROOTFS=$(realpath "$OPTARG");; t) TMO=$OPTARG;; m) MEM=$OPTARG;; c) SMP=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND-1)); [ "${1:-}" = "--" ] && shift
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
BASE=$K/base-$(content_key "$HERE/init" "$HERE/mkinitrd.sh" <(echo "${MKL_VM_MODULES:-}")).cpio.gz
[ -f "$BASE" ] || "$HERE/mkinitrd.sh" "$BASE" >/dev/null || exit 2
cp "$BASE" "$W/initrd"
if [ -n "$PAYLOAD" ]; then   # the kernel unpacks concatenated cpio archives in order
  mkdir "$W/p"; ln -s "$PAYLOAD" "$W/p/payload"
  (cd "$PAYLOAD" && find . | sed 's|^\.|payload|' | sort) > "$W/list"
  (cd "$W/p" && "$CACHE/bb/bin/busybox" cpio -o -H newc -R 0:0 -L < "$W/list" 2>/dev/null) | gzip -1 >> "$W/initrd"
fi
APPEND="console=ttyS0 panic=-1 quiet loglevel=3 ${MKL_VM_APPEND:-}"; ARGS=()
if [ -n "$SHARE" ]; then
  ARGS+=(-virtfs "local,path=$SHARE,mount_tag=host0,security_model=none,id=host0")
  APPEND+=" vmlab.share=host0"
fi
if [ -n "$ROOTFS" ]; then
  ARGS+=(-drive "file=$ROOTFS,if=virtio,format=raw,snapshot=on")
  APPEND+=" vmlab.root=/dev/vda systemd.unified_cgroup_hierarchy=1 systemd.show_status=error"
fi
timeout --foreground -k 5 "$TMO" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -smp "$SMP" \
  -m "$MEM" -M pc -kernel "$KERNEL" -initrd "$W/initrd" -append "$APPEND" -display none \
  -monitor none -serial stdio -no-reboot -nodefaults -vga none \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 "${ARGS[@]}" "$@" </dev/null | tee "${MKL_VM_LOG:-$W/log}"
q=${PIPESTATUS[0]}
{ [ "$q" = 124 ] || [ "$q" = 137 ]; } && { echo "vmlab: timeout after ${TMO}s" >&2; exit 124; }
[ $((q & 1)) = 1 ] && exit $((q >> 1))
echo "vmlab: guest did not report (qemu status $q)" >&2; exit 125
