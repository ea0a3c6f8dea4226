#!/usr/bin/env bash
# Directory server benchmark (issue 6): LIST_USERS / LIST_CONTENT latency on a directory of
# USERS users x FILES files, and operations per second with CLIENTS concurrent clients.
# Usage: bench/registry.sh [USERS] [FILES] [CLIENTS]   (defaults 10000 100 100)
# Goal: LIST_USERS and LIST_CONTENT under 50 ms. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p meshfs-registry --example registry_bench -- "${1:-10000}" "${2:-100}" "${3:-100}"
