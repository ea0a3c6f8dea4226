//! Crash and fault tests: the node killed mid-transfer, a full disk, slowloris connections, and
//! a peer that stalls mid-reply.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, node, pattern, run as meshfs, spawn, wait_until};

/// A throttled `get` of a 40 MiB file, under way (4 MiB in its `.part`) when the node that
/// serves it is killed with SIGKILL.
struct KilledMidTransfer {
    dir: tempfile::TempDir,
    data: Vec<u8>,
    addr: String,
    url: String,
    get: std::process::Child,
}

impl KilledMidTransfer {
    fn run(seed: u64, retries: &str) -> KilledMidTransfer {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        let data = pattern(40 << 20, seed);
        std::fs::write(share.join("v.mp4"), &data).unwrap();
        let (node, addr) = node(&share, &[]);
        let url = format!("meshfs://{addr}/v.mp4");
        let part = dir.path().join("v.mp4.part");
        let get = Command::new(bin())
            .args(["get", &url, "--limit-rate", "20M", "--retries", retries])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(20), "partial download", || {
            std::fs::metadata(&part).is_ok_and(|m| m.len() >= 4 << 20)
        });
        drop(node); // SIGKILL of the node, while `get` is running
        KilledMidTransfer {
            dir,
            data,
            addr,
            url,
            get,
        }
    }

    /// The node again, on the address it had.
    fn restart_node(&self) -> common::Proc {
        let share = self.dir.path().join("share");
        let args = ["node", share.to_str().unwrap(), "--listen", &self.addr];
        spawn(&[&args[..], &["--name", "n"]].concat()).0
    }

    fn saved(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("v.mp4")).unwrap()
    }
}

/// Breaks if: `get` gives up on a dropped connection instead of retrying, or its retry
/// starts over instead of resuming, or it does not say so.
#[test]
fn node_killed_mid_transfer_and_restarted_get_retries_and_resumes_by_itself() {
    let t = KilledMidTransfer::run(11, "8");
    let _node = t.restart_node();
    let out = t.get.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retrying in"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("resumed at byte"), "{text}");
    assert!(text.contains("the connection dropped"), "{text}");
    assert!(std::fs::read(t.dir.path().join("v.mp4")).unwrap() == t.data);
}

/// Breaks if: a `get` that could not finish throws its `.part` away.
#[test]
fn node_killed_mid_transfer_keeps_the_part_for_a_later_get() {
    let mut t = KilledMidTransfer::run(13, "0");
    assert!(
        !t.get.wait().unwrap().success(),
        "get must fail when the node dies"
    );
    let kept = std::fs::metadata(t.dir.path().join("v.mp4.part"))
        .unwrap()
        .len();
    assert!(kept > 0);

    let _node = t.restart_node();
    let out = meshfs(&["get", &t.url], t.dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("resumed at byte {kept}")),
        "{out:?}"
    );
    assert!(t.saved() == t.data);
}

/// Mount a small tmpfs (root only); `None` when this machine does not allow it.
fn small_tmpfs(at: &Path, size: &str) -> Option<()> {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(())
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
fn full_disk_keeps_the_part_and_resume_works_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let data = pattern(12 << 20, 12);
    std::fs::write(share.join("big"), &data).unwrap();
    let small = dir.path().join("small");
    if small_tmpfs(&small, "4m").is_none() {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Unmount(&small);
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/big");
    let out = meshfs(&["get", &url], &small);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    let kept = std::fs::metadata(small.join("big.part")).unwrap().len();
    assert!(kept > 0, "the partial file is kept");

    // Space is freed: the same command completes, from where it stopped.
    assert!(
        Command::new("mount")
            .args(["-o", "remount,size=64m"])
            .arg(&small)
            .status()
            .unwrap()
            .success()
    );
    let out = meshfs(&["get", &url], &small);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resumed at byte"),
        "{out:?}"
    );
    assert!(std::fs::read(small.join("big")).unwrap() == data);
}

#[test]
fn slowloris_connections_are_reaped_and_others_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"ok").unwrap();
    raise_fd_limit();
    let (_node, addr) = node(dir.path(), &["--idle-timeout", "2s"]);
    let mut slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"s").unwrap();
            s
        })
        .collect();
    // One more byte each, a moment later: still no complete request.
    for s in &mut slow {
        s.write_all(b"t").unwrap();
    }
    // A normal client is served promptly despite them.
    let started = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"pread 0 2 f\n").unwrap();
    let mut reply = [0u8; 6];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"0 2\nok");
    assert!(started.elapsed() < Duration::from_secs(1));
    // And the slow ones are closed once idle for 2 s, partial lines notwithstanding.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "connection reaped");
    }
}

#[test]
fn a_peer_that_stalls_mid_reply_times_out_with_a_clear_message() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = fake.local_addr().unwrap();
    // A "node" that answers hello and stat, then sends 10 of the 1000 bytes it announced, and stalls.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in fake.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 4096];
            let mut n = conn.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(b"hello") {
                conn.write_all(b"0 meshfs 0.1.0 node=fake proto=1\n")
                    .unwrap();
                n = conn.read(&mut buf).unwrap_or(0);
            }
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if req.starts_with("stat") {
                conn.write_all(
                    b"0 OK\nsize: 1000\nmodified: 2026-11-21T10:00:00Z\nmode: -rw-r--r--\ntype: file\n\n",
                )
                .unwrap();
                let n = conn.read(&mut buf).unwrap_or(0);
                if String::from_utf8_lossy(&buf[..n]).starts_with("open") {
                    conn.write_all(b"0 OK\n0 1000\n0123456789").unwrap();
                }
            }
            held.push(conn); // never closed, never answered further
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = meshfs(
        // The fake peer speaks the text protocol only.
        &[
            "get",
            "--plaintext",
            "--timeout",
            "1s",
            "--retries",
            "1",
            &format!("meshfs://{addr}/x"),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stalled"), "{err}");
    assert!(
        err.contains("retrying in"),
        "a stall is retried once: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// 1,000 sockets need more descriptors than the usual soft limit of 1,024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, exclusively borrowed struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
