#!/usr/bin/env python3
"""FUSE against sshfs and rclone mount: the same file read through `meshfs mount`, `sshfs`
(OpenSSH on loopback) and `rclone mount` (`:http:` over nginx).
  - sequential: `dd bs=1M` of the whole file, cold (caches dropped), median of RUNS: MB/s and
    the whole machine's busy CPU seconds per GiB (/proc/stat);
  - random: 4 KiB preads at random aligned offsets, median latency, each tool on a fresh
    mount with caches dropped (so no tool answers from what the sequential pass left cached);
  - one protocol round trip (`pread` of 4 KiB on a raw socket to the node), for scale;
  - `meshfs cat` and curl <- nginx of the same file to /dev/null (no mount), for scale;
  - the requests one random read through the mount asks of the node (a counting relay).
The servers (node, sshd, nginx) run on core 0, the mounts and the readers on core 1 (BENCH_PIN=0:
anywhere).
Targets (issue 22): sequential >= 5x sshfs (quiet machine) and >= 2x rclone mount; random median
<= 0.5x sshfs and <= 2 protocol round trips; CPU per GiB reported beside `meshfs cat`'s.
Usage: sshfs.py SIZE_MIB SAMPLES [RUNS]   (RUNS defaults to 5; root: drop_caches, FUSE)"""

import atexit
import os
import random
import socket
import subprocess
import sys
import time

from common import (BIN, Relay, busy_seconds, drop_caches, meshfs_mount, meshfs_node, median, nginx, pinned, private_sshd,
                    rclone_mount, sshfs_mount, table, unmount, work_dir)

size_mib, samples = int(sys.argv[1]), int(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
size = size_mib << 20
# Servers on core 0, clients (mounts, dd, this script's preads) on core 1.
# BENCH_PIN=0: let the scheduler place everything (as runs before 2026-12-07 did).
PIN = os.cpu_count() >= 2 and os.environ.get("BENCH_PIN", "1") != "0"
SERVER_CPU, CLIENT_CPU = (0, 1) if PIN else (None, None)
PLACEMENT = ("pinned: servers on core 0, mounts and readers on core 1" if PIN
             else "unpinned (BENCH_PIN=0): the scheduler places every process")
print(f"placement: {PLACEMENT}", flush=True)
if CLIENT_CPU is not None:
    os.sched_setaffinity(0, {CLIENT_CPU})
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
os.chmod(w, 0o755)
src = os.path.join(share, "big.bin")
with open(src, "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
mounted = []


@atexit.register
def unmount_all():
    for m in mounted:
        subprocess.run(["fusermount3", "-u", "-z", m], stderr=subprocess.DEVNULL)


_, addr = meshfs_node(share, cpu=SERVER_CPU)
ssh_port, key, _ = private_sshd(w, cpu=SERVER_CPU)
http_port = nginx(w, share, "sendfile on; autoindex on;", cpu=SERVER_CPU)
# (name, mount(mnt) -> process or None, the file's path under the mount)
TOOLS = [
    ("meshfs", lambda m: meshfs_mount(m, addr, cpu=CLIENT_CPU), "bench/big.bin"),
    ("sshfs", lambda m: sshfs_mount(m, share, ssh_port, key, cpu=CLIENT_CPU), "big.bin"),
    ("rclone mount (http, nginx)",
     lambda m: rclone_mount(m, f"http://127.0.0.1:{http_port}/", "big.bin", cpu=CLIENT_CPU), "big.bin"),
]


def fresh_mount(i, phase, run):
    """Mount tool `i` afresh; returns (file path, unmount())."""
    _, mount, rel = TOOLS[i]
    mnt = os.path.join(w, f"mnt-{i}-{phase}")
    proc = mount(mnt)
    mounted.append(mnt)

    def done():
        unmount(mnt, proc)
        mounted.remove(mnt)

    try:
        return run(os.path.join(mnt, rel))
    finally:
        done()


def sequential(path):
    """Median MB/s and median machine CPU s/GiB of `runs` cold reads of `path` with dd."""
    return reader(["dd", f"if={path}", "of=/dev/null", "bs=1M"])


def reader(cmd):
    """Median MB/s and median machine CPU s/GiB of `runs` cold runs of `cmd` (reading the file
    to /dev/null, on the client core): one run is at the mercy of the other core."""
    rates, cpu = [], []
    for _ in range(runs):
        drop_caches()
        b0, t0 = busy_seconds(), time.perf_counter()
        subprocess.run(pinned(cmd, CLIENT_CPU), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1, b1 = time.perf_counter(), busy_seconds()
        rates.append(size / (t1 - t0) / 1e6)
        cpu.append((b1 - b0) / (size / (1 << 30)))
    return median(rates), median(cpu)


def random_reads(path):
    """Median µs of `samples` 4 KiB preads, cold: the caller mounted afresh; caches dropped here."""
    drop_caches()
    fd = os.open(path, os.O_RDONLY)
    rng = random.Random(7)
    lat = []
    for _ in range(samples):
        off = rng.randrange(0, size - 4096) & ~4095
        t0 = time.perf_counter()
        assert len(os.pread(fd, 4096, off)) == 4096
        lat.append((time.perf_counter() - t0) * 1e6)
    os.close(fd)
    return median(lat)


def round_trip():
    host, p = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(p)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    rng = random.Random(8)
    lat = []
    for _ in range(samples):
        off = rng.randrange(0, size - 4096)
        t0 = time.perf_counter()
        s.sendall(f"pread {off} 4096 big.bin\n".encode())
        n = int(f.readline().split()[1])
        f.read(n)
        lat.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return median(lat)


seq = [fresh_mount(i, "seq", sequential) for i in range(len(TOOLS))]
# The same file without a mount, for scale: the client alone, and curl from nginx.
seq += [reader([BIN, "cat", f"meshfs://{addr}/big.bin"]),
        reader(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{http_port}/big.bin"])]
rand = [fresh_mount(i, "rand", random_reads) for i in range(len(TOOLS))]
rt = round_trip()

# What one random read through the mount asks of the node: a fresh mount in clear through a
# counting relay (not timed).
relay = Relay(addr)
mnt = os.path.join(w, "mnt-count")
proc = meshfs_mount(mnt, relay.addr, "--plaintext", cpu=CLIENT_CPU)
mounted.append(mnt)
random_reads(os.path.join(mnt, "bench", "big.bin"))
unmount(mnt, proc)
mounted.remove(mnt)
names = [t[0] for t in TOOLS]
readers = names + ["meshfs cat (no mount)", "curl <- nginx (no mount)"]
table(f"FUSE sequential read, {size_mib} MiB, cold cache, median of {runs}",
      [(n, s[0]) for n, s in zip(readers, seq)], "MB/s")
table("CPU seconds per GiB, whole machine (/proc/stat), same runs (lower is better)",
      [(n, s[1]) for n, s in zip(readers, seq)], "CPU s/GiB", higher_is_better=False)
table(f"FUSE random 4 KiB reads, fresh mounts, cold cache, median of {samples} (lower is better)",
      [*zip(names, rand), ("one protocol round trip", rt)], "microseconds", higher_is_better=False)
print(f"\nmeshfs random read / one protocol round trip: {rand[0] / rt:.2f}")
# A random read is a `pread` by path, or `seek` + `read` on the file a lane holds open (one
# round trip, pipelined); `open` once per file.
per_read = {w: relay.counts[w] / samples for w in ("pread", "seek", "read", "open", "stat")}
print("requests per random read through the mount: "
      + ", ".join(f"{n:.3f} {w}" for w, n in per_read.items()))
