#!/usr/bin/env bash
# `meshfs get` over TLS against curl ← nginx over HTTPS (TLS 1.3, one cipher per row), the
# same file, one machine: MB/s and whole-machine CPU seconds per GiB (from /proc/stat), the
# server pinned to core 0 and the client to core 1 (taskset). The plaintext `meshfs get` is
# there for reference; each row also gives its server's CPU (the node, or nginx's processes) per
# GiB from /proc/PID/stat. Loopback only; the file lives in /dev/shm.
#   bench/tls.sh [SIZE_MB] [RUNS]      (defaults 1024 and 1; each figure is the best of RUNS)
# Needs root to install nginx-light from Debian when missing. MESHFS_BIN picks the binary;
# MESHFS_BASE_BIN adds the verified and the plaintext `get` of another build (an A/B in the same
# run).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-1}

if ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl curl >/dev/null
fi
if [ -z "${MESHFS_BIN:-}" ]; then
  cargo build --quiet --release -p meshfs
  MESHFS_BIN=$PWD/target/release/meshfs
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /dev/shm/meshfs-tls-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/share" "$work/out" "$work/node-state" "$work/user"
head -c "$((size_mb << 20))" /dev/urandom >"$work/share/big.bin"
bytes=$((size_mb << 20))
hz=$(getconf CLK_TCK)
ncores=$(nproc)
[ "$ncores" -ge 2 ] || { echo "needs 2 cores to pin server and client apart" >&2; exit 2; }

# Busy jiffies of the whole machine (everything but idle and iowait).
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

# CPU jiffies (user + system) of the server's processes: the node, or nginx's master and
# workers (`server_pids`, set before each measure).
server_pids=()
server_jiffies() {
  local p total=0
  for p in "${server_pids[@]}"; do
    total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
  done
  echo "$total"
}

# measure NAME CMD...: run the client command RUNS times, keep the best MB/s, its machine CPU
# and its server's CPU (s/GiB).
best_mbps=0 best_cpu=0 best_srv=0
measure() {
  best_mbps=0 best_cpu=0 best_srv=0
  for _ in $(seq "$runs"); do
    rm -f "$work/out/"*
    local b0 t0 t1 b1 s0 s1
    b0=$(busy); s0=$(server_jiffies); t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N); s1=$(server_jiffies); b1=$(busy)
    cmp -s "$work/share/big.bin" "$work/out/big.bin" || { echo "copy differs: $*" >&2; exit 1; }
    local mbps cpu srv
    mbps=$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)
    cpu=$(echo "($b1 - $b0) / $hz / ($bytes / 1073741824)" | bc -l)
    srv=$(echo "($s1 - $s0) / $hz / ($bytes / 1073741824)" | bc -l)
    if [ "$(echo "$mbps > $best_mbps" | bc -l)" = 1 ]; then best_mbps=$mbps best_cpu=$cpu best_srv=$srv; fi
  done
}

# --- meshfs node on core 0 ---
export XDG_CONFIG_HOME=$work/user XDG_STATE_HOME=$work/user
taskset -c 0 "$MESHFS_BIN" node "$work/share" --listen 127.0.0.1:0 --name bench --no-discovery \
  --no-web --state "$work/node-state" >"$work/node.out" 2>"$work/node.err" &
pids+=($!)
node_pid=$!
for _ in $(seq 200); do grep -q ' on ' "$work/node.out" 2>/dev/null && break; sleep 0.05; done
addr=$(head -1 "$work/node.out" | awk '{print $NF}')
[ -n "$addr" ] || { echo "the node did not start" >&2; cat "$work/node.err" >&2; exit 1; }

# --- nginx on core 0: one server block per TLS 1.3 cipher ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
declare -A port=([TLS_AES_128_GCM_SHA256]=18443 [TLS_AES_256_GCM_SHA384]=18444 [TLS_CHACHA20_POLY1305_SHA256]=18445)
servers=""
for c in "${!port[@]}"; do
  servers+="server { listen 127.0.0.1:${port[$c]} ssl; root $work/share;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites $c; }
"
done
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  $servers
}
EOF
taskset -c 0 "$nginx_bin" -c "$work/nginx.conf" -g 'daemon on;'
for _ in $(seq 200); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done
nginx_pids=("$(cat "$work/nginx.pid")" $(pgrep -P "$(cat "$work/nginx.pid")"))

get() { taskset -c 1 "$MESHFS_BIN" "$@" "meshfs://$addr/big.bin" "$work/out/big.bin"; }
curl_tls() {
  taskset -c 1 curl -sSf --insecure --tlsv1.3 --tls13-ciphers "$1" -o "$work/out/big.bin" \
    "https://127.0.0.1:${port[$1]}/big.bin"
}

# meshfs's cipher: rustls with AES-128-GCM first on CPUs with AES instructions, ChaCha20 first
# without (meshfs_core::tls::provider); there is no flag to force another, so it shows here.
if grep -qw aes /proc/cpuinfo; then mcipher=TLS_AES_128_GCM_SHA256; else mcipher=TLS_CHACHA20_POLY1305_SHA256; fi

echo "## tls — $(date -u +%Y-%m-%dT%H:%MZ), ${size_mb} MiB, best of $runs, $(nproc) cores, server on core 0, client on core 1"
echo
echo "| tool | cipher | MB/s | CPU s/GiB (machine) | server CPU s/GiB | meshfs ratio |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
server_pids=("$node_pid")
measure get get
m_mbps=$best_mbps m_cpu=$best_cpu
printf '| `meshfs get` (TLS, BLAKE3 verified) | %s | %.1f | %.2f | %.2f | 1.00× |\n' "$mcipher" "$m_mbps" "$m_cpu" "$best_srv"
if [ -n "${MESHFS_BASE_BIN:-}" ]; then
  base_get() { taskset -c 1 "$MESHFS_BASE_BIN" "$@" "meshfs://$addr/big.bin" "$work/out/big.bin"; }
  measure base_get get
  printf '| `meshfs get` (TLS, verified), base build | %s | %.1f | %.2f | %.2f | %.2f× |\n' "$mcipher" "$best_mbps" "$best_cpu" "$best_srv" "$(echo "$m_mbps / $best_mbps" | bc -l)"
fi
measure get get --no-verify
nv_mbps=$best_mbps
printf '| `meshfs get --no-verify` (TLS) | %s | %.1f | %.2f | %.2f | — |\n' "$mcipher" "$best_mbps" "$best_cpu" "$best_srv"
server_pids=("${nginx_pids[@]}")
for c in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
  measure curl_tls "$c"
  printf '| curl ← nginx (HTTPS) | %s | %.1f | %.2f | %.2f | %.2f× verified, %.2f× no-verify |\n' \
    "$c" "$best_mbps" "$best_cpu" "$best_srv" "$(echo "$m_mbps / $best_mbps" | bc -l)" "$(echo "$nv_mbps / $best_mbps" | bc -l)"
done
server_pids=("$node_pid")
measure get --plaintext get
p_mbps=$best_mbps
printf '| `meshfs --plaintext get` (reference) | none | %.1f | %.2f | %.2f | — |\n' "$best_mbps" "$best_cpu" "$best_srv"
if [ -n "${MESHFS_BASE_BIN:-}" ]; then
  measure base_get --plaintext get
  printf '| `meshfs --plaintext get`, base build | none | %.1f | %.2f | %.2f | %.2f× |\n' "$best_mbps" "$best_cpu" "$best_srv" "$(echo "$p_mbps / $best_mbps" | bc -l)"
fi
