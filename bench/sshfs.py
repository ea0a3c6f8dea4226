#!/usr/bin/env python3
"""FUSE against sshfs and rclone mount: the same file read through `meshfs mount`, `sshfs`
(OpenSSH on loopback) and `rclone mount` (`:http:` over nginx), sequential (cold page cache,
dd bs=1M) and random 4 KiB preads (median latency).
Targets (issue 22): sequential >= 5x sshfs (quiet machine) and >= 2x rclone mount; random median
<= 0.5x sshfs and <= 2 protocol round trips.
Usage: sshfs.py SIZE_MIB SAMPLES   (root: drop_caches, FUSE)"""

import os
import random
import socket
import subprocess
import sys
import time

from common import (drop_caches, meshfs_mount, meshfs_node, median, nginx, private_sshd, rclone_mount,
                    sshfs_mount, table, work_dir)

size_mib, samples = int(sys.argv[1]), int(sys.argv[2])
size = size_mib << 20
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
os.chmod(w, 0o755)
src = os.path.join(share, "big.bin")
with open(src, "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
mounts = []


def unmount_all():
    for m in mounts:
        subprocess.run(["fusermount3", "-u", "-z", m], stderr=subprocess.DEVNULL)


import atexit  # noqa: E402

atexit.register(unmount_all)

# meshfs node + mount
_, addr = meshfs_node(share)
mnt_m = os.path.join(w, "mnt-meshfs")
meshfs_mount(mnt_m, addr)
mounts.append(mnt_m)
file_m = os.path.join(mnt_m, "bench", "big.bin")

# sshd + sshfs
port, key, _ = private_sshd(w)
mnt_s = os.path.join(w, "mnt-sshfs")
sshfs_mount(mnt_s, share, port, key)
mounts.append(mnt_s)
file_s = os.path.join(mnt_s, "big.bin")

# nginx + rclone mount (its HTTP backend lists folders from nginx's autoindex)
http_port = nginx(w, share, "sendfile on; autoindex on;")
mnt_r = os.path.join(w, "mnt-rclone")
rclone_mount(mnt_r, f"http://127.0.0.1:{http_port}/", "big.bin")
mounts.append(mnt_r)
file_r = os.path.join(mnt_r, "big.bin")


def sequential(path, runs=3):
    """Median of `runs` cold-cache reads: one run is at the mercy of the other core."""
    rates = []
    for _ in range(runs):
        drop_caches()
        t0 = time.perf_counter()
        subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True, stderr=subprocess.DEVNULL)
        rates.append(size / (time.perf_counter() - t0) / 1e6)
    return median(rates)


def random_reads(path):
    fd = os.open(path, os.O_RDONLY)
    rng = random.Random(7)
    lat = []
    for _ in range(samples):
        off = rng.randrange(0, size - 4096) & ~4095
        t0 = time.perf_counter()
        os.pread(fd, 4096, off)
        lat.append((time.perf_counter() - t0) * 1e6)
    os.close(fd)
    return median(lat)


def round_trip():
    host, p = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(p)))
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
    return median(lat)


table(f"FUSE sequential read, {size_mib} MiB, cold cache, median of 3", [
    ("meshfs", sequential(file_m)),
    ("sshfs", sequential(file_s)),
    ("rclone mount (http, nginx)", sequential(file_r)),
], "MB/s")
rt = round_trip()
table(f"FUSE random 4 KiB reads, median of {samples} (lower is better)", [
    ("meshfs", random_reads(file_m)),
    ("sshfs", random_reads(file_s)),
    ("rclone mount (http, nginx)", random_reads(file_r)),
    ("one protocol round trip", rt),
], "microseconds", higher_is_better=False)
