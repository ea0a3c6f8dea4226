//! End-to-end tests of the web UI with the real binary: HTTP ranges and validators, hostile
//! paths, HTML in file names, remote files streamed through another node, a peer vanishing
//! mid-stream, and the page itself in headless Chromium (`crates/meshfs-web/e2e/`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::group::{Group, python_dir};
use common::web::*;
use common::{named_node, node_addr, pattern, spawn, wait_until};

#[test]
fn ranges_head_and_validators() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pattern(100_000, 1);
    std::fs::write(tmp.path().join("clip.mp4"), &data).unwrap();
    let n = web_node(tmp.path(), "cam1", &[]);
    let url = "/files/cam1/clip.mp4";

    let full = get(&n.web, url);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, data);
    assert_eq!(full.header("content-length"), Some("100000"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert!(full.header("last-modified").unwrap().ends_with(" GMT"));
    let etag = full.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let first = http(&n.web, "GET", url, &[("Range", "bytes=0-0")]);
    assert_eq!(first.status, 206);
    assert_eq!(first.body, &data[..1]);
    assert_eq!(first.header("content-range"), Some("bytes 0-0/100000"));
    assert_eq!(first.header("content-length"), Some("1"));

    let middle = http(&n.web, "GET", url, &[("Range", "bytes=40000-40999")]);
    assert_eq!(middle.status, 206);
    assert_eq!(middle.body, &data[40_000..41_000]);
    assert_eq!(
        middle.header("content-range"),
        Some("bytes 40000-40999/100000")
    );

    let suffix = http(&n.web, "GET", url, &[("Range", "bytes=-500")]);
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, &data[99_500..]);
    assert_eq!(
        suffix.header("content-range"),
        Some("bytes 99500-99999/100000")
    );

    let open_end = http(&n.web, "GET", url, &[("Range", "bytes=99990-")]);
    assert_eq!(open_end.status, 206);
    assert_eq!(open_end.body, &data[99_990..]);

    let past = http(&n.web, "GET", url, &[("Range", "bytes=100000-")]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */100000"));
    assert!(past.body.is_empty());

    // Several ranges are answered with the whole file (allowed by RFC 9110).
    let multi = http(&n.web, "GET", url, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(multi.status, 200);
    assert_eq!(multi.body.len(), 100_000);

    let head = http(&n.web, "HEAD", url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100000"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());

    let cached = http(&n.web, "GET", url, &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));

    // If-Range with the current tag honours the range; with an old one sends everything.
    let ir = http(
        &n.web,
        "GET",
        url,
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!(ir.status, 206);
    let stale = http(
        &n.web,
        "GET",
        url,
        &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
    );
    assert_eq!(stale.status, 200);

    // The file grows (a camera still recording): new tag, new length.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("clip.mp4"))
        .unwrap();
    f.write_all(&[7u8; 1000]).unwrap();
    drop(f);
    let grown = http(&n.web, "GET", url, &[("If-None-Match", &etag)]);
    assert_eq!(grown.status, 200);
    assert_eq!(grown.body.len(), 101_000);
    assert_ne!(grown.header("etag"), Some(etag.as_str()));

    // Folders, unknown files and unknown nodes.
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    assert_eq!(get(&n.web, "/files/cam1/sub").status, 404);
    assert_eq!(get(&n.web, "/files/cam1/nope.mp4").status, 404);
    assert_eq!(get(&n.web, "/files/nobody/clip.mp4").status, 404);
    assert_eq!(get(&n.web, "/no/such/page").status, 404);
}

#[test]
fn hostile_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/ok.txt"), b"fine").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), b"TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), share.join("escape")).unwrap();
    let n = web_node(&share, "cam1", &[]);
    assert_eq!(get(&n.web, "/files/cam1/sub/ok.txt").text(), "fine");

    for target in [
        "/files/cam1/../secret.txt",
        "/files/cam1/sub/../../secret.txt",
        "/files/cam1/%2e%2e/secret.txt",
        "/files/cam1/%2E%2E/secret.txt",
        "/files/cam1/..%2Fsecret.txt",
        "/files/cam1/sub%2F..%2F..%2Fsecret.txt",
        "/files/cam1/%2Fetc%2Fpasswd",
        "/files/cam1//etc/passwd",
        "/files/cam1/sub/ok.txt%00",
        "/files/cam1/%00",
        "/files/cam1/escape",
        "/files/cam1/%252e%252e/secret.txt",
        "/files/cam1/%zz",
        "/files/../../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/api/ls/cam1/..",
        "/api/ls/cam1/%2e%2e",
        "/api/stat/cam1/%2e%2e%2fsecret.txt",
        "/api/stat/cam1/escape",
    ] {
        let r = get(&n.web, target);
        assert!(
            r.status == 403 || r.status == 404,
            "{target}: status {} body {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("TOP-SECRET"),
            "{target} leaked the secret"
        );
    }
    // The server is still up and serving.
    assert_eq!(get(&n.web, "/files/cam1/sub/ok.txt").status, 200);
}

#[test]
fn html_in_file_names_is_data_not_markup() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "<img src=x onerror=alert(1)>\".txt";
    std::fs::write(tmp.path().join(name), b"harmless").unwrap();
    let n = web_node(tmp.path(), "cam1", &[]);

    let ls = get(&n.web, "/api/ls/cam1/");
    assert_eq!(ls.status, 200);
    assert_eq!(ls.header("content-type"), Some("application/json"));
    // JSON carries the exact name (the quote escaped), for the page to use as text.
    assert!(
        ls.text()
            .contains(r#""name":"<img src=x onerror=alert(1)>\".txt""#),
        "{}",
        ls.text()
    );

    let file = get(
        &n.web,
        "/files/cam1/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%22.txt",
    );
    assert_eq!(file.status, 200);
    assert_eq!(file.text(), "harmless");
    let disposition = file.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("inline; filename=\"<img src=x onerror=alert(1)>_.txt\""),
        "{disposition}"
    );
    // Opened directly, a share's file can never script this origin.
    // (A sandbox without `allow-scripts`: `allow-same-origin` lets a video opened in its own
    // tab load itself; see the browser test.)
    assert_eq!(
        file.header("content-security-policy"),
        Some("sandbox allow-same-origin")
    );
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));

    // The page builds its DOM from text only and forbids inline scripts.
    let page = get(&n.web, "/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let js = get(&n.web, "/app.js").text();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
    assert!(js.contains("createTextNode"));
}

#[test]
fn remote_files_stream_through_this_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(b_dir.join("clips")).unwrap();
    // Larger than one pread chunk, so the body takes several round trips.
    let data = pattern(3 << 20, 2);
    std::fs::write(b_dir.join("clips/big.webm"), &data).unwrap();
    let b = web_node(&b_dir, "camb", &[]);
    let a = web_node(&a_dir, "cama", &["--node", &b.addr]);

    // Reachable by address at once, by name once `hello` told it.
    let by_addr = format!("/files/{}/clips/big.webm", b.addr.replace(':', "%3A"));
    let r = get(&a.web, &by_addr);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "remote body differs");
    wait_until(
        Duration::from_secs(10),
        "node b named camb and online",
        || {
            let t = get(&a.web, "/api/nodes").text();
            t.contains(r#""name":"camb""#) && t.contains(r#""status":"online""#)
        },
    );

    let url = "/files/camb/clips/big.webm";
    let head = http(&a.web, "HEAD", url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("3145728"));
    assert_eq!(head.header("content-type"), Some("video/webm"));
    let etag = head.header("etag").unwrap().to_owned();

    // A range across a chunk boundary, and a suffix.
    let mid = http(&a.web, "GET", url, &[("Range", "bytes=262000-1300000")]);
    assert_eq!(mid.status, 206);
    assert!(
        mid.body == data[262_000..=1_300_000],
        "remote range differs"
    );
    let tail = http(&a.web, "GET", url, &[("Range", "bytes=-500")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &data[data.len() - 500..]);
    let past = http(&a.web, "GET", url, &[("Range", "bytes=9999999-")]);
    assert_eq!(past.status, 416);
    assert_eq!(
        http(&a.web, "GET", url, &[("If-None-Match", &etag)]).status,
        304
    );

    // Listing and stat of the remote node, and its refusals.
    let ls = get(&a.web, "/api/ls/camb/clips");
    assert_eq!(ls.status, 200);
    assert!(
        ls.text()
            .contains(r#""name":"big.webm","type":"file","size":3145728"#)
    );
    let st = get(&a.web, "/api/stat/camb/clips/big.webm");
    assert!(
        st.text().contains(r#""path":"clips/big.webm""#),
        "{}",
        st.text()
    );
    assert_eq!(get(&a.web, "/files/camb/clips/none.webm").status, 404);
    assert_eq!(get(&a.web, "/files/camb/%2e%2e/a").status, 403);
    assert_eq!(get(&a.web, "/api/ls/camb/clips/big.webm").status, 400);
}

#[test]
fn unreachable_and_vanishing_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    // Far more than loopback socket buffers hold, so the stream is mid-way when b dies.
    let len = 48usize << 20;
    std::fs::File::create(b_dir.join("long.bin"))
        .unwrap()
        .set_len(len as u64)
        .unwrap();
    // A port nobody listens on: bind one, note it, close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut b = web_node(&b_dir, "camb", &[]);
    let a = web_node(
        &a_dir,
        "cama",
        &["--node", &b.addr, "--node", &dead.to_string()],
    );

    let dead_key = dead.to_string().replace(':', "%3A");
    assert_eq!(get(&a.web, &format!("/api/ls/{dead_key}/")).status, 502);
    assert_eq!(get(&a.web, &format!("/files/{dead_key}/x")).status, 502);

    // a must have met b (learned its name) before b dies: only then is "camb" reported
    // offline. Killing b first made this test fail whenever a's first probe came late.
    let online = format!(
        r#""name":"camb","addr":"{}","local":false,"status":"online""#,
        b.addr
    );
    wait_until(Duration::from_secs(30), "b reported online", || {
        get(&a.web, "/api/nodes").text().contains(&online)
    });

    // Start a download through a, read a little, kill b, read on: the body is cut short.
    let key = b.addr.replace(':', "%3A");
    let mut s = TcpStream::connect(&a.web).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /files/{key}/long.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut got = s.read(&mut buf).unwrap();
    assert!(got > 0);
    assert!(String::from_utf8_lossy(&buf[..got]).starts_with("HTTP/1.1 200"));
    b.proc.child.kill().unwrap();
    b.proc.child.wait().unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < len, "the whole body arrived although its node died");

    // a keeps serving and reports b offline.
    let offline = format!(
        r#""name":"camb","addr":"{}","local":false,"status":"offline""#,
        b.addr
    );
    wait_until(Duration::from_secs(30), "b reported offline", || {
        get(&a.web, "/api/nodes").text().contains(&offline)
    });
    assert_eq!(get(&a.web, &format!("/files/{key}/long.bin")).status, 502);
    assert_eq!(get(&a.web, "/api/ls/cama/").status, 200);
}

#[test]
fn no_web_means_no_second_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut proc, first) = spawn(&[
        "node",
        tmp.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-web",
        "--no-discovery",
    ]);
    assert!(first.starts_with("meshfs node "));
    // Stop the node: stdout closes without a `web` line (the node's `id` line alone follows).
    proc.signal(libc::SIGTERM);
    proc.wait_exit(Duration::from_secs(10));
    let rest: Vec<String> = proc.lines.iter().collect();
    assert!(rest.iter().all(|l| l.starts_with("id ")), "{rest:?}");
}

/// The page in a real browser: headless Debian chromium driven by playwright-core
/// (`crates/meshfs-web/e2e/web.mjs`). Skipped, saying so, only when chromium is absent.
#[test]
fn browser_ui() {
    let Some((chromium, e2e)) = browser("browser_ui") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let hostile = "<img src=x onerror=window.__pwned=1>.txt";
    std::fs::write(a_dir.join(hostile), b"not markup").unwrap();
    std::fs::write(
        a_dir.join("evil.html"),
        "<title>inert</title><p id=evil>hi</p><script>document.title='pwned'</script>",
    )
    .unwrap();
    std::fs::copy(e2e.join("fixtures/clip.webm"), b_dir.join("clip.webm")).unwrap();
    std::fs::write(b_dir.join("notes.txt"), b"camera b notes").unwrap();
    let b = web_node(&b_dir, "camb", &[]);
    let a = web_node(&a_dir, "cama", &["--node", &b.addr]);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-e2e");
    let url = format!("http://{}/", a.web);
    run_browser_script(
        &e2e,
        "web.mjs",
        &chromium,
        &[
            ("WEB_URL", url.as_ref()),
            ("LOCAL", "cama".as_ref()),
            ("REMOTE", "camb".as_ref()),
            ("LOCAL_DIR", a_dir.as_os_str()),
            ("HOSTILE", hostile.as_ref()),
            ("VIDEO", "clip.webm".as_ref()),
            ("OUT_DIR", out.as_os_str()),
        ],
    );
    assert!(
        out.join("video.png").is_file(),
        "no screenshot in {}",
        out.display()
    );
    eprintln!("screenshots: {}", out.display());
}

/// An open event feed (an endless response) does not hold a stopping node for its grace period.
#[test]
fn event_feed_does_not_delay_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = web_node(tmp.path(), "cam1", &["--grace", "60s"]);
    let mut s = TcpStream::connect(&n.web).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: nodes") {
        let k = s
            .read(&mut buf)
            .expect("the feed starts with the node list");
        assert!(k > 0, "feed closed early");
        seen.extend_from_slice(&buf[..k]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("content-type: text/event-stream"));
    let started = Instant::now();
    n.proc.signal(libc::SIGTERM);
    let status = n.proc.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The feed ended with the node.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Read an SSE stream until `want` appears in what arrived; panics after `timeout`.
fn read_feed_until(s: &mut TcpStream, seen: &mut Vec<u8>, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {want:?} in the feed within {timeout:?}: {}",
            String::from_utf8_lossy(seen)
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("feed closed: {}", String::from_utf8_lossy(seen)),
            Ok(k) => seen.extend_from_slice(&buf[..k]),
            Err(e) => panic!("feed read failed ({e}): {}", String::from_utf8_lossy(seen)),
        }
    }
}

/// The event feed: file events of this node and of a remote one arrive as SSE `file` events.
/// A file server without `subscribe` is reported as `events: unavailable` instead (noted).
#[test]
fn event_feed_carries_every_nodes_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = web_node(&b_dir, "camb", &[]);
    let a = web_node(&a_dir, "cama", &["--node", &b.addr]);
    // Wait until both watchers settled (live or unavailable).
    let mut nodes = String::new();
    wait_until(
        Duration::from_secs(10),
        "both nodes' event state known",
        || {
            nodes = get(&a.web, "/api/nodes").text();
            nodes.matches(r#""status":"online""#).count() == 2
                && !nodes.contains(r#""events":"unknown""#)
        },
    );
    let mut s = TcpStream::connect(&a.web).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    read_feed_until(&mut s, &mut seen, "event: nodes", Duration::from_secs(10));
    if nodes.contains(r#""events":"unavailable""#) {
        eprintln!("NOTE: the file server offers no `subscribe`: checked that the feed says so");
        assert!(String::from_utf8_lossy(&seen).contains(r#""events":"unavailable""#));
        return;
    }
    assert_eq!(nodes.matches(r#""events":"live""#).count(), 2, "{nodes}");
    std::fs::write(b_dir.join("from b.mp4"), b"b").unwrap();
    read_feed_until(
        &mut s,
        &mut seen,
        r#""node":"camb""#,
        Duration::from_secs(5),
    );
    read_feed_until(
        &mut s,
        &mut seen,
        r#""path":"from b.mp4""#,
        Duration::from_secs(5),
    );
    std::fs::create_dir(a_dir.join("sub")).unwrap();
    std::fs::write(a_dir.join("sub/<i>.txt"), b"a").unwrap();
    read_feed_until(
        &mut s,
        &mut seen,
        r#""node":"cama""#,
        Duration::from_secs(5),
    );
    read_feed_until(
        &mut s,
        &mut seen,
        r#""path":"sub/<i>.txt""#,
        Duration::from_secs(5),
    );
    assert!(String::from_utf8_lossy(&seen).contains("event: file"));
}

/// An explicit `--web` address that cannot be bound stops the node with an error (a silent
/// node without its UI would surprise whoever asked for it).
#[test]
fn explicit_web_address_in_use_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = std::process::Command::new(common::bin())
        .args([
            "node",
            tmp.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--web", &addr, "--no-discovery"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run meshfs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node kept running although its --web address was taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot serve the web UI on {addr}")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("web http://"));
}

// ---- password login (cookie sessions) -----------------------------------------------------

/// A node started with `RUST_LOG=debug`, its stderr going to `log` (to check what it logs).
fn logged_web_node(dir: &Path, name: &str, extra: &[&str], log: &Path) -> WebNode {
    let proc = common::spawn_piped(
        std::process::Command::new(common::bin())
            .args(["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--name", name])
            .args(extra)
            .env("RUST_LOG", "debug")
            .env_remove("MESHFS_PASSWORD")
            .stderr(std::fs::File::create(log).unwrap()),
    );
    let addr = node_addr(&proc.next_line(Duration::from_secs(20)));
    let web = web_addr(&proc);
    WebNode::new(proc, addr, web)
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn login(web: &str, password: &str, cookie: Option<&str>) -> Resp {
    let body = format!(r#"{{"password":{}}}"#, json_string(password));
    let mut headers = vec![JSON];
    let cookie_header;
    if let Some(c) = cookie {
        cookie_header = c.to_owned();
        headers.push(("Cookie", &cookie_header));
    }
    http_body(web, "POST", "/api/login", &headers, body.as_bytes())
}

/// A JSON string literal (quotes, backslashes and newlines escaped; test inputs hold no
/// other special character).
fn json_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// `meshfs_session=TOKEN` from a response's `Set-Cookie`, checking its attributes.
fn session_cookie(r: &Resp) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie header");
    let mut parts = set.split(';').map(str::trim);
    let pair = parts.next().unwrap();
    let token = pair.strip_prefix("meshfs_session=").expect(set);
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "token of 128+ bits: {set}"
    );
    let attrs: Vec<&str> = parts.collect();
    // Logins are over HTTPS: the browser must never send the cookie in clear.
    for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(attrs.contains(&want), "{want} missing: {set}");
    }
    pair.to_owned()
}

fn get_with(web: &str, target: &str, cookie: &str) -> Resp {
    http(web, "GET", target, &[("Cookie", cookie)])
}

/// The share password through the web UI: `401` (JSON, `"login": true`) without a session,
/// wrong passwords refused, the right one gives an HttpOnly SameSite=Strict cookie that
/// unlocks listings and bytes, logout ends it, five failures lock the address out (even
/// for the right password), bad bodies get clear errors, and neither the password nor the
/// wrong guesses ever reach the node's debug log.
#[test]
fn password_login_with_a_cookie_session() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let data = pattern(300_000, 9);
    std::fs::write(share.join("clip.mp4"), &data).unwrap();
    let password = "Corr3ct-h0rse-battery";
    let wrong = "wr0ng-guess-zebra";
    std::fs::write(tmp.path().join("pw"), format!("{password}\n")).unwrap();
    let log = tmp.path().join("node.log");
    let pw_file = tmp.path().join("pw");
    let mut n = logged_web_node(
        &share,
        "cam1",
        &[
            "--no-discovery",
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        &log,
    );

    // Without a session: 401 with a JSON error the page understands, for every door.
    for target in [
        "/api/ls/cam1/",
        "/api/stat/cam1/clip.mp4",
        "/files/cam1/clip.mp4",
    ] {
        let r = get(&n.https, target);
        assert_eq!(r.status, 401, "{target}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.text().contains(r#""login":true"#), "{}", r.text());
        assert!(r.body.len() < 200, "only an error, no bytes of the file");
        assert_eq!(r.header("www-authenticate"), Some("Form realm=\"meshfs\""));
    }
    assert_eq!(
        http(&n.https, "HEAD", "/files/cam1/clip.mp4", &[]).status,
        401
    );
    let s = get(&n.https, "/api/session").text();
    assert!(
        s.contains(r#""protected":true"#) && s.contains(r#""logged_in":false"#),
        "{s}"
    );
    // The node list is never protected (it holds no file).
    assert_eq!(get(&n.https, "/api/nodes").status, 200);

    // A wrong password: 401, no cookie.
    let r = login(&n.https, wrong, None);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("wrong password"), "{}", r.text());
    assert!(r.header("set-cookie").is_none());

    // Bad bodies: not JSON, malformed (not echoed), too large.
    let r = http_body(
        &n.https,
        "POST",
        "/api/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("password={password}").as_bytes(),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = http_body(
        &n.https,
        "POST",
        "/api/login",
        &[JSON],
        b"{\"password\": 12345678}",
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("12345678"), "{}", r.text());
    let huge = format!(r#"{{"password":"{}"}}"#, "x".repeat(64 << 10));
    let r = http_body(&n.https, "POST", "/api/login", &[JSON], huge.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());

    // Over plain HTTP no password is taken (403, said why), and the page is told so.
    let r = login(&n.web, password, None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("HTTPS only"), "{}", r.text());
    assert!(r.header("set-cookie").is_none());
    let s = get(&n.web, "/api/session").text();
    assert!(
        s.contains(r#""secure":false"#) && s.contains(r#""https":true"#),
        "{s}"
    );
    assert!(
        get(&n.https, "/api/session")
            .text()
            .contains(r#""secure":true"#)
    );

    // The right password: a session cookie that unlocks the share.
    let r = login(&n.https, password, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = session_cookie(&r);
    // The same cookie over plain HTTP is ignored: the request is anonymous.
    assert_eq!(get_with(&n.web, "/api/ls/cam1/", &cookie).status, 401);
    let s = get_with(&n.web, "/api/session", &cookie).text();
    assert!(s.contains(r#""logged_in":false"#), "{s}");
    assert!(r.text().contains(r#""may_browse":true"#), "{}", r.text());
    let ls = get_with(&n.https, "/api/ls/cam1/", &cookie);
    assert_eq!(ls.status, 200);
    assert!(ls.text().contains(r#""name":"clip.mp4""#));
    let file = get_with(&n.https, "/files/cam1/clip.mp4", &cookie);
    assert_eq!(file.status, 200);
    assert!(file.body == data, "the file's bytes");
    let part = http(
        &n.https,
        "GET",
        "/files/cam1/clip.mp4",
        &[("Cookie", &cookie), ("Range", "bytes=1000-1999")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[1000..2000]);
    let s = get_with(&n.https, "/api/session", &cookie).text();
    assert!(s.contains(r#""logged_in":true"#), "{s}");
    // A made-up token unlocks nothing.
    let forged = format!("meshfs_session={}", "a".repeat(64));
    assert_eq!(get_with(&n.https, "/api/ls/cam1/", &forged).status, 401);

    // Logout is JSON only (a foreign page's form cannot log the browser out), then ends the
    // session and clears the cookie.
    let form = [("Cookie", cookie.as_str()), ("Content-Type", "text/plain")];
    let out = http_body(&n.https, "POST", "/api/logout", &form, b"{}");
    assert_eq!(out.status, 415, "{}", out.text());
    assert!(out.header("set-cookie").is_none());
    assert_eq!(get_with(&n.https, "/api/ls/cam1/", &cookie).status, 200);
    let out = http_body(
        &n.https,
        "POST",
        "/api/logout",
        &[("Cookie", &cookie), JSON],
        b"{}",
    );
    assert_eq!(out.status, 200);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.starts_with("meshfs_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        out.header("set-cookie")
    );
    assert_eq!(get_with(&n.https, "/api/ls/cam1/", &cookie).status, 401);
    assert_eq!(
        get_with(&n.https, "/files/cam1/clip.mp4", &cookie).status,
        401
    );

    // Rate limit: after five failures from this address, even the right password is refused.
    // The wrong password above is the first: the success since then cleared nothing (knowing
    // one password must not reset the guesses at another).
    for i in 2..=5 {
        let r = login(&n.https, &format!("{wrong}{i}"), None);
        assert_eq!(r.status, 401, "failure {i}");
    }
    let r = login(&n.https, password, None);
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.header("set-cookie").is_none());
    assert!(r.text().contains("too many failed logins"), "{}", r.text());

    // Nothing of the passwords in the node's log (it did log at debug level).
    n.proc.signal(libc::SIGTERM);
    n.proc.wait_exit(Duration::from_secs(20));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("DEBUG"), "debug logging was on: {logged}");
    assert!(logged.contains("web login"), "{logged}");
    for secret in [password, wrong, "Corr3ct", "zebra"] {
        assert!(!logged.contains(secret), "{secret:?} in the log:\n{logged}");
    }
}

/// A command run with its user and state folders under `home` (`XDG_CONFIG_HOME`,
/// `XDG_STATE_HOME`): a key of its own, and pins kept out of the runner's folders (a fresh key
/// under a name other tests use would otherwise be pinned there, and refused next time).
fn at_home(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"));
    cmd
}

/// A web node at `home` (see [`at_home`]) serving `dir` as `name`, `extra` flags after it.
fn web_node_at_home(home: &Path, dir: &Path, name: &str, extra: &[String]) -> WebNode {
    let mut args = vec!["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend(["--name", name]);
    args.extend(extra.iter().map(String::as_str));
    let proc = common::spawn_piped(at_home(home, &args).stderr(std::process::Stdio::inherit()));
    let addr = node_addr(&proc.next_line(Duration::from_secs(20)));
    let web = web_addr(&proc);
    WebNode::new(proc, addr, web)
}

/// `meshfs id --node` at `home` (`--curl`: the pin form).
fn node_id_at_home(home: &Path, curl: bool) -> String {
    let mut args = vec!["id", "--node"];
    if curl {
        args.push("--curl");
    }
    let out = at_home(home, &args).output().expect("run meshfs id");
    common::assert_success(&out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `curl -k --pinnedpubkey PIN URL`, with its output.
fn curl_pinned(pin: &str, url: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20", "--pinnedpubkey", pin])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl")
}

/// The web UI's HTTPS presents the node's own key: curl pinned to the ID `meshfs id --node`
/// prints gets through (and the page's session and node list show that ID), curl pinned to
/// another key is refused; a login over HTTPS sets a `Secure` cookie, one over plain HTTP on
/// the same port is refused.
#[test]
fn https_presents_the_nodes_own_key() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("clip.mp4"), b"clip bytes").unwrap();
    std::fs::write(tmp.path().join("pw"), "pinned-pass-77\n").unwrap();
    let home = tmp.path().join("home");
    let pw = tmp.path().join("pw");
    let extra = ["--no-discovery", "--password-file", pw.to_str().unwrap()].map(String::from);
    let n = web_node_at_home(&home, &share, "cam1", &extra);
    let (id, pin) = (node_id_at_home(&home, false), node_id_at_home(&home, true));
    assert!(pin.starts_with("sha256//"), "{pin}");

    let out = curl_pinned(&pin, &format!("{}/api/session", n.https), &[]);
    common::assert_success(&out);
    let session = String::from_utf8_lossy(&out.stdout);
    assert!(
        session.contains(&format!(r#""node_id":"{id}""#))
            && session.contains(&format!(r#""pin":"{pin}""#)),
        "{session}"
    );
    assert!(session.contains(r#""secure":true"#), "{session}");
    let nodes = get(&n.https, "/api/nodes").text();
    assert!(nodes.contains(&format!(r#""id":"{id}""#)), "{nodes}");

    // Another key's pin: curl refuses the connection (CURLE_SSL_PINNEDPUBKEYNOTMATCH).
    let other = node_id_at_home(&tmp.path().join("other"), true);
    assert_ne!(other, pin);
    let out = curl_pinned(&other, &format!("{}/api/session", n.https), &[]);
    assert_eq!(
        out.status.code(),
        Some(90),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    // Login: over HTTPS with a Secure cookie; the same request in clear is refused.
    let login_args = [
        "-i",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        r#"{"password":"pinned-pass-77"}"#,
    ];
    let out = curl_pinned(&pin, &format!("{}/api/login", n.https), &login_args);
    common::assert_success(&out);
    let reply = String::from_utf8_lossy(&out.stdout);
    let set_cookie = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie: {reply}"));
    assert!(set_cookie.trim_end().ends_with("; Secure"), "{set_cookie}");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(login_args)
        .arg(format!("http://{}/api/login", n.web))
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("HTTPS only"), "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("set-cookie"),
        "{reply}"
    );
}

/// The node list shows each node's ID: this node's own at once, another's once the web UI's
/// connection to it (TLS, the client side's default) showed its key; each is the ID
/// `meshfs id --node` prints on that node.
#[test]
fn the_node_list_shows_each_nodes_id() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a_home, &b_home] {
        std::fs::create_dir_all(d.join("share")).unwrap();
    }
    let b = web_node_at_home(
        &b_home,
        &b_home.join("share"),
        "camb",
        &["--no-discovery".into()],
    );
    let extra = ["--no-discovery", "--node", &b.addr].map(String::from);
    let a = web_node_at_home(&a_home, &a_home.join("share"), "cama", &extra);
    let (a_id, b_id) = (
        node_id_at_home(&a_home, false),
        node_id_at_home(&b_home, false),
    );
    assert_ne!(a_id, b_id);
    let mut nodes = String::new();
    wait_until(Duration::from_secs(10), "node b listed with its ID", || {
        nodes = get(&a.web, "/api/nodes").text();
        nodes.contains(&format!(r#""name":"camb","addr":"{}""#, b.addr))
            && nodes.contains(&format!(r#""id":"{b_id}""#))
    });
    assert!(nodes.contains(&format!(r#""id":"{a_id}""#)), "{nodes}");
}

/// `--web-tls`: HTTPS only, announced as `web https://…`; a plain request is redirected to
/// the same URL over HTTPS. `--no-web-tls`: plain HTTP only, and no login at all.
#[test]
fn web_tls_only_and_no_web_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (args, addr) = (
        [
            "node",
            tmp.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        ["--name", "cam1", "--no-discovery"],
    );
    let (proc, _) = spawn(&[&args[..], &addr[..], &["--web-tls"]].concat());
    let line = proc.next_line(Duration::from_secs(10));
    let web = line
        .strip_prefix("web https://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected web line {line:?}"))
        .to_owned();
    let r = get(&web, "/api/ls/cam1/?x=1");
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("https://{web}/api/ls/cam1/?x=1").as_str())
    );
    let r = get(&format!("https://{web}"), "/api/session");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(r#""secure":true"#), "{}", r.text());
    drop(proc);

    let (proc, _) = spawn(&[&args[..], &addr[..], &["--no-web-tls"]].concat());
    let line = proc.next_line(Duration::from_secs(10));
    let web = line
        .strip_prefix("web http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected web line {line:?}"))
        .to_owned();
    let s = get(&web, "/api/session").text();
    assert!(
        s.contains(r#""https":false"#) && s.contains(r#""node_id":""#),
        "{s}"
    );
    let r = login(&web, "anything", None);
    assert_eq!(r.status, 403);
    assert!(r.text().contains("--no-web-tls"), "{}", r.text());
    // No TLS spoken there.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20"])
        .arg(format!("https://{web}/"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(proc);
}

/// An offered file's own password unlocks that file only; the rest of the share is open.
#[test]
fn an_offered_files_password_unlocks_only_that_file() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(share.join("clips")).unwrap();
    std::fs::write(share.join("clips/secret.mp4"), b"the secret clip").unwrap();
    std::fs::write(share.join("clips/open.mp4"), b"an open clip").unwrap();
    std::os::unix::fs::symlink("clips/secret.mp4", share.join("alias.mp4")).unwrap();
    std::fs::write(tmp.path().join("pw"), "file-only-pass\n").unwrap();
    let offer = format!("clips/secret.mp4:{}", tmp.path().join("pw").display());
    let log = tmp.path().join("node.log");
    let n = logged_web_node(&share, "cam1", &["--no-discovery", "--offer", &offer], &log);

    assert_eq!(get(&n.https, "/api/ls/cam1/clips").status, 200);
    assert_eq!(
        get(&n.https, "/files/cam1/clips/open.mp4").text(),
        "an open clip"
    );
    for target in ["/files/cam1/clips/secret.mp4", "/files/cam1/alias.mp4"] {
        let r = get(&n.https, target);
        assert_eq!(r.status, 401, "{target}");
        assert!(!r.text().contains("the secret clip"));
    }
    let s = get(&n.https, "/api/session").text();
    assert!(s.contains(r#""may_browse":true"#), "{s}");

    let r = login(&n.https, "file-only-pass", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = session_cookie(&r);
    assert_eq!(
        get_with(&n.https, "/files/cam1/clips/secret.mp4", &cookie).text(),
        "the secret clip"
    );
    assert_eq!(
        get_with(&n.https, "/files/cam1/alias.mp4", &cookie).status,
        200
    );
    // A wrong password on a live session leaves the session as it was.
    assert_eq!(login(&n.https, "nope", Some(&cookie)).status, 401);
    assert_eq!(
        get_with(&n.https, "/files/cam1/clips/secret.mp4", &cookie).status,
        200
    );
}

/// A remote node's password, given to this node's page, is proven to that node: the
/// session then lists and streams the remote node's protected files through this node; other
/// sessions still get `401`.
#[test]
fn a_remote_nodes_password_is_proven_through_this_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(b_dir.join("clips")).unwrap();
    let data = pattern(600_000, 11);
    std::fs::write(b_dir.join("clips/clip.mp4"), &data).unwrap();
    let password = "rem0te-pass-heron";
    std::fs::write(tmp.path().join("pw"), format!("{password}\n")).unwrap();
    let pw_file = tmp.path().join("pw");
    let b = web_node(
        &b_dir,
        "camb",
        &["--password-file", pw_file.to_str().unwrap()],
    );
    let log = tmp.path().join("a.log");
    let mut a = logged_web_node(&a_dir, "cama", &["--no-discovery", "--node", &b.addr], &log);
    wait_until(Duration::from_secs(10), "node b named camb", || {
        get(&a.https, "/api/nodes")
            .text()
            .contains(r#""name":"camb""#)
    });

    let r = get(&a.https, "/api/ls/camb/clips");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains(r#""login":true"#), "{}", r.text());
    assert_eq!(get(&a.https, "/files/camb/clips/clip.mp4").status, 401);

    let remote_login = |password: &str, node: &str| {
        let body = format!(
            r#"{{"password":{},"node":{}}}"#,
            json_string(password),
            json_string(node)
        );
        http_body(&a.https, "POST", "/api/login", &[JSON], body.as_bytes())
    };
    // A password is one protocol line to the node: no line breaks smuggled in.
    let r = remote_login("x\nstat clips/clip.mp4", "camb");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("control characters"), "{}", r.text());
    let r = remote_login("not-it", "camb");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("set-cookie").is_none());
    assert_eq!(remote_login(password, "nobody").status, 404);
    // This node has no password: nothing to log in to.
    assert_eq!(remote_login(password, "cama").status, 400);

    let r = remote_login(password, "camb");
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = session_cookie(&r);
    let ls = get_with(&a.https, "/api/ls/camb/clips", &cookie);
    assert_eq!(ls.status, 200, "{}", ls.text());
    assert!(ls.text().contains(r#""name":"clip.mp4""#));
    let file = get_with(&a.https, "/files/camb/clips/clip.mp4", &cookie);
    assert_eq!(file.status, 200);
    assert!(file.body == data, "the remote file's bytes");
    let part = http(
        &a.https,
        "GET",
        "/files/camb/clips/clip.mp4",
        &[("Cookie", &cookie), ("Range", "bytes=-1000")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[data.len() - 1000..]);
    // Other browsers are not let in by this session's connections.
    assert_eq!(get(&a.https, "/files/camb/clips/clip.mp4").status, 401);
    assert_eq!(get(&a.https, "/api/ls/camb/clips").status, 401);

    let out = http_body(
        &a.https,
        "POST",
        "/api/logout",
        &[("Cookie", &cookie), JSON],
        b"{}",
    );
    assert_eq!(out.status, 200);
    assert_eq!(
        get_with(&a.https, "/api/ls/camb/clips", &cookie).status,
        401
    );

    a.proc.signal(libc::SIGTERM);
    a.proc.wait_exit(Duration::from_secs(20));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("web login"), "{logged}");
    assert!(
        !logged.contains("heron"),
        "the password in the log:\n{logged}"
    );
}

/// Every successful login answers with a new session token (no session fixation): a second
/// password given with the first session's cookie gets a new cookie holding both grants,
/// and the first token is dead.
#[test]
fn each_login_mints_a_new_session_token() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("a.mp4"), b"clip a").unwrap();
    std::fs::write(share.join("b.mp4"), b"clip b").unwrap();
    std::fs::write(tmp.path().join("pa"), "pass-for-a\n").unwrap();
    std::fs::write(tmp.path().join("pb"), "pass-for-b\n").unwrap();
    let offer_a = format!("a.mp4:{}", tmp.path().join("pa").display());
    let offer_b = format!("b.mp4:{}", tmp.path().join("pb").display());
    let log = tmp.path().join("node.log");
    let n = logged_web_node(
        &share,
        "cam1",
        &["--no-discovery", "--offer", &offer_a, "--offer", &offer_b],
        &log,
    );

    let r = login(&n.https, "pass-for-a", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let t1 = session_cookie(&r);
    assert_eq!(
        get_with(&n.https, "/files/cam1/a.mp4", &t1).text(),
        "clip a"
    );
    assert_eq!(get_with(&n.https, "/files/cam1/b.mp4", &t1).status, 401);

    let r = login(&n.https, "pass-for-b", Some(&t1));
    assert_eq!(r.status, 200, "{}", r.text());
    let t2 = session_cookie(&r);
    assert_ne!(t1, t2, "a login must not keep the token it came with");
    assert_eq!(
        get_with(&n.https, "/files/cam1/a.mp4", &t2).text(),
        "clip a"
    );
    assert_eq!(
        get_with(&n.https, "/files/cam1/b.mp4", &t2).text(),
        "clip b"
    );
    for target in ["/files/cam1/a.mp4", "/files/cam1/b.mp4"] {
        assert_eq!(
            get_with(&n.https, target, &t1).status,
            401,
            "old token: {target}"
        );
    }
    let s = get_with(&n.https, "/api/session", &t1).text();
    assert!(s.contains(r#""logged_in":false"#), "{s}");
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A file server that answers every `auth` with "authentication failed", but only once
/// released, counting the `auth` lines it got; other requests are refused. It stands in for
/// a protected node whose answers take time.
struct SlowRefusingNode {
    addr: String,
    auths: Arc<AtomicUsize>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl SlowRefusingNode {
    fn auths(&self) -> usize {
        self.auths.load(Ordering::SeqCst)
    }

    /// Let every held `auth` (and any later one) be answered.
    fn release(&self) {
        let (lock, cv) = &*self.gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

fn slow_refusing_file_server() -> SlowRefusingNode {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let auths = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (count, wait) = (auths.clone(), gate.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().take(1000) {
            let Ok(conn) = conn else { continue };
            let (count, wait) = (count.clone(), wait.clone());
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let reader = std::io::BufReader::new(conn);
                for line in std::io::BufRead::lines(reader).take(100) {
                    let Ok(line) = line else { return };
                    let reply: &[u8] = if line.starts_with("auth ") {
                        count.fetch_add(1, Ordering::SeqCst);
                        let (lock, cv) = &*wait;
                        let mut open = lock.lock().unwrap();
                        while !*open {
                            open = cv.wait(open).unwrap();
                        }
                        b"6 authentication failed\n"
                    } else {
                        b"5 not here\n"
                    };
                    if out.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    SlowRefusingNode { addr, auths, gate }
}

/// Concurrent logins for a remote node from one address are bounded by the same limit as
/// sequential ones: the attempts are counted before the node answers, so at most
/// MAX_FAILURES guesses reach the node and the rest get `429` at once.
#[test]
fn concurrent_remote_logins_are_throttled_before_the_node_answers() {
    const GUESSES: usize = 24;
    const LIMIT: usize = 5;
    let tmp = tempfile::tempdir().unwrap();
    let slow = slow_refusing_file_server();
    let node = slow.addr.clone();
    // The slow fake node speaks the text protocol only.
    let a = web_node(tmp.path(), "cama", &["--node", &node, "--plaintext"]);
    wait_until(Duration::from_secs(10), "the remote node listed", || {
        get(&a.https, "/api/nodes").text().contains(&node)
    });

    let (tx, rx) = std::sync::mpsc::channel();
    let guessers: Vec<_> = (0..GUESSES)
        .map(|i| {
            let (web, node, tx) = (a.https.clone(), node.clone(), tx.clone());
            std::thread::spawn(move || {
                let body = format!(r#"{{"password":"guess-{i}","node":"{node}"}}"#);
                let r = http_body(&web, "POST", "/api/login", &[JSON], body.as_bytes());
                tx.send(r.status).unwrap();
            })
        })
        .collect();
    // Every guess either reached the node (held there) or was answered.
    let mut statuses = Vec::new();
    wait_until(
        Duration::from_secs(20),
        "every guess answered or at the node",
        || {
            statuses.extend(rx.try_iter());
            statuses.len() + slow.auths() >= GUESSES
        },
    );
    let reached = slow.auths();
    slow.release();
    for g in guessers {
        g.join().unwrap();
    }
    statuses.extend(rx.try_iter());
    assert!(
        (1..=LIMIT).contains(&reached),
        "{reached} concurrent guesses reached the node"
    );
    assert_eq!(statuses.len(), GUESSES);
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        (wrong, refused),
        (reached, GUESSES - reached),
        "{statuses:?}"
    );
    assert_eq!(slow.auths(), reached, "no guess got through later");
    // The failures locked the address out.
    let body = format!(r#"{{"password":"one-more","node":"{node}"}}"#);
    let r = http_body(&a.https, "POST", "/api/login", &[JSON], body.as_bytes());
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(slow.auths(), reached);
}

// ---- the group chat in the page -------------------------------------------------------------

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 220;

/// A web node in `net` (discovery on).
fn group_web_node(net: &Group, dir: &Path, name: &str, extra: &[&str]) -> WebNode {
    let mut args = net.args();
    args.extend(net.dnssd_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let (proc, addr) = named_node(dir, name, &args);
    let web = web_addr(&proc);
    WebNode::new(proc, addr, web)
}

/// The chat through the HTTP API: a Python datagram shows up in the SSE feed and in
/// `GET /api/chat`; `POST /api/chat` reaches a Python receiver (and comes back in the feed);
/// bad messages are refused; a node with `--no-discovery` says it has no chat.
#[test]
fn group_chat_over_http_and_sse() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let n = group_web_node(&net, tmp.path(), "cam1", &[]);
    let chat = get(&n.web, "/api/chat").text();
    assert!(chat.contains(r#""enabled":true"#), "{chat}");
    assert!(
        chat.contains(&format!(r#""group":"{}:{}""#, net.addr, net.chat)),
        "{chat}"
    );

    let mut feed = TcpStream::connect(&n.web).unwrap();
    write!(feed, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    read_feed_until(
        &mut feed,
        &mut seen,
        "event: nodes",
        Duration::from_secs(10),
    );

    net.python_send("hello <b>bold</b> from python");
    read_feed_until(
        &mut feed,
        &mut seen,
        r#""lines":["127.0.0.1 :> hello <b>bold</b> from python"]"#,
        Duration::from_secs(5),
    );
    assert!(String::from_utf8_lossy(&seen).contains("event: chat"));
    assert!(
        get(&n.web, "/api/chat")
            .text()
            .contains("127.0.0.1 :> hello <b>bold</b> from python")
    );

    let py = net.python_receiver();
    let r = http_body(
        &n.web,
        "POST",
        "/api/chat",
        &[JSON],
        r#"{"text":"from the page, ünïcode"}"#.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    common::until_line(&py.lines, Duration::from_secs(5), |l| {
        l == "127.0.0.1 :> from the page, ünïcode"
    });
    read_feed_until(
        &mut feed,
        &mut seen,
        "127.0.0.1 :> from the page, ünïcode",
        Duration::from_secs(5),
    );

    // Refusals: too long for one datagram, empty, control characters, not JSON.
    let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(1401));
    let r = http_body(&n.web, "POST", "/api/chat", &[JSON], long.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    for bad in [
        r#"{"text":""}"#,
        r#"{"text":"a\u001b[2J"}"#,
        r#"{"txt":"a"}"#,
    ] {
        let r = http_body(&n.web, "POST", "/api/chat", &[JSON], bad.as_bytes());
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = http_body(&n.web, "POST", "/api/chat", &[], br#"{"text":"a"}"#);
    assert_eq!(r.status, 415);

    // Without discovery there is no chat, and the API says why.
    let off_dir = tmp.path().join("off");
    std::fs::create_dir_all(&off_dir).unwrap();
    let off = web_node(&off_dir, "cam2", &[]);
    let chat = get(&off.web, "/api/chat").text();
    assert!(
        chat.contains(r#""enabled":false"#) && chat.contains("--no-discovery"),
        "{chat}"
    );
    let r = http_body(&off.web, "POST", "/api/chat", &[JSON], br#"{"text":"a"}"#);
    assert_eq!(r.status, 404, "{}", r.text());
}

/// In a real browser: over plain HTTP a protected node's page offers no login form but a
/// link to the same page over HTTPS and the node's ID; over HTTPS (Chromium trusting exactly
/// the node's key, `--ignore-certificate-errors-spki-list`) the header shows the ID
/// `meshfs id --node` prints, the page shows the login form, a wrong password is
/// refused, the right one shows the listing (the cookie `Secure`); an offered file's page asks for that file's own
/// password, which unlocks it; the chat panel shows a Python message (its HTML
/// as text), and a message typed on the page reaches a Python receiver
/// (`crates/meshfs-web/e2e/login_chat.mjs`).
#[test]
fn browser_login_and_chat() {
    let Some((chromium, e2e)) = browser("browser_login_and_chat") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("notes.txt"), b"protected notes").unwrap();
    std::fs::write(share.join("secret.txt"), b"offered secret").unwrap();
    std::fs::write(tmp.path().join("pw"), "browser-pass-42\n").unwrap();
    std::fs::write(tmp.path().join("file-pw"), "file-pass-7\n").unwrap();
    let pw_file = tmp.path().join("pw");
    let offer = format!("secret.txt:{}", tmp.path().join("file-pw").display());
    let net = Group::new(BLOCK);
    let home = tmp.path().join("home");
    let mut args = net.args();
    args.extend(net.dnssd_args());
    args.extend(
        [
            "--password-file",
            pw_file.to_str().unwrap(),
            "--offer",
            &offer,
        ]
        .map(String::from),
    );
    let n = web_node_at_home(&home, &share, "camp", &args);
    let (node_id, pin) = (node_id_at_home(&home, false), node_id_at_home(&home, true));
    let spki = pin.strip_prefix("sha256//").unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-e2e-login-chat");
    let url = format!("https://{}/", n.web);
    let http_url = format!("http://{}/", n.web);
    let chat_port = net.chat.to_string();
    let py = python_dir();
    run_browser_script(
        &e2e,
        "login_chat.mjs",
        &chromium,
        &[
            ("WEB_URL", url.as_ref()),
            ("HTTP_URL", http_url.as_ref()),
            ("NODE_ID", node_id.as_ref()),
            ("SPKI", spki.as_ref()),
            ("NODE", "camp".as_ref()),
            ("PASSWORD", "browser-pass-42".as_ref()),
            ("FILE_PASSWORD", "file-pass-7".as_ref()),
            ("GROUP", net.addr.as_ref()),
            ("CHAT_PORT", chat_port.as_ref()),
            ("PY_DIR", py.as_os_str()),
            ("OUT_DIR", out.as_os_str()),
        ],
    );
    assert!(
        out.join("chat.png").is_file(),
        "no screenshot in {}",
        out.display()
    );
}
