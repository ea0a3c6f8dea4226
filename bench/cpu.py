#!/usr/bin/env python3
"""CPU per GiB and one core per side (issue 22, targets 4 and 5): `meshfs cat`/`get` against
curl ← nginx doing the same work by hand, the server (node or nginx) pinned to CPU 0 and the
client to CPU 1 (taskset), medians of RUNS runs of one SIZE_MIB file.

1. Whole machine: busy time of both CPUs from /proc/stat (both ends, the kernel, softirqs)
   per GiB. `meshfs cat > /dev/null` against `curl -o /dev/null`; `meshfs get` (its BLAKE3
   check included) against `curl -o FILE` followed by `b3sum FILE`. Files in /dev/shm.
2. One core per side, writing to disk (BENCH_DISK, default /var/tmp): MB/s, and each side's
   CPU seconds per GiB (the server's from /proc/PID/stat, the client's from its rusage).
   Per-process figures on loopback shift receive work between the ends: (1) is the fair sum.

Both over TLS 1.3 with AES-128-GCM (meshfs's choice on CPUs with AES instructions; nginx
told to use it), and in clear (`--plaintext`, nginx over HTTP with sendfile).
Usage: cpu.py SIZE_MIB RUNS [machine|disk]   (one part only; B3SUM=/path/to/b3sum when it is
not on PATH; MESHFS_BASE_BIN=/other/meshfs adds that build's `get` to the disk part, an A/B)"""

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import BIN, NODE_BIN, free_port, start, wait_port, work_dir

size_mib, runs = int(sys.argv[1]), int(sys.argv[2])
parts = sys.argv[3:] or ["machine", "disk"]
size = size_mib << 20
gib = size / (1 << 30)
hz = os.sysconf("SC_CLK_TCK")
b3sum = os.environ.get("B3SUM") or shutil.which("b3sum")
if "machine" in parts and not b3sum:
    sys.exit("needs b3sum (B3SUM=...)")
if os.cpu_count() < 2:
    sys.exit("needs 2 CPUs to pin server and client apart")

w = work_dir()
share = os.path.join(w, "share")
os.makedirs(share)
src = os.path.join(share, "big.bin")
with open(src, "wb") as f:
    for _ in range(size_mib):
        f.write(os.urandom(1 << 20))
disk = tempfile.mkdtemp(prefix="meshfs-bench-", dir=os.environ.get("BENCH_DISK", "/var/tmp"))
atexit.register(shutil.rmtree, disk, True)
state = os.path.join(w, "state")
os.environ["XDG_CONFIG_HOME"] = os.environ["XDG_STATE_HOME"] = os.path.join(w, "user")

# The node on CPU 0.
node = start(["taskset", "-c", "0", NODE_BIN, "node", share, "--listen", "127.0.0.1:0", "--name", "bench",
              "--no-web", "--no-discovery", "--state", state], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
             text=True)
line = node.stdout.readline()
if not line.startswith("meshfs node "):
    sys.exit(f"node did not start: {line!r}")
addr = line.split()[-1]
url = f"meshfs://{addr}/big.bin"

# nginx on CPU 0: HTTP with sendfile, and HTTPS with the cipher meshfs picks here.
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=bench", "-keyout", f"{w}/key.pem", "-out", f"{w}/cert.pem"],
               check=True, capture_output=True)
http_port, https_port = free_port(), free_port()
with open(f"{w}/nginx.conf", "w") as f:
    f.write(f"""daemon off; user root; worker_processes 1; pid {w}/nginx.pid; error_log {w}/nginx.err;
events {{}}
http {{ access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {w}/nb; proxy_temp_path {w}/np; fastcgi_temp_path {w}/nf;
  uwsgi_temp_path {w}/nu; scgi_temp_path {w}/ns;
  server {{ listen 127.0.0.1:{http_port}; root {share}; }}
  server {{ listen 127.0.0.1:{https_port} ssl; root {share};
    ssl_certificate {w}/cert.pem; ssl_certificate_key {w}/key.pem;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256; }} }}
""")
nginx = start(["taskset", "-c", "0", "nginx", "-c", f"{w}/nginx.conf"], stderr=subprocess.DEVNULL)
wait_port(http_port)
wait_port(https_port)


def nginx_pids():
    out = subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()
    return [nginx.pid, *map(int, out)]


def machine_busy():
    """Busy jiffies of the whole machine (all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v) - v[3] - v[4]


def proc_cpu(pids):
    """utime + stime of `pids`, in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / hz


def run(cmd, server, out):
    """Run `cmd` (a shell line) on CPU 1; wall seconds, machine CPU s, server CPU s, client CPU s."""
    if out and os.path.exists(out):
        os.unlink(out)
    m0, s0, t0 = machine_busy(), proc_cpu(server), time.perf_counter()
    p = subprocess.Popen(["taskset", "-c", "1", "sh", "-c", cmd], stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    t1, s1, m1 = time.perf_counter(), proc_cpu(server), machine_busy()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {cmd}")
    if out and os.path.getsize(out) != size:
        sys.exit(f"short copy: {cmd}")
    return t1 - t0, (m1 - m0) / hz, s1 - s0, ru.ru_utime + ru.ru_stime


def paired(meshfs, curl, out, base=None):
    """RUNS runs of each command, alternating (so page-cache writeback and other drift hit both
    alike); the medians of each's four figures. `base`: a third command (another build's get)."""
    cmds = [(meshfs, lambda: [node.pid]), (curl, nginx_pids)]
    if base:
        cmds.append((base, lambda: [node.pid]))
    samples = [[] for _ in cmds]
    for _ in range(runs):
        for (cmd, server), got in zip(cmds, samples):
            got.append(run(cmd, server(), out))
    return [[statistics.median(s[i] for s in got) for i in range(4)] for got in samples]


get_cmd = f"{BIN} {{flags}} get --force {url} {{out}}"
# MESHFS_BASE_BIN: another build's `get` beside it, in the same alternation (an A/B; disk part).
base_cmd = os.environ.get("MESHFS_BASE_BIN") and f"{os.environ['MESHFS_BASE_BIN']} {{flags}} get --force {url} {{out}}"
cat_cmd = f"{BIN} {{flags}} cat {url}"
curl = {"TLS": f"curl -sSf --insecure --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256 https://127.0.0.1:{https_port}/big.bin",
        "clear": f"curl -sSf http://127.0.0.1:{http_port}/big.bin"}
flags = {"TLS": "", "clear": "--plaintext"}

stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
print(f"## cpu — {stamp}, {size_mib} MiB, median of {runs}, node/nginx on CPU 0, client on CPU 1")
print(f"load before: {os.getloadavg()[0]:.2f}; b3sum: {b3sum}")
if "machine" in parts:
    print()
    print("### whole machine, CPU s per GiB (files in /dev/shm)")
    print()
    print("| work | transport | meshfs | curl ← nginx | meshfs ÷ curl |")
    print("| --- | --- | ---: | ---: | ---: |")
    shm_out = os.path.join(w, "out.bin")
    for mode in ("TLS", "clear"):
        m, c = paired(cat_cmd.format(flags=flags[mode]), f"{curl[mode]} -o /dev/null", None)
        print(f"| `cat` > /dev/null | {mode} | {m[1] / gib:.2f} | {c[1] / gib:.2f} | {m[1] / c[1]:.2f}× |")
        m, c = paired(get_cmd.format(flags=flags[mode], out=shm_out),
                      f"{curl[mode]} -o {shm_out} && {b3sum} {shm_out}", shm_out)
        print(f"| `get` (BLAKE3 checked) / curl + b3sum | {mode} | {m[1] / gib:.2f} | {c[1] / gib:.2f} | {m[1] / c[1]:.2f}× |")
        sys.stdout.flush()
    os.unlink(shm_out)

if "disk" in parts:
    print()
    print(f"### one core per side, writing to disk ({disk})")
    print()
    print("| tool | transport | MB/s | server CPU s/GiB | client CPU s/GiB | machine CPU s/GiB | meshfs ÷ curl (MB/s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    disk_out = os.path.join(disk, "big.bin")
    for mode in ("TLS", "clear"):
        base = base_cmd.format(flags=flags[mode], out=disk_out) if base_cmd else None
        m, c, *b = paired(get_cmd.format(flags=flags[mode], out=disk_out), f"{curl[mode]} -o {disk_out}",
                          disk_out, base)
        rows = (("`meshfs get` (verified)", m), ("curl ← nginx", c), *(("`meshfs get`, base build", r) for r in b))
        for name, r in rows:
            ratio = f"{c[0] / r[0]:.2f}×" if r is not c else ""
            print(f"| {name} | {mode} | {size / r[0] / 1e6:.1f} | {r[2] / gib:.2f} | {r[3] / gib:.2f} | {r[1] / gib:.2f} | {ratio} |")
        sys.stdout.flush()
