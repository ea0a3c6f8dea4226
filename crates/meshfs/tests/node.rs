//! `meshfs node` as a user starts it: what its share may hold (folders it cannot read, more
//! folders than inotify will watch) and what its flags may say, with the real binary.
//!
//! Tests run as root, who reads everything; a node that must meet an unreadable folder runs
//! as `nobody` (`setpriv`), on a share the test prepares and hands over.

mod common;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Proc, bin, lines_of, node_addr, spawn_piped, until_line};

const WAIT: Duration = Duration::from_secs(20);

/// A folder for one node run under another identity: `share/` (what it serves) and `home/`
/// (its HOME, state and configuration), both handed to the node's user.
struct Place {
    top: tempfile::TempDir,
    share: PathBuf,
    home: PathBuf,
}

impl Place {
    fn new() -> Place {
        let top = tempfile::tempdir().unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (share, home) = (top.path().join("share"), top.path().join("home"));
        std::fs::create_dir(&share).unwrap();
        std::fs::create_dir(&home).unwrap();
        Place { top, share, home }
    }

    /// Give the share and home (as they are now) to `nobody`.
    fn hand_to_nobody(&self) {
        let out = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(&self.share)
            .arg(&self.home)
            .output()
            .unwrap();
        common::assert_success(&out);
    }

    /// `meshfs node` on this share, started through `runner` (e.g. `setpriv …`), with its
    /// stderr on a channel; returns once its readiness line is out.
    fn node(&self, runner: &[&str]) -> (Proc, String, mpsc::Receiver<String>) {
        let mut cmd = Command::new(runner[0]);
        cmd.args(&runner[1..])
            .arg(bin())
            .arg("node")
            .arg(&self.share)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--name",
                "unpriv",
                "--no-discovery",
            ])
            .args(["--no-web", "--state"])
            .arg(self.home.join("state"))
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .stderr(Stdio::piped());
        let mut proc = spawn_piped(&mut cmd);
        let err = lines_of(proc.child.stderr.take().unwrap());
        let ready = proc
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("node not ready: {:?}", err.try_iter().collect::<Vec<_>>()));
        let addr = node_addr(&ready);
        (proc, addr, err)
    }
}

/// Run as `nobody`: `setpriv` drops root's identity and groups.
const AS_NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
];

/// A `meshfs watch` of one node, connected: its event lines.
struct Watch {
    proc: Proc,
    _err: mpsc::Receiver<String>,
}

impl Watch {
    /// `meshfs watch` as the test's user, with its own pins (`config`): each node here is new.
    fn start(addr: &str, config: &Path) -> Watch {
        let mut proc = spawn_piped(
            Command::new(bin())
                .args(["watch", &format!("meshfs://{addr}")])
                .env("XDG_CONFIG_HOME", config)
                .stderr(Stdio::piped()),
        );
        let err = lines_of(proc.child.stderr.take().unwrap());
        until_line(&err, WAIT, |l| l.starts_with("connected to unpriv"));
        Watch { proc, _err: err }
    }

    /// Wait for the event line ending with ` KIND PATH`.
    fn expect(&self, kind: &str, path: &str) {
        let tail = format!(" {kind} {path}");
        until_line(&self.proc.lines, WAIT, |l| l.ends_with(&tail));
    }
}

/// Stop the node and return all it wrote on stderr.
fn stderr_of(mut node: Proc, err: mpsc::Receiver<String>) -> Vec<String> {
    node.signal(libc::SIGTERM);
    node.wait_exit(WAIT);
    err.iter().collect()
}

fn write(path: impl AsRef<Path>) {
    std::fs::write(path, b"x").unwrap();
}

#[test]
fn folders_the_node_cannot_read_cost_only_their_own_events() {
    let place = Place::new();
    let share = &place.share;
    for d in ["closed", "open/deep"] {
        std::fs::create_dir_all(share.join(d)).unwrap();
    }
    place.hand_to_nobody();
    std::fs::set_permissions(share.join("closed"), PermissionsExt::from_mode(0o000)).unwrap();

    let (node, addr, err) = place.node(AS_NOBODY);
    let watch = Watch::start(&addr, place.top.path());
    write(share.join("open/deep/a.txt"));
    watch.expect("closed", "open/deep/a.txt");

    // A folder that appears unreadable (made with mode 000 at once): reported, not watched.
    std::fs::DirBuilder::new()
        .mode(0o000)
        .create(share.join("later"))
        .unwrap();
    watch.expect("created", "later");
    write(share.join("b.txt"));
    watch.expect("closed", "b.txt");

    // A watched folder made unreadable later keeps its watch.
    std::fs::set_permissions(share.join("open"), PermissionsExt::from_mode(0o000)).unwrap();
    write(share.join("open/c.txt"));
    watch.expect("closed", "open/c.txt");

    // The unreadable folder made readable: watched from then on, what it holds reported.
    std::fs::set_permissions(share.join("closed"), PermissionsExt::from_mode(0o755)).unwrap();
    write(share.join("closed/d.txt"));
    watch.expect("created", "closed/d.txt");
    write(share.join("closed/e.txt"));
    watch.expect("closed", "closed/e.txt");

    let log = stderr_of(node, err);
    assert!(
        !log.iter().any(|l| l.contains("cannot watch the share")),
        "{log:#?}"
    );
    for folder in ["closed", "later"] {
        let path = share.join(folder).display().to_string();
        let said = log
            .iter()
            .filter(|l| l.contains("cannot watch this folder") && l.contains(&path))
            .count();
        assert_eq!(said, 1, "{folder} reported once by path: {log:#?}");
    }
    assert!(!log.iter().any(|l| l.contains('\x1b')), "{log:#?}");
}

#[test]
fn the_inotify_watch_limit_costs_only_the_folders_beyond_it() {
    let place = Place::new();
    let share = &place.share;
    for d in ["a", "b", "c", "d", "e", "f"] {
        std::fs::create_dir(share.join(d)).unwrap();
    }
    // A user namespace of its own, where the watch limit (`user.max_inotify_watches`, per
    // namespace) can be lowered for this node alone: the share and two folders.
    let limit = "echo 3 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"";
    let runner = ["unshare", "--user", "--map-root-user", "sh", "-c", limit];
    let (node, addr, err) = place.node(&runner);
    let watch = Watch::start(&addr, place.top.path());
    write(share.join("top.txt"));
    watch.expect("closed", "top.txt");

    let log = stderr_of(node, err);
    let said = log
        .iter()
        .filter(|l| l.contains("inotify watch limit reached"))
        .count();
    assert_eq!(said, 1, "{log:#?}");
    assert!(
        !log.iter().any(|l| l.contains("cannot watch the share")),
        "{log:#?}"
    );
}

/// More changes than the kernel queues for the share's watch (`fs.inotify.max_queued_events`)
/// while the node cannot read them (stopped here; a burst on a busy node does the same): the
/// kernel drops the rest, subscribers are told `resync`, and events flow again, from folders
/// made while changes were dropped too.
#[test]
fn the_kernels_queue_overflowing_is_told_as_resync() {
    let place = Place::new();
    let share = &place.share;
    let (node, addr, err) = place.node(&["env"]);
    let watch = Watch::start(&addr, place.top.path());
    write(share.join("first"));
    watch.expect("closed", "first");

    let queued: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    node.signal(libc::SIGSTOP);
    // Each new file is two changes (created, closed after writing).
    for i in 0..queued / 2 + 1000 {
        std::fs::File::create(share.join(format!("f{i:07}"))).unwrap();
    }
    // Made once the queue is full: the kernel drops its `created`.
    std::fs::create_dir(share.join("late")).unwrap();
    node.signal(libc::SIGCONT);
    until_line(&watch.proc.lines, WAIT, |l| l.ends_with(" resync"));
    write(share.join("late/after"));
    watch.expect("closed", "late/after");
    stderr_of(node, err);
}

/// `meshfs node ARGS` in `cwd`, expected to fail: its stderr, after checking that it said
/// nothing on stdout (no readiness line for a node that does not serve).
fn node_fails(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("node")
        .args(args)
        .args(["--no-discovery", "--state"])
        .arg(cwd.join(".state"))
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join(".config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn a_door_that_cannot_start_stops_the_node_before_it_serves_and_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    // `--ftp cam1`: the folder taken as FTP's address.
    let e = node_fails(t.path(), &["--listen", "127.0.0.1:0", "--ftp", "cam1"]);
    assert!(e.contains("\"cam1\" is not an address"), "{e}");
    assert!(e.contains("meshfs node cam1 --ftp"), "{e}");
    assert!(!t.path().join("share").exists());
    // An explicit web or FTP address that is taken.
    let taken = common::RefusedPort::bind();
    for door in ["--web", "--ftp"] {
        let e = node_fails(
            t.path(),
            &["new", "--listen", "127.0.0.1:0", door, &taken.addr],
        );
        assert!(e.contains(&taken.addr), "{door}: {e}");
        assert!(
            !t.path().join("new").exists(),
            "{door} left the share folder"
        );
    }
}

#[test]
fn the_folder_to_serve_is_a_folder_and_only_its_last_part_is_created() {
    let t = tempfile::tempdir().unwrap();
    write(t.path().join("afile"));
    let e = node_fails(t.path(), &["afile", "--listen", "127.0.0.1:0"]);
    assert!(
        e.contains("cannot serve afile: it is a file, not a folder"),
        "{e}"
    );
    let e = node_fails(t.path(), &["clpis/day1", "--listen", "127.0.0.1:0"]);
    assert!(e.contains("clpis does not exist"), "{e}");
    assert!(!t.path().join("clpis").exists());

    // A new folder is made, and said.
    let mut cmd = Command::new(bin());
    cmd.args([
        "node",
        "day1",
        "--listen",
        "127.0.0.1:0",
        "--no-discovery",
        "--no-web",
    ])
    .arg("--state")
    .arg(t.path().join(".state"))
    .current_dir(t.path())
    .stderr(Stdio::piped());
    let mut node = spawn_piped(&mut cmd);
    let err = lines_of(node.child.stderr.take().unwrap());
    node.lines.recv_timeout(WAIT).expect("readiness line");
    assert!(t.path().join("day1").is_dir());
    let log = stderr_of(node, err);
    assert!(
        log.iter()
            .any(|l| l.contains("created the folder to serve")),
        "{log:#?}"
    );
}

#[test]
fn doors_without_their_own_host_follow_listen() {
    let t = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["node", "share", "--listen", "127.0.0.1:0", "--no-discovery"])
        .args([
            "--ftp",
            ":0",
            "--registry",
            "127.0.0.1:1",
            "--peer-listen",
            ":0",
        ])
        .arg("--state")
        .arg(t.path().join(".state"))
        .current_dir(t.path())
        .stderr(Stdio::null());
    let node = spawn_piped(&mut cmd);
    let lines: Vec<String> = (0..4)
        .map(|_| node.lines.recv_timeout(WAIT).unwrap())
        .collect();
    assert!(lines[0].ends_with(&format!(" on {}", node_addr(&lines[0]))));
    assert!(node_addr(&lines[0]).starts_with("127.0.0.1:"), "{lines:?}");
    assert!(lines[1].starts_with("web http://127.0.0.1:"), "{lines:?}");
    assert!(lines[2].starts_with("ftp 127.0.0.1:"), "{lines:?}");
    assert!(lines[3].starts_with("id "), "{lines:?}");
}

/// Breaks if: an entry no door can serve (a name with a line break, a name that is not UTF-8,
/// a symlink leading out of the share, a FIFO) is left out without a word, or is logged again
/// at every listing; or if what can be served (a symlink inside) is left out.
#[test]
fn names_that_cannot_be_served_are_logged_once_each_with_why() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    write(share.join("ok.txt"));
    write(share.join("two\nlines.txt"));
    write(share.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")));
    write(dir.path().join("outside.txt"));
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), share.join("leak")).unwrap();
    std::os::unix::fs::symlink("ok.txt", share.join("alias")).unwrap();
    let fifo = std::ffi::CString::new(share.join("pipe").into_os_string().into_vec()).unwrap();
    // SAFETY: a plain syscall on a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let (node, addr, log) = common::logged_node(&share, &["--no-discovery", "--no-web"]);
    for _ in 0..2 {
        let out = common::run(&["ls", &format!("meshfs://{addr}/")], dir.path());
        common::assert_success(&out);
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["alias", "ok.txt"], "served: what can be");
    }
    let log = stderr_of(node, log);
    for (path, why) in [
        (r#""two\nlines.txt""#, "line break"),
        ("\"caf\u{fffd}.txt\"", "not UTF-8"),
        (r#""leak""#, "symlink leading out of the share"),
        (r#""pipe""#, "FIFO"),
    ] {
        let said: Vec<&String> = log
            .iter()
            .filter(|l| l.contains(&format!("not served: {path}: ")))
            .collect();
        assert_eq!(said.len(), 1, "{path}: {log:#?}");
        assert!(said[0].contains(why), "{said:?}");
    }
}
