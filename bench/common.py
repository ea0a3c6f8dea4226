"""Shared helpers of the benchmark scripts: start processes, wait for readiness, time runs,
print tables of medians and ratios. Loopback only; everything started is stopped at exit."""

import atexit
import collections
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MESHFS_BIN") or os.path.join(ROOT, "target", "release", "meshfs")
# The nodes' binary, when it should differ from the clients' (comparing two builds of the node
# under one client): MESHFS_NODE_BIN.
NODE_BIN = os.environ.get("MESHFS_NODE_BIN") or BIN
_procs = []


def work_dir():
    d = tempfile.mkdtemp(prefix="meshfs-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    atexit.register(lambda: subprocess.run(["rm", "-rf", d]))
    return d


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


@atexit.register
def _stop_all():
    for p in _procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in _procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def pinned(args, cpu):
    """`args` run on core `cpu` (`taskset -c`; children inherit it), or anywhere when None."""
    return list(args) if cpu is None else ["taskset", "-c", str(cpu), *args]


def busy_seconds():
    """Busy CPU time of the whole machine so far (every core; all but idle and iowait), from
    /proc/stat: on loopback the receive work lands on whichever process or `ksoftirqd` runs,
    so per-process figures mislead and only the machine's total is comparable."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def meshfs_node(share, *extra, name="bench", cpu=None, binary=None):
    """Start `meshfs node` on a free loopback port (on core `cpu`, if given; from `binary`,
    else MESHFS_NODE_BIN or MESHFS_BIN); returns (process, 'host:port')."""
    p = start(pinned([binary or NODE_BIN, "node", share, "--listen", "127.0.0.1:0", "--name", name, "--no-web", "--no-discovery", *extra], cpu),
              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("meshfs node "):
        sys.exit(f"node did not start: {line!r}")
    return p, line.split()[-1]


def timed(args, runs, **kw):
    """Run a command `runs` times; returns the list of wall-clock seconds."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        out.append(time.perf_counter() - t0)
    return out


def median(xs):
    return statistics.median(xs)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def table(title, rows, unit, higher_is_better=True, reference="meshfs"):
    """rows: list of (name, value). Prints value and the ratio of `reference` to each row."""
    print(f"\n## {title}")
    ref = dict(rows).get(reference)
    print(f"| {'tool':<28} | {unit:>14} | {reference + ' ratio':>14} |")
    print(f"|{'-' * 30}|{'-' * 16}:|{'-' * 16}:|")
    for name, value in rows:
        if ref and value:
            ratio = ref / value if higher_is_better else value / ref
            r = f"{ratio:.2f}x"
        else:
            r = "-"
        print(f"| {name:<28} | {value:>14.1f} | {r:>14} |")
    sys.stdout.flush()


def private_sshd(w, cpu=None):
    """An OpenSSH server of our own on a free loopback port (on core `cpu`, if given), root
    login by a fresh key, with SFTP (scp and sshfs need it). Returns (port, key file, ssh client
    options)."""
    port = free_port()
    os.makedirs("/run/sshd", exist_ok=True)
    key = os.path.join(w, "id")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key + "_host"], check=True)
    cfg = os.path.join(w, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}_host\nAuthorizedKeysFile {key}.pub\n"
                "PermitRootLogin yes\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
                "Subsystem sftp /usr/lib/openssh/sftp-server\n")
    start(pinned(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], cpu), stderr=subprocess.DEVNULL)
    wait_port(port)
    opts = ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    return port, key, opts


def nginx(w, root, http_extra="sendfile on;", host="127.0.0.1", cpu=None):
    """nginx (one worker, no access log) serving `root` on a free port of `host` (a loopback
    address), on core `cpu` if given; returns the port once it listens."""
    port = free_port()
    conf = os.path.join(w, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; user root; worker_processes 1; pid {w}/nginx.pid; error_log {w}/nginx.err;
events {{}}
http {{ access_log off; {http_extra}
  client_body_temp_path {w}/nb; proxy_temp_path {w}/np; fastcgi_temp_path {w}/nf;
  uwsgi_temp_path {w}/nu; scgi_temp_path {w}/ns;
  server {{ listen {host}:{port}; root {root}; }} }}
""")
    start(pinned(["nginx", "-c", conf], cpu), stderr=subprocess.DEVNULL)
    wait_port(port, host=host)
    return port


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def wait_path(path, timeout=20):
    """Wait until `path` exists (a mount serving it), at most `timeout` seconds."""
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit(f"{path} never appeared")
        time.sleep(0.05)


def meshfs_mount(mnt, addr, *extra, cpu=None):
    """`meshfs mount MNT --node ADDR` (no discovery, on core `cpu` if given), returned once its
    readiness line is out."""
    os.makedirs(mnt, exist_ok=True)
    p = start(pinned([BIN, *extra, "mount", mnt, "--node", addr, "--no-discovery"], cpu), stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, text=True)
    if " ready:" not in p.stdout.readline():
        sys.exit("meshfs mount did not start")
    return p


def sshfs_mount(mnt, src, port, key, cpu=None):
    """sshfs (and its ssh) on core `cpu` if given; it daemonizes once mounted."""
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(pinned(["sshfs", f"root@127.0.0.1:{src}", mnt, "-p", str(port), "-o",
                           f"IdentityFile={key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null"], cpu),
                   check=True)


def rclone_mount(mnt, url, probe, cpu=None):
    """rclone mount of an HTTP folder (`:http:`, read-only, on core `cpu` if given), once
    `probe` (a file name in it) shows."""
    os.makedirs(mnt, exist_ok=True)
    p = start(pinned(["rclone", "mount", ":http:", mnt, "--http-url", url, "--read-only", "--no-modtime"], cpu),
              stderr=subprocess.DEVNULL)
    wait_path(os.path.join(mnt, probe))
    return p


def unmount(mnt, proc=None):
    subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Relay:
    """TCP relay to the node counting request lines (client to node) by their first word, and
    the bytes the `pread`s asked for. The client must speak in clear (`--plaintext`)."""

    def __init__(self, target):
        self.counts = collections.Counter()
        self.pread_bytes = 0
        self.lock = threading.Lock()
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            u = socket.create_connection(self.target)
            threading.Thread(target=self.pipe, args=(u, c), daemon=True).start()
            threading.Thread(target=self.requests, args=(c, u), daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        # A side that goes away (a mount unmounted, a node stopped) ends the relay quietly.
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def requests(self, c, u):
        try:
            for line in c.makefile("rb"):
                words = line.split(b" ", 3)
                with self.lock:
                    self.counts[words[0].strip().decode(errors="replace")] += 1
                    if words[0] == b"pread" and len(words) > 2 and words[2].isdigit():
                        self.pread_bytes += int(words[2])
                u.sendall(line)
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
