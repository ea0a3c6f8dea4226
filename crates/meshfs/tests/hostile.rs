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

/// A share beside a secret: `outer/secret.txt` and `outer/late/secret.txt` hold [`SECRET`];
/// the share has `ok.txt`, symlinks out (to the secret, to `/`, to `outer`, `sub/up` → `..`),
/// a FIFO and a character device (reading either would block or never end).
fn hostile_share() -> (tempfile::TempDir, std::path::PathBuf) {
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
    (outer, share)
}

#[test]
fn no_door_reads_outside_the_share() {
    let (outer, share) = hostile_share();

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
    let (node, files_addr) = common::named_node(
        &share,
        "victim",
        &[
            "--ftp",
            "127.0.0.1:0",
            "--registry",
            &registry,
            "--peer-listen",
            "127.0.0.1:0",
        ],
    );
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

/// A refusal of the web UI: 403, or 401 where it asks for the password.
fn refused(reply: &str) -> bool {
    reply.starts_with("HTTP/1.1 403") || reply.starts_with("HTTP/1.1 401")
}

/// The web UI never bypasses a password: what a password protects on the file server is refused
/// there too (403, or 401 asking for it), never served without it.
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
    let (node, _) = common::named_node(&share, "p1", &["--no-discovery", "--offer", &offer]);
    let web = web_of(&node);
    assert!(get(&web, "/files/p1/open.txt").contains("public"));
    let reply = get(&web, "/files/p1/private.mp4");
    assert!(refused(&reply), "{reply}");
    assert!(!reply.contains(SECRET));
    drop(node);

    // The whole share behind a password.
    let (node, _) = common::named_node(
        &share,
        "p2",
        &["--no-discovery", "--password-file", pw.to_str().unwrap()],
    );
    let web = web_of(&node);
    for path in [
        "/files/p2/open.txt",
        "/files/p2/private.mp4",
        "/api/ls/p2/",
        "/api/stat/p2/open.txt",
    ] {
        let reply = get(&web, path);
        assert!(refused(&reply), "{path}: {reply}");
        assert!(
            !reply.contains(SECRET) && !reply.contains("public"),
            "{path}: {reply}"
        );
    }
}

/// What one hostile path gave through the mount.
#[derive(Debug)]
enum Outcome {
    /// The call failed with this error (kind, raw errno).
    Failed(std::io::ErrorKind, Option<i32>),
    /// `stat` succeeded; the file (if it opened) gave these first bytes.
    Opened(Vec<u8>),
    /// A folder, with the names it lists.
    Dir(Vec<String>),
}

/// `stat`, `lstat`, `open` and `read` (at most 64 KiB) of `path` in a thread: a call that does
/// not return within `limit` means the mount hangs, and fails the test.
fn probe_mount(path: String, limit: Duration) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let shown = path.chars().take(80).collect::<String>();
    std::thread::spawn(move || {
        let outcome = (|| {
            let _ = std::fs::symlink_metadata(&path);
            let md = match std::fs::metadata(&path) {
                Ok(md) => md,
                Err(e) => return Outcome::Failed(e.kind(), e.raw_os_error()),
            };
            match std::fs::File::open(&path) {
                Ok(f) if md.is_file() => {
                    let mut buf = Vec::new();
                    match f.take(64 * 1024).read_to_end(&mut buf) {
                        Ok(_) => Outcome::Opened(buf),
                        Err(e) => Outcome::Failed(e.kind(), e.raw_os_error()),
                    }
                }
                Ok(_) => Outcome::Dir(
                    std::fs::read_dir(&path)
                        .map(|d| {
                            d.filter_map(Result::ok)
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                Err(e) => Outcome::Failed(e.kind(), e.raw_os_error()),
            }
        })();
        let _ = tx.send(outcome);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{shown:?}: the mount did not answer within {limit:?}"))
}

/// Read every regular file reachable in the mounted node folder (depth-bounded: `sub/up` loops
/// back to the share root) and return what leaked, if anything.
fn walk_for_leaks(dir: &Path, depth: usize, leaked: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap().take(1000) {
        let entry = entry.unwrap();
        let path = entry.path();
        let md = std::fs::metadata(&path);
        match md {
            Ok(md) if md.is_dir() => walk_for_leaks(&path, depth - 1, leaked),
            Ok(_) => {
                if let Outcome::Opened(bytes) =
                    probe_mount(path.to_str().unwrap().to_owned(), Duration::from_secs(10))
                {
                    if leaks(&bytes) {
                        leaked.push(path.display().to_string());
                    }
                }
            }
            Err(_) => {}
        }
    }
}

/// The FUSE door: every hostile name of the table, tried through a real `meshfs mount` of a
/// real node as `MOUNT/victim/<name>` (`stat`, `lstat`, `open`, `read`).
///
/// Some names never reach meshfs: the kernel walks `..` itself (so `MOUNT/victim/../..` leaves
/// the mount and names the local folder that holds it, which here holds no secret), refuses a
/// component over 255 bytes or a path over 4096 with ENAMETOOLONG, and Rust refuses a NUL before
/// any system call. Whatever refused it, the outcome must be safe: no secret bytes, no hang, a
/// clean error for 4 KiB names, and FIFOs or devices never block.
#[test]
fn the_fuse_mount_reads_nothing_outside_the_share() {
    if !common::mount::fuse_available() {
        return;
    }
    let (outer, share) = hostile_share();

    let (_node, addr) = common::named_node(&share, "victim", &[] as &[&str]);
    let mount = common::mount::Mounted::new(&[&addr], &[]);
    let root = format!("{}/victim", mount.dir.display());
    // Created after the node and the mount started: judged when used.
    std::os::unix::fs::symlink(outer.path().join("late"), share.join("late")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), share.join("latelink")).unwrap();

    // The probe sees a leak when there is one: the secret read directly, not through the mount.
    match probe_mount(
        outer.path().join("secret.txt").display().to_string(),
        Duration::from_secs(10),
    ) {
        Outcome::Opened(bytes) => assert!(leaks(&bytes)),
        other => panic!("reading the secret directly: {other:?}"),
    }

    // The door works: a legitimate file reads through the mount.
    match probe_mount(format!("{root}/ok.txt"), Duration::from_secs(10)) {
        Outcome::Opened(bytes) => assert_eq!(bytes, b"fine"),
        other => panic!("ok.txt through the mount: {other:?}"),
    }

    let names = hostile_names(outer.path());
    assert!(names.len() >= 30);
    let mut refused_before_us = 0;
    for name in &names {
        // Joined as text, not with Path::join: an absolute name must stay under the node folder.
        let path = format!("{root}/{name}");
        let outcome = probe_mount(path, Duration::from_secs(10));
        match &outcome {
            Outcome::Opened(bytes) => {
                assert!(!leaks(bytes), "FUSE leaked through {name:?}");
                panic!("FUSE opened {name:?}: {:?}", String::from_utf8_lossy(bytes));
            }
            // `..` is walked by the kernel: `victim/..` is the mount root, whose folders are
            // nodes. A folder is fine as long as it is not the one holding the secret.
            Outcome::Dir(names) => assert!(
                !names.iter().any(|n| n == "secret.txt" || n == "share"),
                "FUSE {name:?} lists the folder outside the share: {names:?}"
            ),
            Outcome::Failed(kind, errno) => {
                if name.contains('\0') {
                    assert_eq!(*kind, std::io::ErrorKind::InvalidInput, "{name:?}");
                    refused_before_us += 1;
                } else if name.len() >= 4096 {
                    assert!(
                        matches!(*errno, Some(libc::ENAMETOOLONG) | Some(libc::ENOENT)),
                        "4 KiB name: {kind:?} {errno:?}"
                    );
                    refused_before_us += 1;
                } else if name == "fifo" || name == "device" {
                    // The node refuses special files (code 7, "not a regular file") and its
                    // listings hide them: to the mount they do not exist. And at once.
                    assert_eq!(*errno, Some(libc::ENOENT), "{name:?}: {kind:?}");
                } else {
                    assert!(
                        matches!(
                            *errno,
                            Some(libc::ENOENT)
                                | Some(libc::EACCES)
                                | Some(libc::EPERM)
                                | Some(libc::ENOTDIR)
                                | Some(libc::EINVAL)
                        ),
                        "{name:?}: unexpected {kind:?} {errno:?}"
                    );
                }
            }
        }
    }
    assert!(refused_before_us >= 4, "NUL and 4 KiB names are refused");

    // A name of 255 bytes (the longest the kernel passes on) and a path just under PATH_MAX do
    // reach meshfs: a clean error, no hang.
    let long = "b".repeat(255);
    for path in [
        format!("{root}/{long}"),
        format!("{root}/{}", ["c"; 1900].join("/")),
    ] {
        match probe_mount(path, Duration::from_secs(10)) {
            Outcome::Failed(_, errno) => assert!(
                matches!(errno, Some(libc::ENOENT) | Some(libc::ENAMETOOLONG)),
                "{errno:?}"
            ),
            other => panic!("long name: {other:?}"),
        }
    }

    // Nothing listed in the node folder reads as the secret either, symlinks included.
    let mut leaked = Vec::new();
    walk_for_leaks(Path::new(&root), 4, &mut leaked);
    assert!(
        leaked.is_empty(),
        "FUSE listing leads to the secret: {leaked:?}"
    );

    // And the mount still serves after all that.
    match probe_mount(format!("{root}/ok.txt"), Duration::from_secs(10)) {
        Outcome::Opened(bytes) => assert_eq!(bytes, b"fine"),
        other => panic!("ok.txt after the hostile names: {other:?}"),
    }
}
