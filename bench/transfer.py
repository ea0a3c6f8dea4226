#!/usr/bin/env python3
"""Transfer benchmark: one large file over loopback, meshfs get vs curl (nginx, sendfile on),
curl (vsftpd), scp (OpenSSH), and iperf3 (the limit of loopback TCP). Medians of RUNS runs.
Usage: transfer.py SIZE_MIB RUNS   (BENCH_PEERS=nginx: nginx alone as the peer)"""

import json
import os
import subprocess
import sys

from common import BIN, free_port, meshfs_node, median, nginx, private_sshd, start, table, timed, wait_port, work_dir

size_mib, runs = int(sys.argv[1]), int(sys.argv[2])
size = size_mib << 20
w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
os.chmod(w, 0o755)
os.chmod(share, 0o755)
src = os.path.join(share, "big.bin")
with open(src, "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
os.chmod(src, 0o644)
dest = os.path.join(w, "dest.bin")
mbps = lambda secs: size / median(secs) / 1e6
rows = []

# meshfs
_, addr = meshfs_node(share)
url = f"meshfs://{addr}/big.bin"
rows.append(("meshfs", mbps(timed([BIN, "get", "--force", url, dest], runs))))
rows.append(("meshfs get --no-verify", mbps(timed([BIN, "get", "--force", "--no-verify", url, dest], runs))))
# In clear the node sends with sendfile (TLS above goes through the cipher).
rows.append(("meshfs --plaintext get", mbps(timed([BIN, "--plaintext", "get", "--force", url, dest], runs))))

# nginx with sendfile
port = nginx(w, share, "sendfile on; tcp_nopush on;")
rows.append(("curl <- nginx (sendfile)", mbps(timed(["curl", "-sf", "-o", dest, f"http://127.0.0.1:{port}/big.bin"], runs))))
if os.environ.get("BENCH_PEERS") == "nginx":
    # A/B runs of two node builds (MESHFS_NODE_BIN) need only the reference peer.
    table(f"transfer: {size_mib} MiB file over loopback, median of {runs}", rows, "MB/s")
    sys.exit(0)

# vsftpd, anonymous
port = free_port()
conf = os.path.join(w, "vsftpd.conf")
os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
with open(conf, "w") as f:
    f.write(f"""listen=YES
listen_address=127.0.0.1
listen_port={port}
anonymous_enable=YES
no_anon_password=YES
anon_root={share}
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port={port + 1}
pasv_max_port={port + 20}
seccomp_sandbox=NO
""")
start(["vsftpd", conf], stderr=subprocess.DEVNULL)
wait_port(port)
try:
    rows.append(("curl <- vsftpd", mbps(timed(["curl", "-sf", "-o", dest, f"ftp://127.0.0.1:{port}/big.bin"], runs))))
except subprocess.CalledProcessError as e:
    print(f"vsftpd: {e}", file=sys.stderr)

# scp via a private sshd
port, key, ssh_opts = private_sshd(w)
rows.append(("scp (OpenSSH)", mbps(timed(["scp", *ssh_opts, "-P", str(port), f"root@127.0.0.1:{src}", dest], runs))))

# iperf3: loopback TCP, no disk, no protocol. Readiness is its "Server listening" line (a probe
# connection would count as a test run).
port = free_port()
server = start(["iperf3", "-s", "--forceflush", "-p", str(port)], stdout=subprocess.PIPE, text=True)
while "Server listening" not in server.stdout.readline():
    pass
rates = []
for _ in range(runs):
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size), "-J"],
                         check=True, capture_output=True, text=True).stdout
    rates.append(json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6)
rows.append(("iperf3 (loopback limit)", median(rates)))

table(f"transfer: {size_mib} MiB file over loopback, median of {runs}", rows, "MB/s")
