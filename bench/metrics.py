#!/usr/bin/env python3
"""`GET /metrics` latency with FILES files in the share (target: median < 1 ms), and the file
server's `status` request, beside Prometheus's own `/metrics` (Go's client library) as the peer.
One keep-alive connection each, REQUESTS requests, median and p99 in milliseconds.
Usage: metrics.py FILES REQUESTS"""

import http.client
import os
import socket
import subprocess
import sys
import time

from common import BIN, free_port, median, p99, start, table, wait_port, work_dir

files, n = int(sys.argv[1]), int(sys.argv[2])
w = work_dir()
share = os.path.join(w, "share")
for i in range(files):
    d = os.path.join(share, f"day{i // 1000:03}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"clip{i:06}.mp4"), "wb") as f:
        f.write(b"x" * 100)

web_port = free_port()
node = start([BIN, "node", share, "--listen", "127.0.0.1:0", "--name", "bench", "--no-discovery",
              "--no-web-tls", "--web", f"127.0.0.1:{web_port}", "--state", os.path.join(w, "state")],
             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
addr = node.stdout.readline().split()[-1]
host, port = addr.rsplit(":", 1)
wait_port(web_port)


def http_latencies(port, path, count, check):
    c = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        c.request("GET", path)
        body = c.getresponse().read()
        out.append((time.perf_counter() - t0) * 1000)
        assert check(body), body[:200]
    c.close()
    return out


# The share is counted in the background: wait until /metrics says so, so what is timed is
# the answer with 10,000 files known, not a walk.
deadline = time.time() + 60
want = f"meshfs_share_files {files}\n".encode()
while want not in http_latencies(web_port, "/metrics", 1, lambda b: True) and time.time() < deadline:
    time.sleep(0.2)
metrics = http_latencies(web_port, "/metrics", n, lambda b: want in b)

s = socket.create_connection((host, int(port)))
f = s.makefile("rb")
status = []
for _ in range(n):
    t0 = time.perf_counter()
    s.sendall(b"status\n")
    while f.readline() not in (b"\n", b""):
        pass
    status.append((time.perf_counter() - t0) * 1000)
s.close()

rows = [("meshfs /metrics", median(metrics)), ("meshfs status request", median(status))]
tails = [("meshfs /metrics", p99(metrics)), ("meshfs status request", p99(status))]
prom_port = free_port()
if subprocess.run(["sh", "-c", "command -v prometheus"], stdout=subprocess.DEVNULL).returncode == 0:
    cfg = os.path.join(w, "prometheus.yml")
    with open(cfg, "w") as fcfg:
        fcfg.write("global:\n  scrape_interval: 1h\n")
    start(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={w}/tsdb",
           f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(prom_port, 60)
    prom = http_latencies(prom_port, "/metrics", n, lambda b: b"go_goroutines" in b)
    rows.append(("prometheus /metrics", median(prom)))
    tails.append(("prometheus /metrics", p99(prom)))
table(f"/metrics with {files} files in the share, median of {n}", rows, "ms",
      higher_is_better=False, reference="meshfs /metrics")
table(f"/metrics with {files} files in the share, p99 of {n}", tails, "ms",
      higher_is_better=False, reference="meshfs /metrics")
