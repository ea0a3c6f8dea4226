//! `meshfs registry`, `meshfs shell` and `meshfs node --registry` end to end, with the real
//! binary: durability across `kill -9`, a Python client written from registry.md alone, and
//! the shell's exact messages.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::directory::{call, fields_of, try_call};
use common::{Proc, spawn};

const WAIT: Duration = Duration::from_secs(20);

/// `meshfs registry` on a free loopback port with its state in `state`; returns its address.
fn registry(state: &Path) -> (Proc, String) {
    let (proc, line) = spawn(&[
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
    ]);
    let addr = line
        .strip_prefix("s> init server ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
        .to_owned();
    (proc, addr)
}

/// A node serving `dir` that joins the directory as `user`; returns once it says it joined.
fn joined_node(dir: &Path, user: &str, registry: &str) -> Proc {
    let (proc, _addr) = common::node(
        dir,
        &[
            "--registry",
            registry,
            "--user",
            user,
            "--peer-listen",
            "127.0.0.1:0",
        ],
    );
    loop {
        let line = proc.next_line(WAIT);
        if line.starts_with("meshfs node joined directory") {
            assert!(line.contains(&format!(" as {user} ")), "{line}");
            return proc;
        }
    }
}

#[test]
fn kill_9_loses_no_acknowledged_operation() {
    let state = tempfile::tempdir().unwrap();
    let (mut proc, addr) = registry(state.path());
    assert_eq!(call(&addr, &["REGISTER", "writer"]), [0]);
    assert_eq!(call(&addr, &["CONNECT", "writer", "4321"]), [0]);

    // A client publishes as fast as it can; every acknowledged file is reported.
    let (acked_tx, acked) = mpsc::channel::<u32>();
    let writer_addr = addr.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            let name = format!("file{i}");
            match try_call(&writer_addr, &["PUBLISH", "writer", &name, "d"]) {
                Ok(reply) if reply == [0] => {
                    if acked_tx.send(i).is_err() {
                        return;
                    }
                }
                _ => return, // the server is gone
            }
        }
    });
    let mut confirmed = Vec::new();
    while confirmed.len() < 150 {
        confirmed.push(
            acked
                .recv_timeout(WAIT)
                .expect("acknowledgements keep coming"),
        );
    }
    proc.child.kill().unwrap(); // SIGKILL, in the middle of the stream of operations
    proc.wait_exit(WAIT);
    writer.join().unwrap();
    confirmed.extend(acked.try_iter());

    let (_proc, addr) = registry(state.path());
    assert_eq!(
        call(&addr, &["REGISTER", "writer"]),
        [1],
        "the user survived"
    );
    let users = fields_of(&call(&addr, &["LIST_USERS", "writer"]));
    assert_eq!(users, ["1", "writer", "127.0.0.1", "4321"]);
    let listed: std::collections::HashSet<String> =
        fields_of(&call(&addr, &["LIST_CONTENT", "writer", "writer"]))
            .into_iter()
            .skip(1)
            .collect();
    let lost: Vec<u32> = confirmed
        .iter()
        .copied()
        .filter(|i| !listed.contains(&format!("file{i}")))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    assert!(
        listed.len() <= confirmed.len() + 1,
        "at most the one in flight was added unacknowledged"
    );
}

#[test]
fn python_client_from_the_spec_drives_every_operation_and_get_file() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = registry(state.path());
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let clip: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir(a.path().join("cam")).unwrap();
    std::fs::write(a.path().join("cam/clip.mp4"), &clip).unwrap();
    std::fs::write(b.path().join("note.txt"), b"a note from node b\n").unwrap();
    let _node_a = joined_node(a.path(), "cama", &addr);
    let _node_b = joined_node(b.path(), "camb", &addr);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/registry_client.py"
    );
    for (user, file, expected) in [
        ("cama", "cam/clip.mp4", a.path().join("cam/clip.mp4")),
        ("camb", "note.txt", b.path().join("note.txt")),
    ] {
        let out = Command::new("python3")
            .args([script, &addr, user, file, expected.to_str().unwrap()])
            .output()
            .expect("python3 (installed by .ci/install-deps)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python client failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
            "{stdout}"
        );
        assert!(stdout.contains("ok   GET_FILE content"), "{stdout}");
    }
}

/// `meshfs shell` on `registry`, its peer server on a free loopback port, run in `dir` (where
/// it saves what GET_FILE fetches).
fn shell(registry: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.args(["shell", "--registry", registry])
        .args(["--peer-listen", "127.0.0.1:0"])
        .current_dir(dir);
    cmd
}

/// A `meshfs shell` whose stdin stays open, for a peer that must stay connected.
/// (The process is killed when dropped.)
struct LiveShell {
    proc: Proc,
    stdin: ChildStdin,
}

impl LiveShell {
    fn start(registry: &str, dir: &Path) -> LiveShell {
        let (proc, stdin) = common::spawn_with_stdin(&mut shell(registry, dir));
        LiveShell { proc, stdin }
    }

    /// Send one command and return the next output line.
    fn run(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.proc.lines.recv_timeout(WAIT).expect("shell answers")
    }
}

/// Run `meshfs shell` on a script; its stdout with every `ip port` of listings replaced by
/// `IP PORT` (ports are picked at run time).
fn scripted_shell(registry: &str, dir: &Path, script: &str) -> String {
    let mut child = shell(registry, dir)
        .args(["--timeout", "5s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l.split(' ').collect::<Vec<_>>()[..] {
            [name, "127.0.0.1", port] if port.parse::<u16>().is_ok() => format!("{name} IP PORT"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shell_prints_exactly_the_course_messages() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = registry(state.path());
    let cam = tempfile::tempdir().unwrap();
    std::fs::write(cam.path().join("clip.mp4"), vec![42u8; 200_000]).unwrap();
    let _cam = joined_node(cam.path(), "cam", &addr);

    // alice: another shell that stays connected and serves her folder.
    let alice_dir = tempfile::tempdir().unwrap();
    std::fs::write(alice_dir.path().join("mine.txt"), b"alice's file\n").unwrap();
    let mut alice = LiveShell::start(&addr, alice_dir.path());
    assert_eq!(alice.run("REGISTER alice"), "REGISTER OK");
    assert_eq!(alice.run("CONNECT alice"), "CONNECT OK");
    assert_eq!(alice.run("PUBLISH mine.txt alice's own file"), "PUBLISH OK");

    let bob_dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(300);
    let script = format!(
        "REGISTER bob
REGISTER bob
REGISTER {long}
PUBLISH early.txt too early
CONNECT ghost
CONNECT bob
CONNECT bob
PUBLISH notes.txt some notes here
PUBLISH notes.txt again
DELETE nothing.txt
DELETE notes.txt
LIST_USERS
LIST_CONTENT cam
LIST_CONTENT alice
LIST_CONTENT ghost
GET_FILE cam clip.mp4 clip.mp4
GET_FILE alice mine.txt from-alice.txt
GET_FILE cam missing.mp4 missing.mp4
GET_FILE cam ../escape escape
GET_FILE ghost x x
UNREGISTER ghost
DISCONNECT ghost
FOO bar
REGISTER
GET_FILE cam
list_users

DISCONNECT bob
DISCONNECT bob
LIST_USERS
LIST_CONTENT cam
DELETE x
REGISTER carol
UNREGISTER carol
PUBLISH x d
DELETE x
LIST_USERS
LIST_CONTENT cam
CONNECT bob
QUIT
LIST_USERS
"
    );
    let expected = "REGISTER OK
USERNAME IN USE
REGISTER FAIL
PUBLISH FAIL, USER NOT CONNECTED
CONNECT FAIL, USER DOES NOT EXIST
CONNECT OK
USER ALREADY CONNECTED
PUBLISH OK
PUBLISH FAIL, CONTENT ALREADY PUBLISHED
DELETE FAIL, CONTENT NOT PUBLISHED
DELETE OK
LIST_USERS OK
alice IP PORT
bob IP PORT
cam IP PORT
LIST_CONTENT OK
clip.mp4
LIST_CONTENT OK
mine.txt
LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST
GET_FILE OK
GET_FILE OK
GET_FILE FAIL / FILE NOT EXIST
GET_FILE FAIL
GET_FILE FAIL
USER DOES NOT EXIST
DISCONNECT FAIL / USER DOES NOT EXIST
Error: command FOO not valid.
Syntax error. Usage: REGISTER <userName>
Syntax error. Usage: GET_FILE <userName> <remote_fileName> <local_fileName>
LIST_USERS OK
alice IP PORT
bob IP PORT
cam IP PORT
DISCONNECT OK
DISCONNECT FAIL / USER NOT CONNECTED
LIST_USERS FAIL, USER NOT CONNECTED
LIST_CONTENT FAIL, USER NOT CONNECTED
DELETE FAIL, USER NOT CONNECTED
REGISTER OK
UNREGISTER OK
PUBLISH FAIL, USER DOES NOT EXIST
DELETE FAIL, USER DOES NOT EXIST
LIST_USERS FAIL, USER DOES NOT EXIST
LIST_CONTENT FAIL, USER DOES NOT EXIST
CONNECT OK
DISCONNECT OK
+++ FINISHED +++";
    assert_eq!(scripted_shell(&addr, bob_dir.path(), &script), expected);

    // Both downloads arrived whole, and the failed ones left nothing behind.
    assert_eq!(
        std::fs::read(bob_dir.path().join("clip.mp4")).unwrap(),
        vec![42u8; 200_000]
    );
    assert_eq!(
        std::fs::read(bob_dir.path().join("from-alice.txt")).unwrap(),
        b"alice's file\n"
    );
    let mut left: Vec<String> = std::fs::read_dir(bob_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["clip.mp4", "from-alice.txt"]);

    // QUIT disconnects first.
    assert_eq!(alice.run("QUIT"), "DISCONNECT OK");
    assert_eq!(
        alice.proc.lines.recv_timeout(WAIT).unwrap(),
        "+++ FINISHED +++"
    );
    let status = alice.proc.child.wait().unwrap();
    assert!(status.success());
    let users = fields_of(&call(&addr, &["LIST_USERS", "cam"]));
    assert_eq!(users[0], "1", "only cam is still connected: {users:?}");
}

#[test]
fn shell_reports_failure_when_the_directory_is_down() {
    // A port where connections are refused.
    let refused = common::RefusedPort::bind();
    let addr = refused.addr.clone();
    let dir = tempfile::tempdir().unwrap();
    let script = "REGISTER x\nUNREGISTER x\nCONNECT x\nDISCONNECT x\nPUBLISH a b\nDELETE a\n\
                  LIST_USERS\nLIST_CONTENT x\nGET_FILE x a b\nQUIT\n";
    let expected = "REGISTER FAIL\nUNREGISTER FAIL\nCONNECT FAIL\nDISCONNECT FAIL\nPUBLISH FAIL\n\
                    DELETE FAIL\nLIST_USERS FAIL\nLIST_CONTENT FAIL\nGET_FILE FAIL\n+++ FINISHED +++";
    assert_eq!(scripted_shell(&addr, dir.path(), script), expected);
}

#[test]
fn a_node_disconnects_on_sigterm_and_keeps_its_files_listed_for_later() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = registry(state.path());
    assert_eq!(call(&addr, &["REGISTER", "watcher"]), [0]);
    assert_eq!(call(&addr, &["CONNECT", "watcher", "9"]), [0]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), b"jpeg").unwrap();
    let mut node = joined_node(dir.path(), "cam9", &addr);
    assert_eq!(
        fields_of(&call(&addr, &["LIST_CONTENT", "watcher", "cam9"])),
        ["1", "a.jpg"]
    );
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(WAIT).success());
    assert_eq!(
        fields_of(&call(&addr, &["LIST_USERS", "watcher"])),
        ["1", "watcher", "127.0.0.1", "9"]
    );
    assert_eq!(
        fields_of(&call(&addr, &["LIST_CONTENT", "watcher", "cam9"])),
        ["0"]
    );
    // Back again: connected with its files, nothing published twice.
    let _node = joined_node(dir.path(), "cam9", &addr);
    assert_eq!(
        fields_of(&call(&addr, &["LIST_CONTENT", "watcher", "cam9"])),
        ["1", "a.jpg"]
    );
}

#[test]
fn registry_keeps_its_state_under_xdg_state_home_and_stops_cleanly_on_sigint() {
    let xdg = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args(["registry", "--listen", "127.0.0.1:0"])
        .env("XDG_STATE_HOME", xdg.path())
        .env_remove("MESHFS_STATE")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("s> init server ")
        .expect("readiness line")
        .to_owned();
    assert_eq!(call(&addr, &["REGISTER", "xdg"]), [0]);
    assert!(xdg.path().join("meshfs/registry.sqlite3").is_file());
    // SAFETY: plain syscall on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    // The per-operation log went to stderr through the normal log.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("s> REGISTER FROM xdg"), "{log}");
}

/// Poll `LIST_CONTENT` until it lists exactly `want` (the directory is the observable state).
fn wait_listing(addr: &str, viewer: &str, user: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = fields_of(&call(addr, &["LIST_CONTENT", viewer, user]));
        if got[1..] == *want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listing {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_publishes_and_deletes_as_files_come_and_go() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = registry(state.path());
    assert_eq!(call(&addr, &["REGISTER", "viewer"]), [0]);
    assert_eq!(call(&addr, &["CONNECT", "viewer", "9"]), [0]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("first.jpg"), b"jpeg").unwrap();
    let _node = joined_node(dir.path(), "live", &addr);
    wait_listing(&addr, "viewer", "live", &["first.jpg"]);
    std::fs::write(dir.path().join("second.mp4"), vec![0u8; 4096]).unwrap();
    wait_listing(&addr, "viewer", "live", &["first.jpg", "second.mp4"]);
    std::fs::remove_file(dir.path().join("first.jpg")).unwrap();
    wait_listing(&addr, "viewer", "live", &["second.mp4"]);
}
