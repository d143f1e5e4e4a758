#!/usr/bin/env bash
# Builds a busybox image offline, from the node's own statically linked busybox (Debian's
# busybox-static package), as a `docker save` tarball that `minikubelet image import` (and
# `docker load`, `ctr images import`) read:
#
#   scripts/busybox-image.sh OUT.tar NAME [BUSYBOX]
#     OUT.tar  the archive to write
#     NAME     the image reference it is tagged with, e.g. localhost/busybox:test
#     BUSYBOX  the binary to package (default /bin/busybox); it must be static
#
# The image is shaped like the public busybox image: /bin/busybox with a symbolic link for each
# of its applets (`busybox --list`), /etc/passwd and /etc/group with root (in wheel) and nobody, /tmp
# (1777), and a config with the usual PATH and `Cmd ["sh"]`. One uncompressed layer; the same
# busybox gives the same image digest (fixed owners, mode bits, order and mtime).
# Used by the tests (tests/common/test_image.rs), the VM tests and scripts/demo.sh offline.
set -euo pipefail
OUT=${1:?usage: busybox-image.sh OUT.tar NAME [BUSYBOX]}
NAME=${2:?usage: busybox-image.sh OUT.tar NAME [BUSYBOX]}
BB=${3:-/bin/busybox}
[ -x "$BB" ] || { echo "busybox-image.sh: $BB: no such executable (apt-get install busybox-static)" >&2; exit 2; }
if command -v file >/dev/null && ! file -L "$BB" | grep -q 'statically linked'; then
  echo "busybox-image.sh: $BB is not statically linked: install Debian's busybox-static" >&2; exit 2
fi
case $(uname -m) in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
R=$W/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/root" "$R/home" "$R/tmp" "$R/usr" "$R/var"
chmod 1777 "$R/tmp"
cp "$BB" "$R/bin/busybox"; chmod 755 "$R/bin/busybox"
for applet in $("$BB" --list); do
  case $applet in busybox|*/*) ;; *) ln -s busybox "$R/bin/$applet" ;; esac
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$R/etc/passwd"
# root is a member of wheel, as in the public image: a container's groups merge such memberships
# (supplementalGroupsPolicy Merge), so `id` says groups=0(root),10(wheel) there too.
printf 'root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\n' > "$R/etc/group"
chmod 644 "$R/etc/passwd" "$R/etc/group"
mkdir "$W/img"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 --format=gnu \
  -C "$R" -cf "$W/img/layer.tar" $(cd "$R" && ls -A)
diff_id=sha256:$(sha256sum "$W/img/layer.tar" | cut -d' ' -f1)
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
  "$ARCH" "$diff_id" > "$W/img/config.json"
printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$NAME" > "$W/img/manifest.json"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 \
  -C "$W/img" -cf "$OUT.tmp.$$" manifest.json config.json layer.tar
mv "$OUT.tmp.$$" "$OUT"
echo "busybox-image.sh: $OUT: $NAME ($("$BB" 2>&1 | head -n 1 | cut -d' ' -f1-2), $ARCH, layer $diff_id)"
