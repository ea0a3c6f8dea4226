#!/usr/bin/env python3
"""Multi-source download (issue 19, item 6): three meshfs nodes serve the same file, each held to
RATE MB/s by its own --max-upload-rate; one `meshfs get --from B --from C meshfs://A/FILE` should
run at >= 0.9 x 3 x RATE. The peer in the same run: aria2c fetching the same file from three nginx
servers, each held to RATE by `limit_rate` (one connection per server, ranges of 1 MiB). For
reference, each tool from one limited server alone (about RATE). Median of RUNS runs, MB/s
(10^6 bytes). meshfs speaks TLS and checks BLAKE3 as it goes; aria2c checks nothing.

Usage: multi_source.py SIZE_MIB RATE_MB RUNS      (bench/run: 256 MiB, 10 MB/s, 3 runs)
Needs: nginx, aria2 (aria2c), curl; loopback only."""

import os
import subprocess
import sys
import time

from common import BIN, median, meshfs_node, nginx, work_dir

size_mib, rate_mb, runs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
size = size_mib << 20
rate = int(rate_mb * 1e6)
w = work_dir()
os.chmod(w, 0o755)

# One file, hard-linked into three shares: the same bytes (and BLAKE3) on every source, in
# memory once.
shares = [os.path.join(w, f"share{i}") for i in range(3)]
for s in shares:
    os.makedirs(s)
    os.chmod(s, 0o755)
src = os.path.join(shares[0], "big.bin")
with open(src, "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
os.chmod(src, 0o644)
for s in shares[1:]:
    os.link(src, os.path.join(s, "big.bin"))
dest = os.path.join(w, "dest.bin")
# The client's own keys and pins, fresh: the nodes' keys are made anew each run.
client_env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(w, "client-config"))


def mbps(args):
    """Median MB/s of `args` over RUNS runs, the destination removed before each."""
    secs = []
    for _ in range(runs):
        for leftover in (dest, dest + ".part", dest + ".part.resume", dest + ".aria2"):
            if os.path.exists(leftover):
                os.remove(leftover)
        t0 = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=client_env)
        secs.append(time.perf_counter() - t0)
        if os.path.getsize(dest) != size:
            sys.exit(f"{args[0]}: {dest} has {os.path.getsize(dest)} bytes, not {size}")
    return size / median(secs) / 1e6


rows = []

# meshfs: three nodes (three names, three keys), each limited to RATE.
addrs = [meshfs_node(s, "--max-upload-rate", str(rate), "--state", os.path.join(w, f"state{i}"),
                     name=f"src{i}")[1] for i, s in enumerate(shares)]
url = f"meshfs://{addrs[0]}/big.bin"
get_help = subprocess.run([BIN, "get", "--help"], capture_output=True, text=True).stdout
multi = "--from" in get_help
if multi:
    froms = [a for addr in addrs[1:] for a in ("--from", addr)]
    rows.append(("meshfs get, 3 sources", mbps([BIN, "get", *froms, url, dest])))
else:
    print("this meshfs has no `get --from`: the three-source row is missing", file=sys.stderr)
rows.append(("meshfs get, 1 source", mbps([BIN, "get", url, dest])))

# The peer: aria2c from three nginx servers, each limited to RATE per connection, one
# connection each. aria2c counts servers by host, so each listens on a loopback address of
# its own (127.0.0.1-3).
urls = []
for i, s in enumerate(shares):
    nw = os.path.join(w, f"nginx{i}")
    os.makedirs(nw)
    host = f"127.0.0.{i + 1}"
    port = nginx(nw, s, f"sendfile on; tcp_nopush on; limit_rate {rate};", host=host)
    urls.append(f"http://{host}:{port}/big.bin")
aria = ["aria2c", "--quiet", "--allow-overwrite=true", "--auto-file-renaming=false",
        "--file-allocation=none", "--max-connection-per-server=1", "--min-split-size=1M",
        "-d", os.path.dirname(dest), "-o", os.path.basename(dest)]
rows.append(("aria2c, 3 nginx sources", mbps([*aria, "--split=3", *urls])))
rows.append(("aria2c, 1 nginx source", mbps([*aria, "--split=1", urls[0]])))
rows.append(("curl, 1 nginx source", mbps(["curl", "-sf", "-o", dest, urls[0]])))

target = 0.9 * 3 * rate / 1e6
print(f"\n## multi-source download: {size_mib} MiB, 3 sources each limited to {rate / 1e6:g} MB/s "
      f"(3R = {3 * rate / 1e6:g} MB/s), median of {runs}")
print(f"| {'tool':<26} | {'MB/s':>8} | {'÷ 3R':>6} | {'÷ R':>6} |")
print(f"|{'-' * 28}|{'-' * 9}:|{'-' * 7}:|{'-' * 7}:|")
for name, value in rows:
    print(f"| {name:<26} | {value:>8.1f} | {value / (3 * rate / 1e6):>6.2f} | {value / (rate / 1e6):>6.2f} |")
best = dict(rows)
if multi:
    m, a = best["meshfs get, 3 sources"], best["aria2c, 3 nginx sources"]
    verdict = "met" if m >= target else "NOT met"
    print(f"\nmeshfs, 3 sources: {m:.1f} MB/s = {m / (3 * rate / 1e6):.2f} x 3R "
          f"(target >= 0.90: {verdict}); {m / a:.2f}x aria2c from 3 nginx")
sys.stdout.flush()
