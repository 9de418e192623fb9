#!/usr/bin/env bash
# Build the sandbox microVM's assets from Debian packages: a kernel (linux-image-cloud-amd64, extracted, not
# installed) and a busybox-static initramfs with the virtio modules and our /init. Idempotent: skips at once when
# the assets exist. Installs qemu-system-x86 with apt-get when run as root and QEMU is missing.
#   scripts/build_microvm_assets.sh [DIR]     (default: .venv/share/hybrid-llm/microvm; HYBRID_MICROVM_DIR too)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${HYBRID_MICROVM_DIR:-.venv/share/hybrid-llm/microvm}}
INIT=activities/sandbox/microvm_init.sh
VERSION=$(sha256sum "$INIT" | cut -c1-16)

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing qemu-system-x86 (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           qemu-system-x86 >/dev/null; }
  else
    echo "setup: qemu-system-x86_64 not found: the microvm sandbox backend stays off (apt-get install qemu-system-x86)"
  fi
fi

if [ -f "$DIR/vmlinuz" ] && [ -f "$DIR/initramfs.cpio.gz" ] && [ "$(cat "$DIR/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  echo "setup: microvm assets ok ($DIR)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "setup: no apt-get/dpkg-deb: cannot build the microvm assets; the microvm backend stays off" >&2
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$KPKG" ]; then
  apt-get update -qq
  KPKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
(cd "$WORK" && apt-get download -q "$KPKG" busybox-static >/dev/null 2>&1) \
  || (apt-get update -qq && cd "$WORK" && apt-get download -q "$KPKG" busybox-static >/dev/null)
dpkg-deb -x "$WORK"/linux-image-*.deb "$WORK/kernel"
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/busybox"

ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,work,out,lib/modules,etc}
cp "$WORK/busybox/bin/busybox" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
MODS=$(echo "$WORK"/kernel/lib/modules/*/kernel)
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio drivers/block/virtio_blk; do
  f="$MODS/$m.ko"
  [ -f "$f" ] || f="$f.xz"
  case "$f" in *.xz) xz -dc "$f" > "$ROOT/lib/modules/$(basename "$m").ko" ;; *) cp "$f" "$ROOT/lib/modules/" ;; esac
done
echo 'nobody:x:65534:65534:nobody:/work:/bin/sh' > "$ROOT/etc/passwd"
echo 'nogroup:x:65534:' > "$ROOT/etc/group"
install -m 0755 "$INIT" "$ROOT/init"

mkdir -p "$DIR"
BB="$WORK/busybox/bin/busybox"
(cd "$ROOT" && find . | "$BB" cpio -o -H newc 2>/dev/null | gzip -1) > "$DIR/initramfs.cpio.gz.tmp"
cp "$WORK"/kernel/boot/vmlinuz-* "$DIR/vmlinuz.tmp"
mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
mv "$DIR/initramfs.cpio.gz.tmp" "$DIR/initramfs.cpio.gz"
echo "$KPKG" > "$DIR/KERNEL"
echo "$VERSION" > "$DIR/VERSION"
echo "setup: microvm assets built ($DIR: $KPKG + busybox-static)"
