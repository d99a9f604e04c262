#!/usr/bin/env bash
# Installs what building and testing mainstream needs on a fresh Debian
# bookworm machine (run as root, or with sudo available). Idempotent: a second
# run only checks. Used by tools/demo.sh, tools/test.sh and .ci/run.
#
#   tools/setup.sh            host build and tests
#   tools/setup.sh --cross    also the musl, aarch64 and armv7 cross toolchains
#                             and qemu-user
#   tools/setup.sh --vivid    also qemu-system-x86, for the vivid camera VM
#                             (tests/vivid/run.sh); combinable with --cross
set -euo pipefail

cross=0
vivid=0
for a in "$@"; do
  case "$a" in
    --cross) cross=1 ;;
    --vivid) vivid=1 ;;
    *) echo "usage: tools/setup.sh [--cross] [--vivid]" >&2; exit 2 ;;
  esac
done

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# Debian packages: libclang for v4l2-sys's bindgen, systemd for systemd-analyze,
# file to check that binaries are static, python3 for tools/eval.py (its
# report is checked by tests/eval_report.rs; standard library only),
# mosquitto + mosquitto-clients + openssl for tests/mqtt.rs (a real broker on
# loopback, its TLS certificates made on the fly).
pkgs=(libclang-dev systemd file ca-certificates python3 mosquitto mosquitto-clients openssl)
if [ "$cross" -eq 1 ]; then
  # libc6-dev-*-cross and linux-libc-dev-*-cross: the headers bindgen
  # (v4l2-sys) reads when targeting aarch64 and armv7. The armv7 build links
  # glibc statically, so libc6-dev-armhf-cross also brings the libc.a it links.
  pkgs+=(musl-tools qemu-user
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross linux-libc-dev-armhf-cross)
fi
if [ "$vivid" -eq 1 ]; then
  # tests/vivid/run.sh: the VM itself; binutils (strip) and gzip for the
  # initramfs; xz-utils and zstd for compressed kernel modules. The kernel and
  # busybox-static packages are fetched by run.sh with `apt-get download`.
  pkgs+=(qemu-system-x86 binutils gzip xz-utils zstd)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if [ "$cross" -eq 1 ]; then
  rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
    armv7-unknown-linux-gnueabihf >/dev/null
fi
echo "setup: ok"
