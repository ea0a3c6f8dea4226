#!/usr/bin/env python3
"""Event latency: a file closed on node A -> its `closed` event at a subscriber of node A over
loopback, median and p99 (targets: < 100 ms and < 250 ms). Usage: events.py SAMPLES"""

import os
import socket
import sys
import time

from common import meshfs_node, median, p99, work_dir

samples = int(sys.argv[1])
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
_, addr = meshfs_node(share)
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"subscribe\n")
f = s.makefile("rb")
assert f.readline() == b"0 OK\n"
f.readline()  # the initial ping
lat = []
for i in range(samples):
    name = f"clip{i}.mp4"
    with open(os.path.join(share, name), "wb") as out:
        out.write(b"frame")
        t0 = time.perf_counter()
    want = f" closed {name}\n".encode()
    while not f.readline().endswith(want):
        pass
    lat.append((time.perf_counter() - t0) * 1000)
print(f"\n## events: file closed -> `closed` at a subscriber, {samples} samples")
print(f"median {median(lat):.2f} ms, p99 {p99(lat):.2f} ms (targets: median < 100 ms, p99 < 250 ms)")
