#!/usr/bin/env python3
"""Connections: RSS of a node holding IDLE idle connections (target: 10,000 under 100 MiB), then
DOWNLOADERS concurrent clients each reading a 10 MiB file with `pread` (aggregate MB/s, and
every one must finish). Usage: connections.py IDLE DOWNLOADERS"""

import asyncio
import os
import resource
import socket
import sys
import time

from common import meshfs_node, work_dir

idle, downloaders = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
FILE = 10 << 20
with open(os.path.join(share, "ten.bin"), "wb") as f:
    f.write(os.urandom(FILE))
node, addr = meshfs_node(share)
host, port = addr.rsplit(":", 1)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


base = rss_mib(node.pid)
socks = []
for _ in range(idle):
    s = socket.create_connection((host, int(port)))
    socks.append(s)
# Every connection answered: the node has accepted and set up all of them.
for s in socks:
    s.sendall(b"hello\n")
for s in socks:
    assert s.recv(100).startswith(b"0 meshfs")
print(f"\n## connections\n{idle} idle connections: node RSS {rss_mib(node.pid):.1f} MiB "
      f"(idle node {base:.1f} MiB; target < 100 MiB)")
for s in socks:
    s.close()


async def download():
    r, wr = await asyncio.open_connection(host, int(port))
    got, chunk = 0, 1 << 20
    while got < FILE:
        wr.write(f"pread {got} {chunk} ten.bin\n".encode())
        header = await r.readline()
        n = int(header.split()[1])
        await r.readexactly(n)
        got += n
    wr.close()
    return got


async def main():
    t0 = time.perf_counter()
    results = await asyncio.gather(*(download() for _ in range(downloaders)))
    elapsed = time.perf_counter() - t0
    done = sum(1 for g in results if g == FILE)
    print(f"{downloaders} concurrent downloaders of 10 MiB: {done} finished, "
          f"aggregate {downloaders * FILE / elapsed / 1e6:.0f} MB/s in {elapsed:.1f} s")

asyncio.run(main())
