//! The course's date field with the real binary: against `meshfs registry --require-date` (a
//! directory of the course's later version), `meshfs shell` and `meshfs node --registry` fail
//! without `--date` and work with it; a node publishes names with spaces.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, spawn};

const WAIT: Duration = Duration::from_secs(20);

/// `meshfs registry --require-date` on a free loopback port; returns its address.
fn dated_registry(state: &std::path::Path) -> (Proc, String) {
    let (proc, line) = spawn(&[
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
        "--require-date",
    ]);
    let addr = line
        .strip_prefix("s> init server ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
        .to_owned();
    (proc, addr)
}

/// One operation, with a date field after the operation name; the raw reply.
fn dated_call(addr: &str, op: &str, fields: &[&str]) -> Vec<u8> {
    let mut all = vec![op, "06/12/2026 10:00:00"];
    all.extend_from_slice(fields);
    common::directory::call(addr, &all)
}

fn scripted_shell(registry: &str, extra: &[&str], script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args([
            "shell",
            "--registry",
            registry,
            "--peer-listen",
            "127.0.0.1:0",
        ])
        .args(["--timeout", "5s"])
        .args(extra)
        .current_dir(dir.path())
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
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shell_with_date_talks_to_a_directory_that_requires_it() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = dated_registry(state.path());
    assert_eq!(
        scripted_shell(&addr, &[], "REGISTER ann\nQUIT\n"),
        "REGISTER FAIL\n+++ FINISHED +++\n"
    );
    assert_eq!(
        scripted_shell(
            &addr,
            &["--date"],
            "REGISTER ann\nCONNECT ann\nPUBLISH clip.mp4 a clip\nLIST_CONTENT ann\nQUIT\n"
        ),
        "REGISTER OK\nCONNECT OK\nPUBLISH OK\nLIST_CONTENT OK\nclip.mp4\nDISCONNECT OK\n+++ FINISHED +++\n"
    );
}

#[test]
fn node_with_date_joins_a_directory_that_requires_it_and_publishes_names_with_spaces() {
    let state = tempfile::tempdir().unwrap();
    let (_registry, addr) = dated_registry(state.path());
    let share = tempfile::tempdir().unwrap();
    std::fs::create_dir(share.path().join("front door")).unwrap();
    std::fs::write(share.path().join("front door/clip 1.mp4"), b"clip").unwrap();
    std::fs::write(share.path().join("notes.txt"), b"notes").unwrap();
    std::fs::write(share.path().join("a b c.txt"), b"abc").unwrap();
    let (node, _) = common::node(
        share.path(),
        &[
            "--registry",
            &addr,
            "--user",
            "cam",
            "--peer-listen",
            "127.0.0.1:0",
            "--date",
        ],
    );
    loop {
        let line = node.next_line(WAIT);
        if line.starts_with("meshfs node joined directory") {
            assert!(line.contains("3 files published"), "{line}");
            break;
        }
    }
    assert_eq!(dated_call(&addr, "REGISTER", &["viewer"]), [0]);
    assert_eq!(dated_call(&addr, "CONNECT", &["viewer", "4000"]), [0]);
    let reply = dated_call(&addr, "LIST_CONTENT", &["viewer", "cam"]);
    assert_eq!(
        reply,
        b"\x003\0a b c.txt\0front door/clip 1.mp4\0notes.txt\0"
    );
}
