#!/usr/bin/env python3
"""Small requests: pipelined `stat` on one connection and on 50, in requests per second
(target: >= 100k/s on 2 cores). Usage: requests.py REQUESTS_PER_CONNECTION"""

import os
import socket
import sys
import threading
import time

from common import meshfs_node, table, work_dir

n = int(sys.argv[1])
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
with open(os.path.join(share, "clip.mp4"), "wb") as f:
    f.write(b"x" * 1000)
_, addr = meshfs_node(share)
host, port = addr.rsplit(":", 1)
REQUEST = b"stat clip.mp4\n"


def pipelined(count, results):
    s = socket.create_connection((host, int(port)))
    payload = REQUEST * count

    def send():
        s.sendall(payload)

    t = threading.Thread(target=send)
    t0 = time.perf_counter()
    t.start()
    replies, tail = 0, b""
    while replies < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("connection closed")
        data = tail + chunk
        replies += data.count(b"\n\n")
        # Keep one byte so a "\n\n" split across chunks is still counted once.
        tail = data[-1:] if data.endswith(b"\n") and not data.endswith(b"\n\n") else b""
    results.append(time.perf_counter() - t0)
    t.join()
    s.close()


rows = []
for conns in (1, 50):
    per = n if conns == 1 else max(1, n // 10)
    results = []
    threads = [threading.Thread(target=pipelined, args=(per, results)) for _ in range(conns)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    rows.append((f"meshfs, {conns} connection(s)", per * conns / elapsed))
table(f"pipelined stat ({n} per connection on 1, {max(1, n // 10)} on 50)", rows, "requests/s",
      reference="none")
