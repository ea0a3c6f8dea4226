#!/usr/bin/env python3
"""Many small files: COUNT files of 4 KiB fetched over one connection each way — meshfs
(`pread` pipelined on one connection) vs curl from nginx (one curl, keep-alive, all URLs).
Usage: small_files.py COUNT"""

import os
import socket
import subprocess
import sys
import time

from common import meshfs_node, nginx, table, work_dir

count = int(sys.argv[1])
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(os.path.join(share, "small"))
os.chmod(w, 0o755)
os.chmod(share, 0o755)
for i in range(count):
    with open(os.path.join(share, "small", f"f{i:05}.bin"), "wb") as f:
        f.write(os.urandom(4096))
rows = []

_, addr = meshfs_node(share)
host, port = addr.rsplit(":", 1)
t0 = time.perf_counter()
s = socket.create_connection((host, int(port)))
s.sendall(b"".join(f"pread 0 4096 small/f{i:05}.bin\n".encode() for i in range(count)))
r = s.makefile("rb")
got = 0
for _ in range(count):
    n = int(r.readline().split()[1])
    got += len(r.read(n))
assert got == count * 4096
rows.append(("meshfs", count / (time.perf_counter() - t0)))

port = nginx(w, share, "sendfile on; keepalive_requests 100000;")
cfg = os.path.join(w, "curl.cfg")
with open(cfg, "w") as f:
    for i in range(count):
        f.write(f'url = "http://127.0.0.1:{port}/small/f{i:05}.bin"\noutput = "/dev/null"\n')
t0 = time.perf_counter()
subprocess.run(["curl", "-sf", "-K", cfg], check=True)
rows.append(("curl <- nginx (keep-alive)", count / (time.perf_counter() - t0)))
table(f"{count} files of 4 KiB over one connection (meshfs: pipelined pread)", rows, "files/s")
