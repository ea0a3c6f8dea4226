//! `meshfs watch` end to end: live events from a real node, surviving the node's restart
//! without repeating anything, and `--json`.

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Proc, bin, lines_of, named_node, node, node_at, spawn_piped, until_line};

/// A `meshfs watch`, killed when dropped: events on `proc.lines`, status lines on `err`.
struct Watch {
    proc: Proc,
    err: mpsc::Receiver<String>,
}

fn watch(args: &[&str]) -> Watch {
    let mut proc = spawn_piped(
        Command::new(bin())
            .arg("watch")
            .args(args)
            .stderr(Stdio::piped()),
    );
    let err = lines_of(proc.child.stderr.take().unwrap());
    Watch { proc, err }
}

fn until(rx: &mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> Vec<String> {
    until_line(rx, Duration::from_secs(15), pred)
}

#[test]
fn watch_prints_events_and_survives_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node1, addr) = node(dir.path(), &[]);
    let w = watch(&[&format!("meshfs://{addr}")]);
    until(&w.err, |l| l.starts_with("connected to testnode"));

    std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
    let first = until(&w.proc.lines, |l| l.contains(" closed a.txt"));
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
    let (_node2, addr2) = node_at::<&str>(dir.path(), "testnode", &addr, &[]);
    assert_eq!(addr2, addr);
    until(&w.err, |l| l.starts_with("connected to testnode"));
    std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
    let after = until(&w.proc.lines, |l| l.contains(" closed b.txt"));
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
    let named = |dir: &std::path::Path, name: &str| named_node::<&str>(dir, name, &[]);
    let (_n1, a1) = named(d1.path(), "cam1");
    let (_n2, a2) = named(d2.path(), "cam2");
    let w = watch(&[
        "--json",
        &format!("meshfs://{a1}"),
        &format!("meshfs://{a2}"),
    ]);
    // The two nodes connect in any order.
    let seen = std::cell::RefCell::new(std::collections::HashSet::new());
    until(&w.err, |l| {
        seen.borrow_mut()
            .insert(l.split(' ').take(3).collect::<Vec<_>>().join(" "));
        let s = seen.borrow();
        s.contains("connected to cam1") && s.contains("connected to cam2")
    });
    std::fs::write(d1.path().join("one \"quoted\".mp4"), b"1").unwrap();
    std::fs::write(d2.path().join("two.mp4"), b"2").unwrap();
    let closed = std::cell::Cell::new(0);
    let lines = until(&w.proc.lines, |l| {
        if l.contains("\"closed\"") && (l.contains("two.mp4") || l.contains("quoted")) {
            closed.set(closed.get() + 1);
        }
        closed.get() == 2
    });
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["seq"].is_u64() && v["kind"].is_string());
    }
    assert!(lines.iter().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["node"] == "cam1" && v["path"] == "one \"quoted\".mp4"
    }));
}
