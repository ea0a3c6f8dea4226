#!/usr/bin/env bash
# FUSE mount benchmark (issue 4): one node and one `meshfs mount` of it on loopback.
#  1. sequential read of a SIZE_MIB file through the mount (cold page cache) vs `meshfs get`
#     and `meshfs cat` of the same file;
#  2. median latency of N random 4 KiB preads through the mount vs one protocol round trip
#     (`pread <off> 4096 <path>` on a raw socket).
# Goals (design.md): sequential >= 50% of `meshfs get`; random median <= 3x one round trip.
# The comparison with sshfs belongs to the benchmark issue (it needs sshd on loopback).
# Usage: bench/fuse.sh [SIZE_MIB] [N]   (defaults 1024 1000; MESHFS_BIN=path skips the build). Needs root (drop_caches) and
# /dev/fuse. Loopback only; cleans up and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
n=${2:-1000}
if [ -n "${MESHFS_BIN:-}" ]; then
  bin=$MESHFS_BIN # an already built binary
else
  cargo build --quiet --release -p meshfs
  bin=$PWD/target/release/meshfs
fi

work=$(mktemp -d)
node_pid=
mount_pid=
cleanup() {
  fusermount3 -u -z "$work/mnt" 2>/dev/null || true
  [ -n "$mount_pid" ] && kill "$mount_pid" 2>/dev/null || true
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/share" "$work/mnt" "$work/dl"
head -c "$((size_mib << 20))" /dev/urandom >"$work/share/big.bin"

# Wait for a process's readiness line (its first stdout line), at most 20 s.
wait_line() {
  for _ in $(seq 200); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  echo "no readiness line in $1" >&2
  exit 1
}

"$bin" node "$work/share" --listen 127.0.0.1:0 --name bench >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
wait_line "$work/node.out"
addr=$(head -1 "$work/node.out" | awk '{print $NF}')
"$bin" mount "$work/mnt" --node "$addr" --no-discovery >"$work/mount.out" 2>"$work/mount.err" &
mount_pid=$!
wait_line "$work/mount.out"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s (%.2f s)", b / s / 1e6, s }'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
bytes=$((size_mib << 20))

echo "file: $size_mib MiB on node $addr"
drop; t=$(secs dd if="$work/mnt/bench/big.bin" of=/dev/null bs=1M)
echo "sequential, mount (dd bs=1M):      $(rate "$bytes" "$t")"
drop; t=$(secs dd if="$work/mnt/bench/big.bin" of=/dev/null bs=128k)
echo "sequential, mount (dd bs=128k):    $(rate "$bytes" "$t")"
drop; t=$(secs "$bin" get --no-verify "meshfs://$addr/big.bin" "$work/dl/big.bin")
echo "meshfs get --no-verify (to disk):  $(rate "$bytes" "$t")"
drop; t=$(secs sh -c "'$bin' cat 'meshfs://$addr/big.bin' >/dev/null")
echo "meshfs cat > /dev/null:            $(rate "$bytes" "$t")"
secs dd if="$work/mnt/bench/big.bin" of=/dev/null bs=1M >/dev/null
t=$(secs dd if="$work/mnt/bench/big.bin" of=/dev/null bs=1M)
echo "sequential, mount, page cache hot: $(rate "$bytes" "$t") (keep_cache on reopen)"

drop
python3 - "$work/mnt/bench/big.bin" "$addr" "$n" <<'EOF'
import os, random, socket, statistics, sys, time
path, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(path)
rng = random.Random(42)
offs = [rng.randrange(0, size - 4096) // 4096 * 4096 for _ in range(n)]
fd = os.open(path, os.O_RDONLY)
lat = []
for o in offs:
    t = time.perf_counter()
    assert len(os.pread(fd, 4096, o)) == 4096
    lat.append(time.perf_counter() - t)
os.close(fd)
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
rtt = []
for o in rng.sample(range(0, size - 4096, 4096), n):
    t = time.perf_counter()
    s.sendall(b"pread %d 4096 big.bin\n" % o)
    k = int(f.readline().split()[1])
    assert len(f.read(k)) == 4096
    rtt.append(time.perf_counter() - t)
m, r = statistics.median(lat), statistics.median(rtt)
p90 = sorted(lat)[int(n * 0.9)]
print(f"random 4 KiB pread, mount:         median {m * 1e6:.0f} us, p90 {p90 * 1e6:.0f} us ({n} reads, cold cache)")
print(f"one protocol round trip (pread):   median {r * 1e6:.0f} us")
print(f"random read / round trip:          {m / r:.2f}x (goal <= 3x)")
EOF
