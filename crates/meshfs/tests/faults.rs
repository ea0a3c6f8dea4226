//! Crash and fault tests: the node killed mid-transfer, a full disk, slowloris connections, and
//! a peer that stalls mid-reply.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, node, pattern, run as meshfs, spawn, wait_until};

#[test]
fn node_killed_mid_transfer_then_restarted_get_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let data = pattern(40 << 20, 11);
    std::fs::write(share.join("v.mp4"), &data).unwrap();
    let (node1, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/v.mp4");
    let part = dir.path().join("v.mp4.part");
    let get = Command::new(bin())
        .args(["get", &url, "--limit-rate", "20M"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "partial download", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 4 << 20)
    });
    drop(node1); // SIGKILL of the node
    let out = get.wait_with_output().unwrap();
    assert!(!out.status.success(), "get must fail when the node dies");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0);

    let (_node2, _) = spawn(&[
        "node",
        share.to_str().unwrap(),
        "--listen",
        &addr,
        "--name",
        "n",
    ]);
    let out = meshfs(&["get", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resumed at byte"),
        "{out:?}"
    );
    assert!(std::fs::read(dir.path().join("v.mp4")).unwrap() == data);
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
            &format!("meshfs://{addr}/x"),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stalled"), "{err}");
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
