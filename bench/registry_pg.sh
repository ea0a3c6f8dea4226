#!/usr/bin/env bash
# The directory's stores side by side (issue 18): SQLite, PostgreSQL with one instance, and
# PostgreSQL with two instances, on USERS users x FILES files with CLIENTS clients:
# LIST_USERS / LIST_CONTENT latency (one client, then under load) and ops/s, and fsynced
# writes. Starts a throw-away PostgreSQL (Debian's) in a temporary folder, as nobody when
# root, on a free loopback port; stops and deletes it at the end.
# Usage: bench/registry_pg.sh [USERS] [FILES] [CLIENTS]   (defaults 100000 100 100)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000} files=${2:-100} clients=${3:-100}
bin=${MESHFS_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
[ -x "$bin/initdb" ] || { echo "no PostgreSQL: apt-get install postgresql" >&2; exit 1; }
dir=$(mktemp -d /tmp/meshfs-pg-bench.XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody:nogroup "$dir"
  as=(runuser -u nobody --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -U meshfs --auth=trust --no-locale -E UTF8 >/dev/null
# Debian's defaults but for memory: 1 GiB of shared buffers, as SQLite gets the page cache.
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
  "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=1GB" \
  start >/dev/null
cargo run --quiet --release -p meshfs-registry --example registry_pg_bench -- \
  "$users" "$files" "$clients" "postgres://meshfs@127.0.0.1:$port/postgres"
