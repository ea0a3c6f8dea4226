//! Node-side bandwidth limits (issue 19): `--max-upload-rate` for the whole node, across
//! clients and doors; `--max-upload-rate-per-client`; `--max-replication-rate`.
//!
//! Real clients (`meshfs cat` in TLS and in clear, curl over HTTP and FTP, a replicating node)
//! fetch large files while the test samples how many bytes have landed on disk. At every
//! sample the bytes received must stay under the limit's bound for the time elapsed since the
//! clients were started — `limit × t × 1.2 + one burst + a slice per client` — and at the end
//! every client must have made real progress (a floor): an assertion on a bound measured over
//! seconds, never on an exact timing. Files are sparse, so a client without a limit finishes in
//! a fraction of a second and breaks the bound at once.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Proc;

const MB: u64 = 1_000_000;
/// How long the clients are watched.
const WINDOW: Duration = Duration::from_secs(3);
/// Size of each file served: far more than any limit lets through in [`WINDOW`].
const BIG: u64 = 64 << 20;

/// A node and the addresses of its doors, read from its stdout lines.
struct Node {
    _proc: Proc,
    addr: String,
    web: Option<String>,
    ftp: Option<String>,
}

/// A node serving `dir` on loopback with `extra` flags, once every door is up.
fn node(dir: &Path, extra: &[&str]) -> Node {
    let mut args = vec!["--no-discovery"];
    args.extend_from_slice(extra);
    let (proc, addr) = common::named_node(dir, "ratenode", &args);
    let (mut web, mut ftp) = (None, None);
    for line in common::until_line(&proc.lines, Duration::from_secs(20), |l| {
        l.starts_with("id ")
    }) {
        if let Some(w) = line.strip_prefix("web http://") {
            web = Some(w.trim_end_matches('/').to_owned());
        } else if let Some(f) = line.strip_prefix("ftp ") {
            ftp = Some(f.to_owned());
        }
    }
    Node {
        _proc: proc,
        addr,
        web,
        ftp,
    }
}

/// A sparse file of `len` bytes.
fn sparse(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A client process (killed when dropped) and the files its bytes land in.
struct Client {
    child: Child,
    files: Vec<PathBuf>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Client {
    fn start(cmd: &mut Command, stdout: Stdio, files: Vec<PathBuf>) -> Client {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn client");
        Client { child, files }
    }

    /// `meshfs cat URL > DEST` as a user of its own (`home`: its key, so the node tells users
    /// apart by ID), in TLS, or in clear with `--plaintext`. (`cat` writes each 1 MiB as it
    /// comes; `get` would show its bytes 4 MiB at a time.)
    fn cat(url: &str, dest: &Path, home: &Path, plaintext: bool) -> Client {
        let mut cmd = Command::new(common::bin());
        cmd.env("XDG_CONFIG_HOME", home);
        if plaintext {
            cmd.arg("--plaintext");
        }
        cmd.args(["cat", url]);
        let out = fs::File::create(dest).unwrap();
        Client::start(&mut cmd, out.into(), vec![dest.to_owned()])
    }

    /// `curl URL -o DEST` (HTTP or FTP).
    fn curl(url: &str, dest: &Path) -> Client {
        Client::curl_from("127.0.0.1", url, dest)
    }

    /// [`Client::curl`] from the loopback address `from` (127.0.0.2: another client by IP).
    fn curl_from(from: &str, url: &str, dest: &Path) -> Client {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "60"])
            .args(["--interface", from, "-o"])
            .arg(dest)
            .arg(url);
        Client::start(&mut cmd, Stdio::null(), vec![dest.to_owned()])
    }

    /// Bytes received so far.
    fn received(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The most a limit of `limit` bytes per second lets `clients` receive in `elapsed`: 20 %
/// over the rate, the bucket's burst (100 ms at the rate), and a slice in flight per client.
fn bound(limit: u64, elapsed: Duration, clients: usize) -> u64 {
    let slices = clients as u64 * (512 << 10);
    (limit as f64 * elapsed.as_secs_f64() * 1.2) as u64 + limit / 10 + slices
}

/// Sample `received()` until `WINDOW` has passed since `start`.
/// It returns groups of clients, each group under one limit of `limit` bytes per second: at
/// every sample each group's total stays within [`bound`]. Returns the last sample.
fn watch(
    start: Instant,
    limit: u64,
    what: &str,
    mut received: impl FnMut() -> Vec<Vec<u64>>,
) -> Vec<Vec<u64>> {
    loop {
        let got = received();
        let elapsed = start.elapsed();
        for group in &got {
            let total: u64 = group.iter().sum();
            let most = bound(limit, elapsed, group.len());
            assert!(
                total <= most,
                "{what}: {total} bytes after {elapsed:?}, over the bound {most} of a {limit} B/s \
                 limit (each: {got:?})"
            );
        }
        if elapsed >= WINDOW {
            eprintln!("{what}: {got:?} bytes in {elapsed:?}");
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every client got at least `floor` bytes.
#[track_caller]
fn assert_progress(got: &[u64], floor: u64, what: &str) {
    for (i, &n) in got.iter().enumerate() {
        assert!(
            n >= floor,
            "{what}: client {i} received only {n} bytes (floor {floor}): {got:?}"
        );
    }
}

#[test]
fn the_node_limit_holds_across_two_clients_in_tls_and_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir(&share).unwrap();
    sparse(&share.join("a.bin"), BIG);
    sparse(&share.join("b.bin"), BIG);
    let limit = 4 * MB;
    let node = node(&share, &["--no-web", "--max-upload-rate", "4M"]);

    let start = Instant::now();
    // One client in TLS (payloads through the cipher), one in clear (sendfile in slices).
    let clients = [
        Client::cat(
            &format!("meshfs://{}/a.bin", node.addr),
            &tmp.path().join("a.bin"),
            &tmp.path().join("user-a"),
            false,
        ),
        Client::cat(
            &format!("meshfs://{}/b.bin", node.addr),
            &tmp.path().join("b.bin"),
            &tmp.path().join("user-b"),
            true,
        ),
    ];
    let got = watch(start, limit, "two clients of one node", || {
        vec![clients.iter().map(Client::received).collect()]
    })
    .remove(0);
    // Both move, and together they use most of the limit (fair, not one starving the other).
    let expected = (limit as f64 * WINDOW.as_secs_f64()) as u64;
    assert_progress(&got, expected / 6, "two clients of one node");
    assert!(got.iter().sum::<u64>() >= expected / 2, "{got:?}");
}

#[test]
fn the_per_client_limit_holds_for_one_client_and_spares_another() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir(&share).unwrap();
    for name in ["a1.bin", "a2.bin", "b.bin"] {
        sparse(&share.join(name), BIG);
    }
    let limit = 2 * MB;
    let node = node(&share, &["--no-web", "--max-upload-rate-per-client", "2M"]);

    // Each user's key made once, before two of its commands start at the same moment.
    for user in ["user-a", "user-b"] {
        let made = Command::new(common::bin())
            .env("XDG_CONFIG_HOME", tmp.path().join(user))
            .arg("id")
            .output()
            .unwrap();
        common::assert_success(&made);
    }
    let start = Instant::now();
    let cat = |name: &str, user: &str| {
        Client::cat(
            &format!("meshfs://{}/{name}", node.addr),
            &tmp.path().join(name),
            &tmp.path().join(user),
            false,
        )
    };
    // User a downloads twice at once: one client (one ID), one allowance. User b, from the same
    // address at the same time, is another client with an allowance of its own.
    let a = [cat("a1.bin", "user-a"), cat("a2.bin", "user-a")];
    let b = cat("b.bin", "user-b");
    let got = watch(start, limit, "per-client limit", || {
        vec![a.iter().map(Client::received).collect(), vec![b.received()]]
    });
    let expected = (limit as f64 * WINDOW.as_secs_f64()) as u64;
    assert_progress(&got[0], expected / 6, "user a's two downloads");
    // Sharing a's allowance (one address) would leave b a third of it.
    assert_progress(&got[1], expected * 7 / 10, "user b, beside user a");
}

#[test]
fn the_replication_limit_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, replica) = (tmp.path().join("source"), tmp.path().join("replica"));
    fs::create_dir(&source).unwrap();
    fs::create_dir(&replica).unwrap();
    sparse(&source.join("clip.bin"), BIG);
    let limit = 2 * MB;
    let source_node = node(&source, &["--no-web"]);

    let start = Instant::now();
    // The replica's catch-up pulls clip.bin at once, under its replication limit.
    let _replica = node(
        &replica,
        &[
            "--no-web",
            "--cluster-peer",
            &source_node.addr,
            "--max-replication-rate",
            "2M",
        ],
    );
    // Whatever lands in the replica's share: the download's `.part`, then the file.
    let landed = || -> Vec<Vec<u64>> {
        let total = fs::read_dir(&replica)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        vec![vec![total]]
    };
    let got = watch(start, limit, "replication", landed).remove(0);
    let expected = (limit as f64 * WINDOW.as_secs_f64()) as u64;
    assert_progress(&got, expected / 3, "replication");
}

#[test]
fn the_node_limit_covers_web_files_zips_and_ftp() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(share.join("folder")).unwrap();
    sparse(&share.join("web.bin"), BIG);
    sparse(&share.join("ftp.bin"), BIG);
    sparse(&share.join("folder/zipped.bin"), BIG);
    // The limit comes from the configuration file, like a packaged node's.
    let config = tmp.path().join("meshfs.toml");
    fs::write(&config, "max-upload-rate = \"4M\"\n").unwrap();
    let limit = 4 * MB;
    let node = node(
        &share,
        &[
            "--config",
            config.to_str().unwrap(),
            "--ftp",
            "127.0.0.1:0",
            "--no-web-tls",
        ],
    );
    let (web, ftp) = (node.web.unwrap(), node.ftp.unwrap());

    let start = Instant::now();
    let clients = [
        Client::curl(
            &format!("http://{web}/files/ratenode/web.bin"),
            &tmp.path().join("web.bin"),
        ),
        Client::curl(
            &format!("http://{web}/api/zip/ratenode/folder"),
            &tmp.path().join("folder.zip"),
        ),
        Client::curl(&format!("ftp://{ftp}/ftp.bin"), &tmp.path().join("ftp.bin")),
    ];
    let got = watch(start, limit, "web, zip and FTP clients of one node", || {
        vec![clients.iter().map(Client::received).collect()]
    })
    .remove(0);
    let expected = (limit as f64 * WINDOW.as_secs_f64()) as u64;
    assert_progress(&got, expected / 10, "web, zip and FTP clients of one node");
}

/// Breaks if: web and FTP downloads are not charged to their client's allowance by address
/// (`--max-upload-rate-per-client`: a browser or FTP client shows no node ID): a web file and
/// an FTP file fetched from 127.0.0.1 share one allowance, while a client at 127.0.0.2 has
/// one of its own beside them.
#[test]
fn the_per_client_limit_counts_web_and_ftp_clients_by_address() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir(&share).unwrap();
    for name in ["web.bin", "ftp.bin", "other.bin"] {
        sparse(&share.join(name), BIG);
    }
    let limit = 2 * MB;
    let node = node(
        &share,
        &[
            "--max-upload-rate-per-client",
            "2M",
            "--ftp",
            "127.0.0.1:0",
            "--no-web-tls",
        ],
    );
    let (web, ftp) = (node.web.unwrap(), node.ftp.unwrap());

    let start = Instant::now();
    let same = [
        Client::curl(
            &format!("http://{web}/files/ratenode/web.bin"),
            &tmp.path().join("web.bin"),
        ),
        Client::curl(&format!("ftp://{ftp}/ftp.bin"), &tmp.path().join("ftp.bin")),
    ];
    let other = Client::curl_from(
        "127.0.0.2",
        &format!("http://{web}/files/ratenode/other.bin"),
        &tmp.path().join("other.bin"),
    );
    let got = watch(start, limit, "web and FTP clients by address", || {
        vec![
            same.iter().map(Client::received).collect(),
            vec![other.received()],
        ]
    });
    let expected = (limit as f64 * WINDOW.as_secs_f64()) as u64;
    assert_progress(&got[0], expected / 10, "web and FTP from 127.0.0.1");
    // Sharing 127.0.0.1's allowance would leave 127.0.0.2 a third of it.
    assert_progress(&got[1], expected * 7 / 10, "web from 127.0.0.2");
}
