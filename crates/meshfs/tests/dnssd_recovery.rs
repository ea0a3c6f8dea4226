//! DNS-SD peers after an outage: mdns-sd does not resolve an unchanged service again, so a
//! node known through DNS-SD alone that expired during a short outage (a paused process, a
//! Wi-Fi blip) must be found again by asking its file server, not after the PTR record's TTL
//! (75 minutes).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::group::Group;
use common::{Proc, bin, lines_of, node_addr, until_line};

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 30;

/// A node printing discovery on stdout, its log (debug for the group) on `log`.
struct Node {
    proc: Proc,
    log: mpsc::Receiver<String>,
    /// Its file server.
    addr: String,
}

/// A node on a group of its own (so what it learns of the other came through DNS-SD), on the
/// mDNS port `mdns`, forgetting peers silent for 3 s.
fn node(dir: &Path, name: &str, mdns: u16) -> Node {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(bin())
        .args(["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--name", name, "--show-peers", "--no-web"])
        .args(["--peer-expiry", "3s", "--dnssd-port", &mdns.to_string()])
        .args(Group::new(BLOCK).args())
        .env("RUST_LOG", "info,meshfs_group=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let log = lines_of(child.stderr.take().unwrap());
    let proc = Proc { child, lines };
    let addr = node_addr(&proc.next_line(Duration::from_secs(20)));
    Node { proc, log, addr }
}

fn wait_for(n: &Node, want: &str, timeout: Duration) {
    until_line(&n.proc.lines, timeout, |l| l == want);
}

#[test]
fn a_node_known_only_through_dnssd_comes_back_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mdns = Group::new(BLOCK).dnssd;
    let a = node(dir.path(), "a", mdns);
    let b = node(dir.path(), "b", mdns);
    let up = format!("peer up b {}", b.addr);
    wait_for(&a, &up, Duration::from_secs(5));

    // Paused past the expiry: it answers nothing, a forgets it.
    b.proc.signal(libc::SIGSTOP);
    let resume = Resume(&b.proc);
    wait_for(&a, "peer down b expired", Duration::from_secs(10));
    // a keeps asking b's file server, now as a gone peer. One question per peer at a time:
    // the one out before the expiry (its answer would bring b back too) is over by now.
    until_line(&a.log, Duration::from_secs(10), |l| {
        l.contains("DNS-SD peer gone: asking b again")
    });

    // Back: nothing changed in its DNS-SD records, yet a finds it again, at the same address.
    drop(resume);
    wait_for(&a, &up, Duration::from_secs(15));
}

/// Continues a stopped process when dropped, so a failed test does not leave it stopped.
struct Resume<'a>(&'a Proc);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}
