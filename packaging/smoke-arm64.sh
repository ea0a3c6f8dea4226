#!/usr/bin/env bash
# Smoke test of the arm64 build under Debian's qemu-user-static (issue 17): the arm64 binary
# prints its version, then an arm64 node serves a file that this machine's own meshfs
# downloads (BLAKE3-verified by `meshfs get`) and compares byte for byte; the node then stops
# cleanly on SIGTERM. Loopback only.
#
#   packaging/smoke-arm64.sh [ARM64_BIN [HOST_BIN]]
#
# ARM64_BIN defaults to the cross build of packaging/build-deb.sh arm64
# ($CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/meshfs), HOST_BIN to the host's
# release build, else its debug build. Needs: apt-get install qemu-user-static
# libc6-arm64-cross (the arm64 C library qemu runs the binary against).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
arm=${1:-$target_dir/aarch64-unknown-linux-gnu/release/meshfs}
host=${2:-}
if [ -z "$host" ]; then
  host=$target_dir/release/meshfs
  [ -x "$host" ] || host=$target_dir/debug/meshfs
fi
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
sysroot=/usr/aarch64-linux-gnu
[ -n "$qemu" ] || { echo "missing qemu-aarch64-static: apt-get install qemu-user-static" >&2; exit 1; }
[ -d "$sysroot/lib" ] || { echo "missing $sysroot: apt-get install libc6-arm64-cross" >&2; exit 1; }
[ -x "$arm" ] || { echo "no arm64 binary at $arm: run packaging/build-deb.sh arm64 first" >&2; exit 1; }
[ -x "$host" ] || { echo "no host binary at $host: cargo build -p meshfs" >&2; exit 1; }

work=$(mktemp -d)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
arm64() { "$qemu" -L "$sysroot" "$arm" "$@"; }

echo "== arm64 meshfs --version"
arm64 --version

echo "== arm64 node, amd64 client"
mkdir -p "$work/share"
head -c 5000000 /dev/urandom > "$work/share/clip.bin"
arm64 node "$work/share" --listen 127.0.0.1:0 --no-discovery --no-web \
  --state "$work/state" > "$work/node.out" 2> "$work/node.err" &
node_pid=$!
# The node's readiness line (emulation makes the start slow: a minute at most).
for _ in $(seq 600); do
  grep -q '^meshfs node ' "$work/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; echo "arm64 node died" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^meshfs node .* on //p' "$work/node.out")
[ -n "$addr" ] || { cat "$work/node.err" >&2; echo "arm64 node not ready within 60s" >&2; exit 1; }
echo "arm64 node at $addr"
XDG_CONFIG_HOME="$work/config" "$host" get "meshfs://$addr/clip.bin" "$work/got.bin"
cmp "$work/share/clip.bin" "$work/got.bin"
echo "downloaded $(stat -c %s "$work/got.bin") bytes from the arm64 node, identical"

kill -TERM "$node_pid"
wait "$node_pid"
node_pid=
echo "arm64 smoke test passed"
