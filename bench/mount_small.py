#!/usr/bin/env python3
"""Small files through the mounts: `cat DIR/* > /dev/null` over COUNT files of 64 KiB (camera
snapshots; files in /dev/shm on the node), cold (a fresh mount and drop_caches before each run),
median of RUNS: `meshfs mount` against sshfs (OpenSSH) and rclone mount (`:http:` over nginx).
Also counts the requests the meshfs mount sends per file, through a relay between mount and node
(in clear, `--plaintext`, so the relay can read them; the timed runs use TLS).
Target (issue 22): >= 4x sshfs. Usage: mount_small.py COUNT RUNS   (root: drop_caches, FUSE)"""

import collections
import os
import socket
import subprocess
import sys
import threading
import time

from common import (drop_caches, meshfs_mount, meshfs_node, median, nginx, private_sshd, rclone_mount,
                    sshfs_mount, table, unmount, work_dir)

count, runs = int(sys.argv[1]), int(sys.argv[2])
w = work_dir()
share = os.path.join(w, "share")
snaps = os.path.join(share, "snaps")
os.makedirs(snaps)
os.chmod(w, 0o755)
for i in range(count):
    with open(os.path.join(snaps, f"s{i:05}.jpg"), "wb") as f:
        f.write(os.urandom(64 << 10))
_, addr = meshfs_node(share)
ssh_port, key, _ = private_sshd(w)
http_port = nginx(w, share, "sendfile on; autoindex on;")


def cat_all(folder):
    """Seconds for `cat folder/* > /dev/null`, cold."""
    drop_caches()
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", f"cat {folder}/* > /dev/null"], check=True)
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


class Relay:
    """TCP relay to the node counting request lines (client to node) by their first word."""

    def __init__(self, target):
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            u = socket.create_connection(self.target)
            threading.Thread(target=self.pipe, args=(u, c), daemon=True).start()
            threading.Thread(target=self.requests, args=(c, u), daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        while data := src.recv(1 << 16):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)

    def requests(self, c, u):
        for line in c.makefile("rb"):
            with self.lock:
                self.counts[line.split(b" ", 1)[0].strip().decode(errors="replace")] += 1
            u.sendall(line)
        u.shutdown(socket.SHUT_WR)


secs_m = timed(lambda m: meshfs_mount(m, addr), "bench/snaps", os.path.join(w, "mnt-meshfs"))
secs_s = timed(lambda m: sshfs_mount(m, share, ssh_port, key), "snaps", os.path.join(w, "mnt-sshfs"))
secs_r = timed(lambda m: rclone_mount(m, f"http://127.0.0.1:{http_port}/", "snaps"), "snaps",
               os.path.join(w, "mnt-rclone"))
table(f"{count} files of 64 KiB, cat DIR/* > /dev/null, cold, median of {runs}", [
    ("meshfs", count / secs_m),
    ("sshfs", count / secs_s),
    ("rclone mount (http, nginx)", count / secs_r),
], "files/s")

relay = Relay(addr)
mnt = os.path.join(w, "mnt-count")
proc = meshfs_mount(mnt, relay.addr, "--plaintext")
cat_all(os.path.join(mnt, "bench", "snaps"))
unmount(mnt, proc)
per_file = {k: v / count for k, v in sorted(relay.counts.items())}
print(f"\nrequests per file through the mount (one cold run): {per_file}")
