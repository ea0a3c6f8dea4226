//! End-to-end: the client commands' shared flags against real nodes — passwords
//! (`--password-file [NODE=]FILE`, `MESHFS_CLIENT_PASSWORD`) over TLS (PAKE) and with
//! `--plaintext`, `--json` parsed by a real JSON parser, `ls -R`, `stat` of a share's root, and
//! the texts of the errors users meet.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Proc, bin, lines_of, node, until_line};

const PASSWORD: &str = "correct horse";

/// `meshfs ARGS` in `cwd` with no password in the environment but `env`.
fn meshfs_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("MESHFS_PASSWORD")
        .env_remove("MESHFS_CLIENT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run meshfs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
}

#[track_caller]
fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "stdout: {}", text(&out.stdout));
    text(&out.stderr)
}

/// A share with `clips/a.txt` and `clips/deep/b.txt`, and a password file beside it.
fn share(dir: &Path) -> (PathBuf, PathBuf) {
    let share = dir.join("share");
    std::fs::create_dir_all(share.join("clips/deep")).unwrap();
    std::fs::write(share.join("clips/a.txt"), b"alpha\n").unwrap();
    std::fs::write(share.join("clips/deep/b.txt"), b"bravo!\n").unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    (share, pw)
}

/// A node protecting its share with `pw`, that also takes `auth` in clear (for --plaintext).
fn protected_node(share: &Path, pw: &Path) -> (Proc, String) {
    node(
        share,
        &[
            "--no-web",
            "--no-discovery",
            "--allow-plaintext-auth",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    )
}

#[test]
fn every_file_command_proves_the_password_over_tls_and_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (share, pw) = share(dir.path());
    let (_node, addr) = protected_node(&share, &pw);
    let pw = pw.to_str().unwrap();
    let host_pw = format!("127.0.0.1={pw}");
    let url = |p: &str| format!("meshfs://{addr}/{p}");
    for mode in [None, Some("--plaintext")] {
        let with = |args: &[&str], extra: &[&str], env: &[(&str, &str)]| {
            let mut all: Vec<&str> = mode.into_iter().collect();
            all.extend_from_slice(args);
            all.extend_from_slice(extra);
            meshfs_env(&all, dir.path(), env)
        };
        let file = ["--password-file", pw];
        let out = ok(&with(&["ls", &url("clips")], &file, &[]));
        assert!(out.contains(" a.txt\n"), "{mode:?}: {out}");
        let out = ok(&with(&["stat", &url("clips/a.txt")], &file, &[]));
        assert!(out.contains("size: 6\n"), "{mode:?}: {out}");
        // The per-node form, NODE=FILE, with the node as typed (its host).
        let out = with(
            &["cat", &url("clips/a.txt")],
            &["--password-file", &host_pw],
            &[],
        );
        assert_eq!(ok(&out), "alpha\n", "{mode:?}");
        // The client's own variable.
        let env = [("MESHFS_CLIENT_PASSWORD", PASSWORD)];
        let dest = dir.path().join(format!("b-{}.txt", mode.is_some()));
        let out = with(
            &["get", &url("clips/deep/b.txt"), dest.to_str().unwrap()],
            &[],
            &env,
        );
        ok(&out);
        assert_eq!(std::fs::read(&dest).unwrap(), b"bravo!\n", "{mode:?}");

        // Without a password, or with a wrong one: the node's answer, and what to do.
        let err = fails(&with(&["ls", &url("clips")], &[], &[]));
        assert!(
            err.contains(&format!("{addr} asks for a password"))
                && err.contains("--password-file")
                && err.contains("MESHFS_CLIENT_PASSWORD"),
            "{mode:?}: {err}"
        );
        // The node's share password is not the client's: it is never proven.
        let err = fails(&with(
            &["ls", &url("clips")],
            &[],
            &[("MESHFS_PASSWORD", PASSWORD)],
        ));
        assert!(err.contains("asks for a password"), "{mode:?}: {err}");
        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, "nope\n").unwrap();
        let wrong = ["--password-file", wrong.to_str().unwrap()];
        let err = fails(&with(&["cat", &url("clips/a.txt")], &wrong, &[]));
        assert!(err.contains("(code 6)"), "{mode:?}: {err}");
        // A NODE=FILE for another node is not proven here.
        let other = format!("cam9={pw}");
        let err = fails(&with(
            &["stat", &url("clips")],
            &["--password-file", &other],
            &[],
        ));
        assert!(err.contains("asks for a password"), "{mode:?}: {err}");
    }
}

#[test]
fn an_open_node_is_never_sent_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (share, pw) = share(dir.path());
    let (_node, addr) = node(&share, &["--no-web", "--no-discovery"]);
    let out = meshfs_env(
        &[
            "cat",
            &format!("meshfs://{addr}/clips/a.txt"),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    assert_eq!(ok(&out), "alpha\n");
}

/// `meshfs watch` of a protected node, with its stdout (events) and stderr (notices).
fn watch(args: &[&str], env: &[(&str, &str)]) -> (Proc, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(bin());
    cmd.arg("watch")
        .args(args)
        .env_remove("MESHFS_PASSWORD")
        .env_remove("MESHFS_CLIENT_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn watch");
    let lines = lines_of(child.stdout.take().unwrap());
    let errors = lines_of(child.stderr.take().unwrap());
    (Proc { child, lines }, errors)
}

#[test]
fn watch_proves_the_password_over_tls_and_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (share, pw) = share(dir.path());
    let (_node, addr) = protected_node(&share, &pw);
    let t = Duration::from_secs(10);
    for (i, mode) in [None, Some("--plaintext")].into_iter().enumerate() {
        let node_pw = format!("{addr}={}", pw.display());
        let mut args: Vec<&str> = mode.into_iter().collect();
        args.extend([addr.as_str(), "--password-file", &node_pw]);
        let (w, errors) = watch(&args, &[]);
        until_line(&errors, t, |l| l.starts_with("connected to testnode"));
        let name = format!("new-{i}.txt");
        std::fs::write(share.join(&name), b"x").unwrap();
        until_line(&w.lines, t, |l| l.ends_with(&format!(" {name}")));
    }
    // Without the password, watch says so at once instead of reconnecting for ever.
    let (mut w, errors) = watch(&[&addr], &[]);
    assert!(!w.wait_exit(t).success());
    let seen = until_line(&errors, t, |l| l.contains("asks for a password"));
    assert!(seen.last().unwrap().contains(&addr), "{seen:?}");
}

#[test]
fn json_recursive_listing_and_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let (share, _) = share(dir.path());
    let (_node, addr) = node(&share, &["--no-web", "--no-discovery"]);
    let root = format!("meshfs://{addr}/");

    // `stat` of the share's root, as text and JSON.
    let out = ok(&meshfs_env(&["stat", &root], dir.path(), &[]));
    assert!(out.contains("type: dir\n"), "{out}");
    let v = json(&ok(&meshfs_env(
        &["stat", "--json", &root],
        dir.path(),
        &[],
    )));
    assert_eq!(v["type"], "dir");
    let v = json(&ok(&meshfs_env(
        &["stat", "--json", &format!("{addr}/clips/a.txt")],
        dir.path(),
        &[],
    )));
    assert_eq!(
        (&v["path"], &v["name"], &v["type"], &v["size"]),
        (
            &"clips/a.txt".into(),
            &"a.txt".into(),
            &"file".into(),
            &6.into()
        )
    );
    assert!(v["modified"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(v["mode"].as_str().unwrap().len(), 10, "{v}");

    // `ls -R`: paths below the folder listed, folders before what they hold.
    let out = ok(&meshfs_env(&["ls", "-R", &root], dir.path(), &[]));
    let names: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        ["clips/", "clips/a.txt", "clips/deep/", "clips/deep/b.txt"]
    );
    let v = json(&ok(&meshfs_env(
        &["ls", "-R", "--json", &format!("{root}clips")],
        dir.path(),
        &[],
    )));
    let paths: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt", "deep", "deep/b.txt"]);
    assert_eq!(v[2]["size"], 7);
    assert_eq!(v[1]["type"], "dir");
}

/// Parse with Python's json module: a real parser, not ours.
fn json(out: &str) -> serde_json::Value {
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import json,sys; print(json.dumps(json.load(sys.stdin)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    py.stdin.take().unwrap().write_all(out.as_bytes()).unwrap();
    let done = py.wait_with_output().unwrap();
    assert!(done.status.success(), "not JSON: {out}");
    serde_json::from_slice(&done.stdout).unwrap()
}

/// This file's block of group addresses (see [`common::group::Group::new`]).
const BLOCK: u8 = 160;

#[test]
fn peers_offers_and_named_nodes_in_json() {
    use common::group::Group;
    let dir = tempfile::tempdir().unwrap();
    let (share, _) = share(dir.path());
    let net = Group::new(BLOCK);
    let mut flags = net.args();
    flags.extend(net.dnssd_args());
    flags.extend(["--no-web", "--offer", "clips/a.txt"].map(String::from));
    let (_node, addr) = common::named_node(&share, "jsonnode", &flags);
    let lan = [net.lan_args(), net.dnssd_args().into()].concat();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(lan.iter().map(String::as_str));
        json(&ok(&meshfs_env(&all, dir.path(), &[])))
    };

    let v = run(&["peers", "--json"]);
    let me = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "jsonnode")
        .unwrap_or_else(|| panic!("jsonnode not in {v}"));
    assert_eq!(me["addr"], addr.as_str());
    assert!(me["age_s"].is_u64() && me["web"].is_null(), "{me}");

    let v = run(&["offers", "--json"]);
    assert_eq!(v[0]["node"], "jsonnode");
    assert_eq!(v[0]["url"], format!("meshfs://{addr}/clips/a.txt").as_str());
    assert_eq!(
        (&v[0]["size"], &v[0]["protected"]),
        (&6.into(), &false.into())
    );

    // A node named on the LAN, with the same discovery flags as `peers`.
    let v = run(&["ls", "--json", "jsonnode:clips"]);
    assert_eq!(v[0]["path"], "a.txt");
}

#[test]
fn a_terminal_is_asked_for_the_password_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (share, pw) = share(dir.path());
    let (_node, addr) = protected_node(&share, &pw);
    // Python's pty gives the command a terminal and types the password at the prompt.
    let out = Command::new("python3")
        .arg(common::group::python_script("tty_run.py"))
        .args([PASSWORD, bin(), "cat", &format!("{addr}/clips/a.txt")])
        .env_remove("MESHFS_PASSWORD")
        .env_remove("MESHFS_CLIENT_PASSWORD")
        .output()
        .expect("python3");
    let seen = text(&out.stdout);
    assert!(seen.contains(&format!("{addr} password: ")), "{seen}");
    assert!(seen.contains("alpha"), "{seen}");
    assert!(!seen.contains(PASSWORD), "echoed: {seen}");
}

/// Every cause in an error line said once (`a: b: b` is the mistake this guards against).
#[track_caller]
fn said_once(err: &str) {
    for line in err.lines() {
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 8).collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} repeated in {line:?}");
        }
    }
}

#[test]
fn error_texts_say_what_where_why_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (share, _) = share(dir.path());
    let (_node, addr) = node(&share, &["--no-web", "--no-discovery"]);
    let refused = common::RefusedPort::bind();
    let url = |p: &str| format!("meshfs://{addr}/{p}");
    let into_file = share.join("clips/a.txt/x");
    let into_file = into_file.to_str().unwrap();
    // (command, what the error must say)
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["ls".into(), format!("meshfs://{}/", refused.addr)],
            vec![
                format!("cannot list meshfs://{}/", refused.addr),
                "Connection refused".into(),
            ],
        ),
        (
            vec!["cat".into(), url("nope")],
            vec![
                format!("cannot read {}", url("nope")),
                "no such file".into(),
            ],
        ),
        (
            vec![
                "ls".into(),
                url(""),
                "--password-file".into(),
                "/nonexistent/pw".into(),
            ],
            vec!["cannot read the password file /nonexistent/pw".into()],
        ),
        (
            vec!["get".into(), url("clips/a.txt"), into_file.into()],
            vec![into_file.into(), "Not a directory".into()],
        ),
        (
            vec![
                "offer".into(),
                "nosuch.txt".into(),
                "--node".into(),
                addr.clone(),
            ],
            vec![
                "cannot offer nosuch.txt".into(),
                format!("the node at {addr} answered"),
                "no such file".into(),
            ],
        ),
        (
            vec!["watch".into(), "meshfs://h/clips".into()],
            vec!["is not a node address".into()],
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&meshfs_env(&args, dir.path(), &[]));
        for s in &says {
            assert!(err.contains(s.as_str()), "{args:?}: {s:?} not in {err}");
        }
        assert!(!err.contains("cannot reach"), "{args:?}: {err}");
        said_once(&err);
    }
}

#[test]
fn cluster_replication_proves_the_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let (share, pw) = share(dir.path());
    let (_b, b_addr) = protected_node(&share, &pw);
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let pw = pw.to_str().unwrap();
    let flags = ["--no-web", "--no-discovery", "--cluster-peer", &b_addr];
    let (_a, _) = common::named_node(
        &copy,
        "a",
        &[&flags[..], &["--cluster-password-file", pw]].concat(),
    );
    // The catch-up at start pulls the protected peer's files through its password.
    common::wait_until(
        Duration::from_secs(20),
        "the copy of clips/deep/b.txt",
        || std::fs::read(copy.join("clips/deep/b.txt")).is_ok_and(|b| b == b"bravo!\n"),
    );
}
