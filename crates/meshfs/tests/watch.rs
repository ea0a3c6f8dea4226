//! `meshfs watch` end to end: live events from a real node, surviving the node's restart
//! without repeating anything, and `--json`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, node, spawn};

struct Watch {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
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

fn watch(args: &[&str]) -> Watch {
    let mut child = Command::new(bin())
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = pump(child.stdout.take().unwrap());
    let err = pump(child.stderr.take().unwrap());
    Watch { child, out, err }
}

/// Wait for a line on `rx` satisfying `pred`; returns every line read until then.
fn until(rx: &mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("line not seen; got {seen:?}"));
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

#[test]
fn watch_prints_events_and_survives_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node1, addr) = node(dir.path(), &[]);
    let w = watch(&[&format!("meshfs://{addr}")]);
    until(&w.err, |l| l.starts_with("connected to testnode"));

    std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
    let first = until(&w.out, |l| l.contains(" closed a.txt"));
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("testnode ") && l.ends_with(" created a.txt")),
        "{first:?}"
    );

    // The node dies; a file appears while it is down; it comes back on the same address.
    drop(node1);
    until(&w.err, |l| l.starts_with("lost testnode"));
    std::fs::write(dir.path().join("while-down.txt"), b"x").unwrap();
    let (_node2, addr2) = spawn(&[
        "node",
        dir.path().to_str().unwrap(),
        "--listen",
        &addr,
        "--name",
        "testnode",
    ]);
    assert!(addr2.ends_with(&addr));
    until(&w.err, |l| l.starts_with("connected to testnode"));
    std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
    let after = until(&w.out, |l| l.contains(" closed b.txt"));
    // What happened while down cannot be replayed by a new process: it says so.
    assert!(after.iter().any(|l| l.ends_with(" resync")), "{after:?}");
    // Nothing from before the restart is repeated.
    assert!(!after.iter().any(|l| l.contains("a.txt")), "{after:?}");
    let seqs: Vec<u64> = first
        .iter()
        .chain(&after)
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|p| p[0] <= p[1]), "{seqs:?}");
}

#[test]
fn watch_json_and_several_nodes() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let named = |dir: &std::path::Path, name: &str| {
        let (proc, line) = spawn(&[
            "node",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
        ]);
        (proc, line.rsplit(' ').next().unwrap().to_owned())
    };
    let (_n1, a1) = named(d1.path(), "cam1");
    let (_n2, a2) = named(d2.path(), "cam2");
    let w = watch(&[
        "--json",
        &format!("meshfs://{a1}"),
        &format!("meshfs://{a2}"),
    ]);
    until(&w.err, |l| l.starts_with("connected to cam1"));
    until(&w.err, |l| l.starts_with("connected to cam2"));
    std::fs::write(d1.path().join("one \"quoted\".mp4"), b"1").unwrap();
    std::fs::write(d2.path().join("two.mp4"), b"2").unwrap();
    let lines = until(&w.out, |l| {
        l.contains("\"two.mp4\"") && l.contains("\"closed\"")
    });
    let lines = [
        lines,
        until(&w.out, |l| l.contains("quoted") && l.contains("\"closed\"")),
    ]
    .concat();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["seq"].is_u64() && v["kind"].is_string());
    }
    assert!(lines.iter().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["node"] == "cam1" && v["path"] == "one \"quoted\".mp4"
    }));
}
