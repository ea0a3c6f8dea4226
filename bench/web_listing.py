"""A 20,000-file folder in the web UI, in headless Chromium (bench/web_listing.mjs): the time
to open the folder's page until its rows are on screen, to sort it by size, type and name, to
filter and to scroll, against Python's http.server listing of the same folder in the same
browser (a static page of links, the plainest listing there is). Target: under 300 ms each.

    python3 bench/web_listing.py [FILES] [RUNS]
"""

import json
import os
import subprocess
import sys

from common import BIN, ROOT, free_port, median, start, table, wait_port, work_dir

files = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3

w = work_dir()
big = os.path.join(w, "big")
os.makedirs(big)
for i in range(files):
    # Recording-like names, sizes and times, so every sort has work to do.
    path = os.path.join(big, f"cam{i % 7}-2026-12-{i % 28 + 1:02d}-{i:06d}.{('mp4', 'jpg', 'txt', 'mkv')[i % 4]}")
    with open(path, "wb") as f:
        f.truncate((i * 7919) % 100000)
    os.utime(path, (1_700_000_000 + i * 37 % 90000, 1_700_000_000 + (i * 7727) % 90000))

web_port = free_port()
node = start([BIN, "node", w, "--listen", "127.0.0.1:0", "--name", "bench", "--web", f"127.0.0.1:{web_port}",
              "--no-web-tls", "--no-discovery"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = node.stdout.readline()
if not line.startswith("meshfs node "):
    sys.exit(f"node did not start: {line!r}")
wait_port(web_port)
peer_port = free_port()
start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", w, str(peer_port)],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_port(peer_port)

env = dict(os.environ, FILES=str(files), RUNS=str(runs),
           MESHFS_URL=f"http://127.0.0.1:{web_port}/#/ls/bench/big/",
           PEER_URL=f"http://127.0.0.1:{peer_port}/big/")
out = subprocess.run(["node", os.path.join(ROOT, "bench", "web_listing.mjs")], env=env, check=True,
                     capture_output=True, text=True).stdout
t = json.loads(out)
table(f"a folder of {files} files in Chromium, median of {runs} (ms, lower is better)", [
    ("meshfs: open, rows shown", median(t["open"])),
    ("http.server: open, listing shown", median(t["peer_open"])),
], "ms", higher_is_better=False, reference="meshfs: open, rows shown")
table("meshfs, its parts and what follows (ms; target < 300)", [
    ("listing request (server)", median(t["fetch"])),
    ("render, JSON to rows drawn", median(t["render"])),
    ("sort by size", median(t["sort_size"])),
    ("sort by type", median(t["sort_type"])),
    ("sort by name", median(t["sort_name"])),
    ("filter", median(t["filter"])),
    ("scroll half way", median(t["scroll"])),
], "ms", higher_is_better=False, reference="-")
