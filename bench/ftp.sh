#!/usr/bin/env bash
# FTP benchmark (issue 8): RETR of one SIZE_MIB file through `meshfs node --ftp` vs Debian's
# vsftpd serving the same file, same run, loopback, curl as the client (output to /dev/null).
# Each server is measured RUNS times, alternating, page cache warm for both (the file is read
# once before). Goal: meshfs >= 0.9 x vsftpd.
# Usage: bench/ftp.sh [SIZE_MIB] [RUNS]   (defaults 1024 3). Needs vsftpd and curl; run as root
# (vsftpd wants to chroot). Loopback only; cleans up and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
command -v vsftpd >/dev/null || { echo "needs vsftpd (apt-get install vsftpd)" >&2; exit 1; }
vsftpd_bin=$(command -v vsftpd)
# MESHFS_BIN: a meshfs binary built elsewhere (bench/run sets it after building).
if [ -z "${MESHFS_BIN:-}" ]; then cargo build --quiet --release -p meshfs; fi
bin=${MESHFS_BIN:-$PWD/target/release/meshfs}

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/share" "$work/empty"
head -c "$((size_mib << 20))" /dev/urandom >"$work/share/big.bin"
cat "$work/share/big.bin" >/dev/null

# vsftpd: anonymous, read-only, passive ports on loopback.
vport=$((20000 + RANDOM % 10000))
cat >"$work/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$vport
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=$work/share
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40999
secure_chroot_dir=$work/empty
seccomp_sandbox=NO
xferlog_enable=NO
CONF
"$vsftpd_bin" "$work/vsftpd.conf" &
pids+=($!)

"$bin" node "$work/share" --listen 127.0.0.1:0 --no-web --ftp 127.0.0.1:0 \
  --ftp-passive-ports 41000-41999 >"$work/node.out" 2>"$work/node.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^ftp ' "$work/node.out" && break; sleep 0.05; done
mport=$(awk '/^ftp /{split($2, a, ":"); print a[2]}' "$work/node.out")
for _ in $(seq 200); do curl -s "ftp://127.0.0.1:$vport/" >/dev/null && break; sleep 0.05; done

speed() { # URL -> MB/s
  curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1 / 1e6}'
}
m=(); v=()
for i in $(seq "$runs"); do
  m+=("$(speed "ftp://127.0.0.1:$mport/big.bin")")
  v+=("$(speed "ftp://127.0.0.1:$vport/big.bin")")
done
best() { printf '%s\n' "$@" | sort -n | tail -1; }
mb=$(best "${m[@]}"); vb=$(best "${v[@]}")
echo "RETR ${size_mib} MiB over loopback, best of $runs (MB/s)"
echo "  meshfs ftp: ${m[*]}  -> $mb"
echo "  vsftpd:     ${v[*]}  -> $vb"
awk -v a="$mb" -v b="$vb" 'BEGIN { printf "  ratio meshfs/vsftpd: %.2f (goal >= 0.90)\n", a / b }'
