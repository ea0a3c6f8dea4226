//! The course's date field with the real binary: against `meshfs registry --require-date` (a
//! directory of the course's later version), `meshfs shell` fails without `--date` and works
//! with it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Proc, spawn};

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
