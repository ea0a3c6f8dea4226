//! Shared helpers for the end-to-end tests: spawn the real `meshfs` binary and wait for its
//! readiness line (never a sleep).
//!
//! Each test file is its own crate that includes this module (`mod common;`), so a helper
//! lives here once two files need it. [`group`] gives a test a LAN group of its own (tests
//! run at once must not discover each other's nodes); [`ports`] finds the free ports that a
//! group or a cluster must name in advance; [`relay`] puts a lying source in front of a node.
#![allow(dead_code)]

pub mod directory;
pub mod group;
pub mod mount;
pub mod ports;
pub mod relay;
pub mod tmpfs;
pub mod web;
pub mod webm;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the `meshfs` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_meshfs")
}

/// A running `meshfs` process, killed when dropped.
pub struct Proc {
    pub child: Child,
    /// Lines of stdout after the readiness line, as they arrive.
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Next stdout line, or panic after `timeout`.
    pub fn next_line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no line from meshfs within {timeout:?}: {e}"))
    }

    /// Next stdout line but a node's `id ID` line (printed after its address lines, before
    /// what discovery prints).
    pub fn next_line_but_id(&self, timeout: Duration) -> String {
        loop {
            let line = self.next_line(timeout);
            if !line.starts_with("id ") {
                return line;
            }
        }
    }

    /// Send a signal (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for the process to exit, at most `timeout`; panics if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "meshfs did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Spawn `meshfs <args>` and return it once its first stdout line appeared; returns that line.
pub fn spawn(args: &[&str]) -> (Proc, String) {
    let proc = spawn_piped(Command::new(bin()).args(args).stderr(Stdio::inherit()));
    let first = proc.next_line(Duration::from_secs(20));
    (proc, first)
}

/// Spawn `cmd` (any program, with whatever environment and stderr the caller gave it) with
/// stdin closed and its stdout lines on [`Proc::lines`]. Nothing waits for a readiness line
/// here: each caller knows its own.
pub fn spawn_piped(cmd: &mut Command) -> Proc {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    Proc { child, lines }
}

/// Spawn `cmd` with stdin piped, for a process driven line by line (`meshfs chat`, `meshfs
/// shell`, a Python peer): returns it with its stdout lines, and its stdin. Nothing waits for a
/// readiness line here: each caller knows its own.
pub fn spawn_with_stdin(cmd: &mut Command) -> (Proc, ChildStdin) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdin = child.stdin.take().expect("stdin");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    (Proc { child, lines }, stdin)
}

/// A node serving `dir` on a free loopback port; returns the process and its `host:port`.
pub fn node(dir: &Path, extra: &[&str]) -> (Proc, String) {
    named_node(dir, "testnode", extra)
}

/// [`node`] with its log (stderr) on a channel, for tests that read what the node logged.
pub fn logged_node(dir: &Path, extra: &[&str]) -> (Proc, String, mpsc::Receiver<String>) {
    let mut args = vec!["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(&["--name", "testnode"]);
    args.extend_from_slice(extra);
    logged(&args)
}

/// `meshfs <args>`, a node (global flags first: `--plaintext node DIR …`), with its log
/// (stderr) on a channel: returns it once ready, with its file-server address and its log.
pub fn logged(args: &[&str]) -> (Proc, String, mpsc::Receiver<String>) {
    let mut proc = spawn_piped(Command::new(bin()).args(args).stderr(Stdio::piped()));
    let log = lines_of(proc.child.stderr.take().expect("stderr"));
    let line = proc
        .lines
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("node not ready: {:?}", log.try_iter().collect::<Vec<_>>()));
    (proc, node_addr(&line), log)
}

/// A node named `name` serving `dir` on a free loopback port, `extra` flags after the name;
/// returns it once ready, with its file-server address.
pub fn named_node<S: AsRef<str>>(dir: &Path, name: &str, extra: &[S]) -> (Proc, String) {
    node_at(dir, name, "127.0.0.1:0", extra)
}

/// [`named_node`] listening on `listen` (a node coming back on the address it had).
pub fn node_at<S: AsRef<str>>(dir: &Path, name: &str, listen: &str, extra: &[S]) -> (Proc, String) {
    let mut args = vec!["node", dir.to_str().unwrap(), "--listen", listen];
    args.extend_from_slice(&["--name", name]);
    args.extend(extra.iter().map(AsRef::as_ref));
    let (proc, line) = spawn(&args);
    (proc, node_addr(&line))
}

/// The file-server address of a node's readiness line, `meshfs node NAME serving DIR on
/// ADDR` (asserting that it is one).
pub fn node_addr(line: &str) -> String {
    assert!(
        line.starts_with("meshfs node "),
        "unexpected readiness line {line:?}"
    );
    line.rsplit(' ').next().expect("address").to_owned()
}

/// Run `meshfs <args>` in `cwd` to completion.
pub fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run meshfs")
}

/// Assert that a finished command (`meshfs cat`, `curl`…) succeeded, showing its stderr if not.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `--ftp-users` file in `dir` with one writer, `user`, hashed by `meshfs ftp-passwd`.
pub fn ftp_users(dir: &Path, user: &str, password: &str) -> std::path::PathBuf {
    let mut child = Command::new(bin())
        .args(["ftp-passwd", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with(&format!("{user}:$argon2id$")), "{line}");
    let path = dir.join("ftp-users");
    std::fs::write(&path, line).unwrap();
    path
}

/// Poll an observable condition (a file's size, a process state) until it holds, at most
/// `timeout`; returns how long it took.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Deterministic pseudo-random bytes (xorshift), so a misplaced byte never matches by accident.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Lines of any reader (a child's stdout or stderr), delivered on a channel by a thread.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Read lines from `rx` until one satisfies `pred` (at most `timeout`); returns all read.
pub fn until_line(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("expected line not seen; got {seen:?}"));
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// Read lines from `rx` for `period`, asserting that none starts with `prefix`: the one way to
/// show that something does not happen (a peer is not dropped while alive). Lines are read as
/// they come; the period is what is being tested, not a wait for something else.
pub fn no_line_for(rx: &mpsc::Receiver<String>, period: Duration, prefix: &str) {
    let quiet_until = std::time::Instant::now() + period;
    while let Some(left) = quiet_until.checked_duration_since(std::time::Instant::now()) {
        if let Ok(line) = rx.recv_timeout(left) {
            assert!(!line.starts_with(prefix), "{line}");
        }
    }
}

/// A loopback TCP address where connections are refused, held for as long as the value lives.
///
/// "Bind a listener, note its port, close it" races with every other test: the kernel hands
/// the freed port to the next server that binds port 0. A socket bound but never listening
/// keeps the port taken, and the kernel answers every SYN to it with a reset.
pub struct RefusedPort {
    _socket: std::os::fd::OwnedFd,
    pub addr: String,
}

impl RefusedPort {
    pub fn bind() -> RefusedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket syscalls on a descriptor we own from creation; the sockaddr
        // structures are fully initialised and passed with their exact sizes.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, (&raw const sa).cast(), len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got_len = len;
            let rc = libc::getsockname(fd, (&raw mut sa).cast(), &mut got_len);
            assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
            RefusedPort {
                _socket: socket,
                addr: format!("127.0.0.1:{}", u16::from_be(sa.sin_port)),
            }
        }
    }
}
