//! Shared helpers for the end-to-end tests: spawn the real `meshfs` binary and wait for its
//! readiness line (never a sleep).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
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
            assert!(std::time::Instant::now() < deadline, "meshfs did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Forward stdout lines to a channel from a thread.
fn pump(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Spawn `meshfs <args>` and return it once its first stdout line appeared; returns that line.
pub fn spawn(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn meshfs");
    let lines = pump(child.stdout.take().expect("stdout"));
    let proc = Proc { child, lines };
    let first = proc.next_line(Duration::from_secs(20));
    (proc, first)
}

/// A node serving `dir` on a free loopback port; returns the process and its `host:port`.
pub fn node(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--name", "testnode"];
    args.extend_from_slice(extra);
    let (proc, line) = spawn(&args);
    // "meshfs node NAME serving DIR on ADDR"
    let addr = line.rsplit(' ').next().expect("address").to_owned();
    assert!(line.starts_with("meshfs node "), "unexpected readiness line {line:?}");
    (proc, addr)
}
