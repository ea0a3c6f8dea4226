#!/usr/bin/env python3
"""Two or more builds of the mount side by side on one node, in one run (the host's speed swings
by a quarter between runs, so only pairs taken together compare):
  - BS (a `dd` block size such as 1M or 4k): cold `dd bs=BS` of the whole file through each
    mount, the mounts alternated (ABAB, then BABA), caches dropped before each: MB/s and the
    whole machine's busy CPU seconds per GiB (/proc/stat), median of PAIRS;
  - `rand`: 4 KiB preads at random aligned offsets, the mounts alternated in blocks of 50,
    PAIRS x 20 blocks each, caches dropped once: median microseconds.
Each build is NAME=BINARY, optionally with environment settings for its mount:
NAME=BINARY:VAR=VALUE:... The node is MESHFS_NODE_BIN (else the first build's binary).
BENCH_PIN=1: node on core 0, mounts and readers on core 1 (default: unpinned).
Usage: mount_ab.py SIZE_MIB PAIRS BS[,BS...] NAME=BINARY[:VAR=VALUE...] ...   (root)"""

import os
import random
import statistics
import subprocess
import sys
import time

size_mib, pairs, modes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
builds = []
for arg in sys.argv[4:]:
    name, rest = arg.split("=", 1)
    binary, *settings = rest.split(":")
    env = dict(os.environ)
    env.update(s.split("=", 1) for s in settings)
    builds.append((name, binary, env))
if len(builds) < 2:
    sys.exit(__doc__)
os.environ.setdefault("MESHFS_NODE_BIN", builds[0][1])

from common import busy_seconds, drop_caches, meshfs_node, pinned, start, unmount, work_dir  # noqa: E402

PIN = os.cpu_count() >= 2 and os.environ.get("BENCH_PIN", "0") == "1"
SERVER_CPU, CLIENT_CPU = (0, 1) if PIN else (None, None)
if CLIENT_CPU is not None:
    os.sched_setaffinity(0, {CLIENT_CPU})
size = size_mib << 20
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
os.chmod(w, 0o755)
with open(os.path.join(share, "big.bin"), "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
_, addr = meshfs_node(share, cpu=SERVER_CPU)
mounts = []
try:
    for i, (name, binary, env) in enumerate(builds):
        mnt = os.path.join(w, f"mnt-{i}")
        os.makedirs(mnt)
        p = start(pinned([binary, "mount", mnt, "--node", addr, "--no-discovery"], CLIENT_CPU),
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        if " ready:" not in p.stdout.readline():
            sys.exit(f"mount of {name} did not start")
        mounts.append((mnt, p))
    files = [os.path.join(mnt, "bench", "big.bin") for mnt, _ in mounts]
    results = {}

    def alternated(turn):
        """The mounts' indices, in turn order (ABAB..., then BABA... on odd turns)."""
        order = list(range(len(builds)))
        return order if turn % 2 == 0 else order[::-1]

    for mode in modes:
        if mode == "rand":
            rng = random.Random(7)
            fds = [os.open(f, os.O_RDONLY) for f in files]
            drop_caches()
            for block in range(pairs * 20):
                for i in alternated(block):
                    for _ in range(50):
                        off = rng.randrange(0, size - 4096) & ~4095
                        t0 = time.perf_counter()
                        assert len(os.pread(fds[i], 4096, off)) == 4096
                        results.setdefault((mode, i), []).append((time.perf_counter() - t0) * 1e6)
            for fd in fds:
                os.close(fd)
            continue
        for turn in range(pairs):
            for i in alternated(turn):
                drop_caches()
                b0, t0 = busy_seconds(), time.perf_counter()
                subprocess.run(pinned(["dd", f"if={files[i]}", "of=/dev/null", f"bs={mode}"], CLIENT_CPU),
                               check=True, stderr=subprocess.DEVNULL)
                t1, b1 = time.perf_counter(), busy_seconds()
                results.setdefault((mode, i), []).append((size / (t1 - t0) / 1e6, (b1 - b0) / (size / (1 << 30))))
finally:
    for mnt, p in mounts:
        unmount(mnt, p)

print(f"placement: {'pinned' if PIN else 'unpinned'}; {size_mib} MiB; {pairs} pairs; "
      f"load {os.getloadavg()[0]:.2f} at the end")
for mode in modes:
    for i, (name, _, _) in enumerate(builds):
        xs = results[(mode, i)]
        if mode == "rand":
            print(f"random 4 KiB  {name:12} median {statistics.median(xs):8.1f} µs  ({len(xs)} reads)")
        else:
            rates = " ".join(f"{x[0]:.0f}" for x in xs)
            print(f"dd bs={mode:6} {name:12} median {statistics.median(x[0] for x in xs):8.1f} MB/s  "
                  f"{statistics.median(x[1] for x in xs):5.2f} CPU s/GiB  (runs: {rates})")
