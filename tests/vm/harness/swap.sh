#!/bin/sh
# Harness self-test (busybox tier, no agent): a real swap file can be switched on in the VM, so the
# agent's swap refusal can be tested against /proc/swaps as a user's machine has it. tmpfs (the
# initramfs) cannot hold swap, so the file lives on an ext4 image that run-all.sh attaches as a
# virtio disk (kernel cmdline mkl.disk=/dev/vdX).
. ./lib.sh
disk=$(sed -n 's/.*mkl\.disk=\([^ ]*\).*/\1/p' /proc/cmdline)
check swap_disk_present '[ -b "$disk" ]'
mkdir -p /mnt/swapfs
check swap_mount_ext4 'mount -t ext4 "$disk" /mnt/swapfs'
dd if=/dev/zero of=/mnt/swapfs/swapfile bs=1M count=32 2>/dev/null; chmod 600 /mnt/swapfs/swapfile
check swap_mkswap 'mkswap /mnt/swapfs/swapfile >/dev/null'
check swap_on 'swapon /mnt/swapfs/swapfile && [ "$(wc -l < /proc/swaps)" -gt 1 ]'
note "$(cat /proc/swaps | tail -1)"
check swap_off 'swapoff /mnt/swapfs/swapfile && [ "$(wc -l < /proc/swaps)" -eq 1 ]'
umount /mnt/swapfs
finish
