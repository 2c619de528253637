#!/usr/bin/env bash
# A Debian arm64 root filesystem with the distribution's Python, for running the arm64 runtime
# layer under qemu-user (tests/infra/test_infra_layer_arm64.py).
#
#   layers/arm64-rootfs.sh DEST [SUITE]      (SUITE: trixie, Python 3.13 - Lambda's python3.13)
#
# Needs root, debootstrap and qemu-user-static (the top-level `make emulator` installs them).
# DEST is reused while its stamp matches; it lives outside the clone (~/.cache/kettle/ by
# default) so `make clean` and a fresh clone keep it.
#
# No binfmt_misc needed: debootstrap --foreign only downloads and unpacks; its second stage would
# run arm64 maintainer scripts, so instead every downloaded package is unpacked with dpkg-deb
# (Python needs no maintainer script to run). The tests start the interpreter as
# `qemu-aarch64-static -L DEST DEST/usr/bin/python3.X`.
set -euo pipefail

dest=${1:?usage: arm64-rootfs.sh DEST [SUITE]}
suite=${2:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
key="suite=$suite arch=arm64 variant=minbase include=python3 cpuinfo=neoverse-n1 v1"

if [ "$(cat "$dest/.kettle-rootfs" 2>/dev/null)" = "$key" ]; then
  echo "arm64 root filesystem up to date: $dest ($key)"
  exit 0
fi
for tool in debootstrap dpkg-deb qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "arm64-rootfs.sh: $tool missing (make emulator)" >&2; exit 1; }
done

start=$SECONDS
tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$(dirname "$dest")"
debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$suite" "$tmp" "$mirror"
for deb in "$tmp"/var/cache/apt/archives/*.deb; do
  dpkg-deb -x "$deb" "$tmp"
done
rm -f "$tmp"/var/cache/apt/archives/*.deb

# qemu-user 7.2 passes the host's /proc/cpuinfo through; it describes x86 cores, and the CPU
# detection in onnxruntime (pytorch/cpuinfo) then crashes with a segmentation fault while it maps
# caches to cores. With -L, qemu opens DEST/proc/cpuinfo instead: two Neoverse N1 cores
# (Graviton2, the model QEMU_CPU=neoverse-n1 emulates).
rm -rf "$tmp/proc"
mkdir -p "$tmp/proc"
for i in 0 1; do
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
done > "$tmp/proc/cpuinfo"

python=$(cd "$tmp/usr/bin" && ls python3.* | grep -E '^python3\.[0-9]+$' | head -1)
QEMU_CPU=neoverse-n1 qemu-aarch64-static -L "$tmp" "$tmp/usr/bin/$python" -c \
  'import platform, sys; assert platform.machine() == "aarch64"; print("rootfs python", sys.version.split()[0])'
echo "$key" > "$tmp/.kettle-rootfs"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "arm64 root filesystem built in $((SECONDS - start)) s: $dest ($python)"
