#!/usr/bin/env python3
"""Small files through the mounts: `cat DIR/* > /dev/null` over COUNT files of 64 KiB (camera
snapshots; files in /dev/shm on the node), cold (a fresh mount and drop_caches before each run),
median of RUNS: `meshfs mount` against sshfs (OpenSSH) and rclone mount (`:http:` over nginx).
The servers (node, sshd, nginx) run on core 0, the mounts and `cat` on core 1 (BENCH_PIN=0:
anywhere).
Also counts the requests the meshfs mount sends per file, through a relay between mount and node
(in clear, `--plaintext`, so the relay can read them; the timed runs use TLS).
MESHFS_BASE_NODE_BIN=/other/meshfs adds a node of that build serving its own copy of the files
(a share's watch sees every open of it, whoever makes it), read through the same mount build,
its runs alternated with the first node's (an A/B of the node; the row "meshfs, base node").
Target (issue 22): >= 4x sshfs. Usage: mount_small.py COUNT RUNS   (root: drop_caches, FUSE)"""

import os
import subprocess
import sys
import time

from common import (Relay, drop_caches, meshfs_mount, meshfs_node, median, nginx, pinned, private_sshd,
                    rclone_mount, sshfs_mount, table, unmount, work_dir)

count, runs = int(sys.argv[1]), int(sys.argv[2])
# BENCH_PIN=0: let the scheduler place everything (as runs before 2026-12-07 did).
PIN = os.cpu_count() >= 2 and os.environ.get("BENCH_PIN", "1") != "0"
SERVER_CPU, CLIENT_CPU = (0, 1) if PIN else (None, None)
PLACEMENT = ("pinned: servers on core 0, mounts and readers on core 1" if PIN
             else "unpinned (BENCH_PIN=0): the scheduler places every process")
print(f"placement: {PLACEMENT}", flush=True)
w = work_dir()
share = os.path.join(w, "share")
snaps = os.path.join(share, "snaps")
os.makedirs(snaps)
os.chmod(w, 0o755)
for i in range(count):
    with open(os.path.join(snaps, f"s{i:05}.jpg"), "wb") as f:
        f.write(os.urandom(64 << 10))
_, addr = meshfs_node(share, cpu=SERVER_CPU)
BASE_NODE = os.environ.get("MESHFS_BASE_NODE_BIN")
if BASE_NODE:
    base_share = os.path.join(w, "base-share")
    subprocess.run(["cp", "-a", share, base_share], check=True)
    _, base_addr = meshfs_node(base_share, cpu=SERVER_CPU, binary=BASE_NODE)
ssh_port, key, _ = private_sshd(w, cpu=SERVER_CPU)
http_port = nginx(w, share, "sendfile on; autoindex on;", cpu=SERVER_CPU)


def cat_all(folder):
    """Seconds for `cat folder/* > /dev/null`, cold."""
    drop_caches()
    t0 = time.perf_counter()
    subprocess.run(pinned(["sh", "-c", f"cat {folder}/* > /dev/null"], CLIENT_CPU), check=True)
    return time.perf_counter() - t0


def timed(mount, folder, mnt):
    """Median seconds over `runs` fresh mounts: `mount()` mounts on `mnt` and returns the process."""
    secs = []
    for r in range(runs):
        m = f"{mnt}-{r}"
        proc = mount(m)
        secs.append(cat_all(os.path.join(m, folder)))
        unmount(m, proc)
    return median(secs)


def timed_pair(mounts, folder, mnt):
    """Median seconds of each of `mounts` (as in `timed`), their runs alternated."""
    secs = [[] for _ in mounts]
    for r in range(runs):
        for i, mount in (list(enumerate(mounts)) if r % 2 == 0 else list(enumerate(mounts))[::-1]):
            m = f"{mnt}-{i}-{r}"
            proc = mount(m)
            secs[i].append(cat_all(os.path.join(m, folder)))
            unmount(m, proc)
    return [median(x) for x in secs]


if BASE_NODE:
    secs_m, secs_b = timed_pair([lambda m: meshfs_mount(m, addr, cpu=CLIENT_CPU),
                                 lambda m: meshfs_mount(m, base_addr, cpu=CLIENT_CPU)],
                                "bench/snaps", os.path.join(w, "mnt-meshfs"))
else:
    secs_m = timed(lambda m: meshfs_mount(m, addr, cpu=CLIENT_CPU), "bench/snaps", os.path.join(w, "mnt-meshfs"))
secs_s = timed(lambda m: sshfs_mount(m, share, ssh_port, key, cpu=CLIENT_CPU), "snaps", os.path.join(w, "mnt-sshfs"))
secs_r = timed(lambda m: rclone_mount(m, f"http://127.0.0.1:{http_port}/", "snaps", cpu=CLIENT_CPU), "snaps",
               os.path.join(w, "mnt-rclone"))
table(f"{count} files of 64 KiB, cat DIR/* > /dev/null, cold, median of {runs}", [
    ("meshfs", count / secs_m),
    *([("meshfs, base node", count / secs_b)] if BASE_NODE else []),
    ("sshfs", count / secs_s),
    ("rclone mount (http, nginx)", count / secs_r),
], "files/s")

relay = Relay(addr)
mnt = os.path.join(w, "mnt-count")
proc = meshfs_mount(mnt, relay.addr, "--plaintext", cpu=CLIENT_CPU)
cat_all(os.path.join(mnt, "bench", "snaps"))
unmount(mnt, proc)
per_file = {k: v / count for k, v in sorted(relay.counts.items())}
print(f"\nrequests per file through the mount (one cold run): {per_file}")
