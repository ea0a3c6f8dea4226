#!/usr/bin/env python3
"""What one read by path costs a node: `pread OFFSET SIZE PATH` over FILES files in turn (each
one an open, a read and a close on the node, as the mount's whole-file fetch at open and `get`'s
parallel lanes ask), against `seek` + `read` on a file the connection keeps open (no open per
request: what the mount's random-read lane does), and `pread` of that one kept-open file (as hot
in the CPU's caches as it: the difference from `seek` + `read` is the open itself), on one
connection in clear, one request at a time. Per request: the median and p99 latency seen by the client, the node's CPU time (every
thread's, from /proc/PID/task/*/schedstat) and its threads' context switches (all of them, and
those of the share's watch threads alone: a thread woken and put back to sleep).

MESHFS_BASE_BIN=/other/meshfs adds a node of that build beside this build's (MESHFS_NODE_BIN,
else MESHFS_BIN), each serving its own copy of the files (a watch sees every open of its share,
whoever makes it), the two measured in alternating blocks in one run (an A/B).
The nodes run on core 0, this client on core 1 (BENCH_PIN=0: anywhere).
Usage: node_pread.py FILES REQUESTS [SIZE]   (SIZE: bytes per read, default 4096)"""

import glob
import os
import socket
import sys
import time

from common import NODE_BIN, meshfs_node, median, p99, work_dir

files, requests = int(sys.argv[1]), int(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
BLOCK = 200
# `pread` over the files in turn; `pread` of the one file `seek` + `read` keeps open (hot in the
# CPU's caches like it: the difference between these two rows is what the open itself costs).
MODES = ("pread", "pread, one file", "seek+read")
PIN = os.cpu_count() >= 2 and os.environ.get("BENCH_PIN", "1") != "0"
SERVER_CPU = 0 if PIN else None
if PIN:
    os.sched_setaffinity(0, {1})
# The share's watch threads: notify's event loop and the ingest thread (names as /proc shows
# them, cut to 15 bytes), or meshfs's own watch thread.
WATCH_THREADS = ("notify-rs inoti", "meshfs-events", "meshfs-watch")

w = work_dir()
builds = [("this build", NODE_BIN)]
if os.environ.get("MESHFS_BASE_BIN"):
    builds.append(("base build", os.environ["MESHFS_BASE_BIN"]))


class Node:
    def __init__(self, label, binary):
        self.label = label
        share = os.path.join(w, "share-" + label.replace(" ", "-"))
        os.makedirs(share)
        for i in range(files):
            with open(os.path.join(share, f"s{i:05}.jpg"), "wb") as f:
                f.write(os.urandom(max(size, 64 << 10)))
        self.proc, addr = meshfs_node(share, cpu=SERVER_CPU, binary=binary)
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        # The file kept open for `seek` + `read`, on a second connection (one open file each).
        self.open_sock = socket.create_connection((host, int(port)))
        self.open_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.open_reader = self.open_sock.makefile("rb")
        self.open_sock.sendall(b"open s00000.jpg\n")
        assert self.open_reader.readline() == b"0 OK\n"
        self.next = 0
        self.stats = {mode: {"lat": [], "cpu_ns": 0, "switches": 0, "watch_switches": 0, "n": 0}
                      for mode in MODES}

    def threads(self):
        """(CPU ns, context switches, the watch threads' switches) summed over the node's threads."""
        cpu = switches = watch = 0
        for task in glob.glob(f"/proc/{self.proc.pid}/task/*"):
            try:
                with open(f"{task}/schedstat") as f:
                    cpu += int(f.read().split()[0])
                with open(f"{task}/comm") as f:
                    comm = f.read().strip()
                with open(f"{task}/status") as f:
                    n = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that just ended
            switches += n
            if comm.startswith(WATCH_THREADS):
                watch += n
        return cpu, switches, watch

    def payload(self, reader):
        status = reader.readline()
        code, n = status.split()
        assert code == b"0", status
        data = reader.read(int(n))
        assert len(data) == int(n)

    def block(self, mode):
        st = self.stats[mode]
        before = self.threads()
        for _ in range(BLOCK):
            if mode.startswith("pread"):
                if mode == "pread":
                    req = b"pread 0 %d s%05d.jpg\n" % (size, self.next)
                    self.next = (self.next + 1) % files
                else:
                    req = b"pread 0 %d s00000.jpg\n" % size
                t0 = time.perf_counter_ns()
                self.sock.sendall(req)
                self.payload(self.reader)
            else:
                t0 = time.perf_counter_ns()
                self.open_sock.sendall(b"seek 0\nread %d\n" % size)
                assert self.open_reader.readline() == b"0 OK\n"
                self.payload(self.open_reader)
            st["lat"].append((time.perf_counter_ns() - t0) / 1000)
        after = self.threads()
        st["cpu_ns"] += after[0] - before[0]
        st["switches"] += after[1] - before[1]
        st["watch_switches"] += after[2] - before[2]
        st["n"] += BLOCK


nodes = [Node(label, binary) for label, binary in builds]
for node in nodes:  # warm up: the page cache, the connections
    for mode in MODES:
        node.block(mode)
    for st in node.stats.values():
        st.update(lat=[], cpu_ns=0, switches=0, watch_switches=0, n=0)
for b in range(max(1, requests // BLOCK)):
    order = nodes if b % 2 == 0 else nodes[::-1]
    for mode in MODES:
        for node in order:
            node.block(mode)

placement = "nodes on core 0, client on core 1" if PIN else "unpinned"
print(f"\n## one request at a time, {size} bytes each, {requests} per row over {files} files, "
      f"in clear ({placement})")
print("| node | request | median µs | p99 µs | node CPU µs/request | node switches/request | "
      "watch threads' switches/request |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for node in nodes:
    for mode, st in node.stats.items():
        n = st["n"]
        print(f"| {node.label} | {mode} | {median(st['lat']):.1f} | {p99(st['lat']):.1f} | "
              f"{st['cpu_ns'] / n / 1000:.1f} | {st['switches'] / n:.2f} | {st['watch_switches'] / n:.2f} |")
if len(nodes) == 2:
    a, b = (n.stats["pread"] for n in nodes)
    print(f"\npread by path, this build against the base: median {median(a['lat']):.1f} against "
          f"{median(b['lat']):.1f} µs ({median(b['lat']) / median(a['lat']):.2f}x), node CPU "
          f"{a['cpu_ns'] / a['n'] / 1000:.1f} against {b['cpu_ns'] / b['n'] / 1000:.1f} µs per request")
sys.stdout.flush()
