# Sourced by the host-side VM scripts: one place for the cache layout.
# The cache lives outside the clone (never committed) and is keyed by kernel version, because the
# kernel package moves with Debian security updates; the rootfs and busybox are kernel-independent.
MKL_VM_CACHE=${MKL_VM_CACHE:-/var/cache/minikubelet-vm}
export MKL_VM_CACHE
# kernel_dir: the current kernel's cache dir (after fetch.sh has written $MKL_VM_CACHE/KVER)
kernel_dir() { echo "$MKL_VM_CACHE/kernel/$(cat "$MKL_VM_CACHE/KVER")"; }
# content_key FILE...: short hash of files, so a cached artefact is rebuilt when its recipe changes
content_key() { cat "$@" | sha256sum | cut -c1-12; }
