#!/usr/bin/env bash
# Smoke test of an ARM build under Debian's qemu-user-static (issue 17): the ARM binary prints
# its version, then an ARM node serves a file that this machine's own meshfs downloads
# (BLAKE3-verified by `meshfs get`) and compares byte for byte; the node then stops cleanly on
# SIGTERM. Loopback only.
#
#   packaging/smoke-arm.sh [arm64|armhf] [ARM_BIN [HOST_BIN]]
#
# The architecture defaults to arm64; ARM_BIN to its cross build by packaging/build-deb.sh
# ($CARGO_TARGET_DIR/<rust target>/dist/meshfs), HOST_BIN to the host's dist build, else
# its debug build. Needs: apt-get install qemu-user-static and the architecture's C library
# (libc6-arm64-cross or libc6-armhf-cross, which the cross compilers pull in).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
arch=${1:-arm64}
case $arch in
  arm64) rust_target=aarch64-unknown-linux-gnu qemu_arch=aarch64 sysroot=/usr/aarch64-linux-gnu cross=libc6-arm64-cross ;;
  armhf) rust_target=armv7-unknown-linux-gnueabihf qemu_arch=arm sysroot=/usr/arm-linux-gnueabihf cross=libc6-armhf-cross ;;
  *) echo "unknown architecture $arch (arm64 or armhf)" >&2; exit 2 ;;
esac
arm=${2:-$target_dir/$rust_target/dist/meshfs}
host=${3:-}
if [ -z "$host" ]; then
  host=$target_dir/dist/meshfs
  [ -x "$host" ] || host=$target_dir/debug/meshfs
fi
qemu=$(command -v "qemu-$qemu_arch-static" || command -v "qemu-$qemu_arch" || true)
[ -n "$qemu" ] || { echo "missing qemu-$qemu_arch-static: apt-get install qemu-user-static" >&2; exit 1; }
[ -d "$sysroot/lib" ] || { echo "missing $sysroot: apt-get install $cross" >&2; exit 1; }
[ -x "$arm" ] || { echo "no $arch binary at $arm: run packaging/build-deb.sh $arch first" >&2; exit 1; }
[ -x "$host" ] || { echo "no host binary at $host: cargo build -p meshfs" >&2; exit 1; }

work=$(mktemp -d)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
on_arm() { "$qemu" -L "$sysroot" "$arm" "$@"; }

echo "== $arch meshfs --version"
on_arm --version

echo "== $arch node, $(uname -m) client"
mkdir -p "$work/share"
head -c 5000000 /dev/urandom > "$work/share/clip.bin"
# qemu itself in the background (not through on_arm: a function would run in a subshell, and
# the SIGTERM below would stop that shell and leave the node running).
"$qemu" -L "$sysroot" "$arm" node "$work/share" --listen 127.0.0.1:0 --no-discovery --no-web \
  --state "$work/state" > "$work/node.out" 2> "$work/node.err" &
node_pid=$!
# The node's readiness line (emulation makes the start slow: a minute at most).
for _ in $(seq 600); do
  grep -q '^meshfs node ' "$work/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; echo "$arch node died" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^meshfs node .* on //p' "$work/node.out")
[ -n "$addr" ] || { cat "$work/node.err" >&2; echo "$arch node not ready within 60s" >&2; exit 1; }
echo "$arch node at $addr"
XDG_CONFIG_HOME="$work/config" "$host" get "meshfs://$addr/clip.bin" "$work/got.bin"
cmp "$work/share/clip.bin" "$work/got.bin"
echo "downloaded $(stat -c %s "$work/got.bin") bytes from the $arch node, identical"

kill -TERM "$node_pid"
wait "$node_pid"
node_pid=
echo "$arch smoke test passed"
