#!/usr/bin/env bash
# Runs mainstream's camera code against a real V4L2 driver: the kernel's virtual
# camera `vivid`, inside a qemu VM (TCG; the build machines have no media support,
# no module loading and no usable KVM).
#
# What it does:
#   1. installs qemu-system-x86 with apt-get if qemu-system-x86_64 is missing (needs root);
#   2. fetches Debian's kernel image (linux-image-<ver>-amd64, the version the
#      `linux-image-amd64` metapackage names, or $KERNEL_PKG) and busybox-static with
#      `apt-get download`, and unpacks them (once) under target/vivid/;
#   3. builds the static probe like the appliance binary: `cargo build --profile
#      appliance --target x86_64-unknown-linux-musl --example vivid_probe` (a minute or
#      two once `mainstream` itself was built that way, as CI does; from scratch it
#      compiles every dependency for musl, 10+ minutes on 2 cores), or takes
#      $VIVID_PROBE, a prebuilt static binary;
#   4. packs an initramfs: busybox, the media modules (decompressed), the probe, and
#      tests/vivid/init, which loads vivid with two capture nodes and runs the probe;
#   5. boots it with qemu-system-x86_64 -accel tcg and reads the probe's
#      `VIVID-RESULT: N passed, M failed` line from the serial console.
# Exit status 0 only if that line is present and M is 0. The console log is kept in
# target/vivid/console.log. Reruns reuse the downloads and the unpacked kernel.
#
# Usage: bash tests/vivid/run.sh          (from anywhere)
#        VIVID_PROBE=/path/to/vivid_probe bash tests/vivid/run.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work="$root/target/vivid"
mkdir -p "$work/debs"

log() { echo "vivid: $*" >&2; }

# 1. qemu
if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        log "qemu-system-x86_64 missing; install qemu-system-x86 (apt-get) as root"; exit 2
    fi
    log "installing qemu-system-x86"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi

# 2. kernel and busybox packages
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$KERNEL_PKG" ]; then
        apt-get update -qq
        KERNEL_PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
fi
[ -n "$KERNEL_PKG" ] || { log "cannot find a linux-image package"; exit 2; }
fetch() { # package name -> path of its .deb in $work/debs
    local deb
    deb=$(ls "$work/debs/$1"_*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        log "downloading $1"
        (cd "$work/debs" && apt-get download "$1" 2>/dev/null >/dev/null) \
            || (cd "$work/debs" && apt-get download "$1")
        deb=$(ls "$work/debs/$1"_*.deb | head -1)
    fi
    echo "$deb"
}
kdeb=$(fetch "$KERNEL_PKG")
bdeb=$(fetch busybox-static)
kdir="$work/kernel-$KERNEL_PKG"
if [ ! -d "$kdir" ]; then
    log "unpacking $(basename "$kdeb")"
    dpkg -x "$kdeb" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
fi
if [ ! -x "$work/busybox/bin/busybox" ]; then
    rm -rf "$work/busybox"; dpkg -x "$bdeb" "$work/busybox"
fi
bb="$work/busybox/bin/busybox"
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}

# 3. probe
if [ -n "${VIVID_PROBE:-}" ]; then
    probe=$VIVID_PROBE
else
    log "building the probe (musl, appliance profile)"
    (cd "$root" && cargo build --profile appliance --target x86_64-unknown-linux-musl \
        --example vivid_probe)
    probe="${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/appliance/examples/vivid_probe"
fi
if command -v file >/dev/null && ! file -L "$probe" | grep -q 'static'; then
    log "$probe is not a static binary"; exit 2
fi

# 4. initramfs
ird="$work/initramfs"
rm -rf "$ird"
mkdir -p "$ird"/{bin,lib/modules,proc,sys,dev,tmp}
cp "$bb" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
# Debug info is of no use in the VM and would bloat the initramfs.
strip -o "$ird/probe" "$probe" 2>/dev/null || cp "$probe" "$ird/probe"
cp "$here/init" "$ird/init"
chmod +x "$ird/init" "$ird/probe"
# Load order follows each module's depends= (no depmod/modprobe in the VM).
mods="mc videodev videobuf2-common videobuf2-v4l2 rc-core cec v4l2-dv-timings v4l2-tpg
      videobuf2-memops videobuf2-dma-contig videobuf2-vmalloc vivid"
for m in $mods; do
    f=$(find "$kdir/lib/modules/$kver" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { log "module $m not found in $KERNEL_PKG"; exit 2; }
    case "$f" in
        *.ko.xz) xz -dc "$f" > "$ird/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "$ird/lib/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$f" > "$ird/lib/modules/$m.ko" ;;
        *) cp "$f" "$ird/lib/modules/$m.ko" ;;
    esac
done
echo "$mods" | tr -s ' \n' ' ' > "$ird/lib/modules/order"
(cd "$ird" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.cpio.gz")

# 5. boot
log "booting $kver under TCG"
start=$(date +%s)
set +e
timeout "${VIVID_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 \
    -kernel "$vmlinuz" -initrd "$work/initrd.cpio.gz" \
    -append "console=ttyS0 rdinit=/init loglevel=3 panic=-1" \
    -nographic -no-reboot > "$work/console.log" 2>&1
qrc=$?
set -e
log "VM finished in $(( $(date +%s) - start )) s (qemu exit $qrc)"
grep -E '^(CHECK|VIVID-)' "$work/console.log" | tr -d '\r' || true
result=$(grep -a -o 'VIVID-RESULT: [0-9]* passed, [0-9]* failed' "$work/console.log" | tail -1 || true)
if [ -z "$result" ]; then
    log "no result line; see $work/console.log"; exit 1
fi
case "$result" in
    *", 0 failed") exit 0 ;;
    *) exit 1 ;;
esac
