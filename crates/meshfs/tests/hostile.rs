//! One table of hostile names, run against every door of one real node: the file server
//! (`open`, `pread`), HTTP (`/files/`), FTP (`RETR`), the directory peer (`GET_FILE`) and the
//! FUSE mount. Nothing outside the share may ever be read, and a FIFO or device in the share
//! never blocks a door.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{spawn, until_line};

const SECRET: &str = "TOPSECRET-7f3a9c";

/// The names every door is tried with.
fn hostile_names(outer: &Path) -> Vec<String> {
    let long = "a".repeat(4096);
    vec![
        "..".into(),
        "../secret.txt".into(),
        "../../secret.txt".into(),
        "a/../../secret.txt".into(),
        "sub/../../secret.txt".into(),
        "./../secret.txt".into(),
        "/../secret.txt".into(),
        "//..//secret.txt".into(),
        "sub/./../..//secret.txt".into(),
        "ok.txt/../../secret.txt".into(),
        format!("{}/secret.txt", outer.display()),
        "/etc/passwd".into(),
        "%2e%2e/secret.txt".into(),
        "%2e%2e%2fsecret.txt".into(),
        "..%2fsecret.txt".into(),
        "%252e%252e/secret.txt".into(),
        "..\\secret.txt".into(),
        "ok.txt\0../secret.txt".into(),
        "\0".into(),
        "secretlink".into(),
        "rootlink/etc/passwd".into(),
        "outlink/secret.txt".into(),
        "late/secret.txt".into(),
        "latelink".into(),
        "sub/up/../secret.txt".into(),
        "\u{2025}/secret.txt".into(),
        "\u{ff0e}\u{ff0e}/secret.txt".into(),
        "..\u{2215}secret.txt".into(),
        long.clone(),
        format!("{long}/{long}"),
        "fifo".into(),
        "device".into(),
    ]
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Send `request`, read everything the peer sends until it closes or goes quiet for 5 s.
fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "{:?}: the door did not answer within 5 s",
                    String::from_utf8_lossy(&request[..request.len().min(60)])
                )
            }
            Err(_) => break,
        }
    }
    out
}

fn leaks(reply: &[u8]) -> bool {
    String::from_utf8_lossy(reply).contains(SECRET)
        || String::from_utf8_lossy(reply).contains("root:x:0:0")
}

#[test]
fn no_door_reads_outside_the_share() {
    let outer = tempfile::tempdir().unwrap();
    let share = outer.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(outer.path().join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir(outer.path().join("late")).unwrap();
    std::fs::write(outer.path().join("late/secret.txt"), SECRET).unwrap();
    std::fs::write(share.join("ok.txt"), b"fine").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), share.join("secretlink")).unwrap();
    std::os::unix::fs::symlink("/", share.join("rootlink")).unwrap();
    std::os::unix::fs::symlink(outer.path(), share.join("outlink")).unwrap();
    std::os::unix::fs::symlink("..", share.join("sub/up")).unwrap();
    let c = std::ffi::CString::new(share.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: plain syscalls with valid C strings.
    unsafe {
        assert_eq!(libc::mkfifo(c.as_ptr(), 0o644), 0);
        let d = std::ffi::CString::new(share.join("device").to_str().unwrap()).unwrap();
        // A character device like /dev/zero (1, 5): reading it would never end. Root only.
        libc::mknod(d.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5));
    }

    // A directory, so the node also runs its GET_FILE listener.
    let state = outer.path().join("state");
    let (_registry, line) = spawn(&[
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
    ]);
    let registry = line.rsplit(' ').next().unwrap().to_owned();
    let (node, first) = spawn(&[
        "node",
        share.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "victim",
        "--ftp",
        "127.0.0.1:0",
        "--registry",
        &registry,
        "--peer-listen",
        "127.0.0.1:0",
    ]);
    let files_addr = first.rsplit(' ').next().unwrap().to_owned();
    let (mut web, mut ftp, mut peer) = (None, None, None);
    until_line(&node.lines, Duration::from_secs(20), |l| {
        if let Some(w) = l.strip_prefix("web http://") {
            web = Some(w.trim_end_matches('/').to_owned());
        } else if let Some(f) = l.strip_prefix("ftp ") {
            ftp = Some(f.to_owned());
        } else if let Some(p) = l.split("GET_FILE on ").nth(1) {
            peer = Some(p.split([',', ')']).next().unwrap().to_owned());
        }
        web.is_some() && ftp.is_some() && peer.is_some()
    });
    let (web, ftp, peer) = (web.unwrap(), ftp.unwrap(), peer.unwrap());
    // Created after the node started: judged when used.
    std::os::unix::fs::symlink(outer.path().join("late"), share.join("late")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), share.join("latelink")).unwrap();

    let names = hostile_names(outer.path());
    assert!(names.len() >= 30);
    for name in &names {
        // File server: open, pread.
        if name.len() < 8000 {
            let reply = exchange(
                &files_addr,
                format!("open {name}\nread 100\npread 0 100 {name}\nquit\n").as_bytes(),
            );
            let text = String::from_utf8_lossy(&reply);
            assert!(!text.starts_with("0 OK"), "open {name:?} succeeded: {text}");
            assert!(!leaks(&reply), "file server leaked through {name:?}");
        }
        // HTTP.
        let path = percent_encode(name);
        let reply = exchange(
            &web,
            format!("GET /files/victim/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let status = String::from_utf8_lossy(&reply[..reply.len().min(12)]).into_owned();
        assert!(
            !status.contains(" 200") && !status.contains(" 206"),
            "HTTP {name:?}: {status}"
        );
        assert!(!leaks(&reply), "HTTP leaked through {name:?}");
        // Raw (unencoded) request line too, for names a client would not encode.
        if !name.contains(['\0', ' ', '\r', '\n']) {
            let reply = exchange(
                &web,
                format!(
                    "GET /files/victim/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            assert!(!leaks(&reply), "HTTP (raw) leaked through {name:?}");
        }
        // Directory peer: GET_FILE.
        // (A NUL ends a field there: `ok.txt\0…` legitimately names `ok.txt`.)
        if name.len() <= 256 && !name.contains('\0') {
            let mut req = b"GET_FILE\0".to_vec();
            req.extend_from_slice(name.as_bytes());
            req.push(0);
            let reply = exchange(&peer, &req);
            assert!(reply.first() != Some(&0), "GET_FILE {name:?} succeeded");
            assert!(!leaks(&reply), "GET_FILE leaked through {name:?}");
        }
    }

    // FTP, with Python's ftplib: every RETR and CWD of a hostile name fails, nothing leaks.
    let script = r#"
import ftplib, io, sys, json
host, port = sys.argv[1].rsplit(":", 1)
names = json.load(sys.stdin)
f = ftplib.FTP()
f.connect(host, int(port), timeout=10)
f.login()
bad = []
for n in names:
    if "\0" in n or "\n" in n or "\r" in n:
        continue
    buf = io.BytesIO()
    try:
        f.retrbinary("RETR " + n, buf.write)
        bad.append(("RETR", n))
    except ftplib.all_errors:
        pass
    if b"TOPSECRET" in buf.getvalue() or b"root:x:0:0" in buf.getvalue():
        bad.append(("LEAK", n))
    try:
        f.cwd(n)
        if any("secret" in x for x in f.nlst()):
            bad.append(("CWD", n))
        f.cwd("/")
    except ftplib.all_errors:
        pass
print(json.dumps(bad))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &ftp])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let json = format!(
        "[{}]",
        names
            .iter()
            .filter(|n| n.len() < 1000)
            .map(|n| format!(
                "\"{}\"",
                n.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\0', "\\u0000")
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "FTP let these through"
    );

    // The doors still serve the legitimate file afterwards.
    let reply = exchange(&files_addr, b"pread 0 4 ok.txt\nquit\n");
    assert!(reply.starts_with(b"0 4\nfine"));
}

/// The web UI has no login: what a password protects on the file server is refused there too,
/// never served without it.
#[test]
fn the_web_ui_does_not_bypass_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("open.txt"), b"public").unwrap();
    std::fs::write(share.join("private.mp4"), SECRET).unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let get = |web: &str, path: &str| {
        let reply = exchange(
            web,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        String::from_utf8_lossy(&reply).into_owned()
    };
    let web_of = |node: &common::Proc| {
        let lines = until_line(&node.lines, Duration::from_secs(20), |l| {
            l.starts_with("web http://")
        });
        lines
            .last()
            .unwrap()
            .trim_start_matches("web http://")
            .trim_end_matches('/')
            .to_owned()
    };

    // One file offered behind a password.
    let offer = format!("private.mp4:{}", pw.display());
    let (node, _) = spawn(&[
        "node",
        share.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "p1",
        "--no-discovery",
        "--offer",
        &offer,
    ]);
    let web = web_of(&node);
    assert!(get(&web, "/files/p1/open.txt").contains("public"));
    let reply = get(&web, "/files/p1/private.mp4");
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(!reply.contains(SECRET));
    drop(node);

    // The whole share behind a password.
    let (node, _) = spawn(&[
        "node",
        share.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "p2",
        "--no-discovery",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    let web = web_of(&node);
    for path in [
        "/files/p2/open.txt",
        "/files/p2/private.mp4",
        "/api/ls/p2/",
        "/api/stat/p2/open.txt",
    ] {
        let reply = get(&web, path);
        assert!(reply.starts_with("HTTP/1.1 403"), "{path}: {reply}");
        assert!(
            !reply.contains(SECRET) && !reply.contains("public"),
            "{path}: {reply}"
        );
    }
}
