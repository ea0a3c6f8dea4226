//! Running a fleet (issue 21): `/metrics` read by the real Prometheus parser and scraped by a
//! real Prometheus, the file server's `status` request and `meshfs status`, and Home
//! Assistant discovery seen through a real mosquitto.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Proc, named_node, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A node with only the peers a test names, and its web address.
fn web_node(dir: &Path, name: &str, extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["--no-discovery"];
    args.extend_from_slice(extra);
    let (proc, addr) = named_node(dir, name, &args);
    let line = proc.next_line(WAIT);
    let web = line
        .strip_prefix("web http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected web line {line:?}"))
        .to_owned();
    (proc, addr, web)
}

/// `GET target` over HTTP/1.0 (no chunking): the status code and the body.
fn http_get(addr: &str, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

/// One sample of an exposition, by its full name with labels as written by meshfs.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn metrics_of(web: &str) -> String {
    let (code, body) = http_get(web, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// Ask a file server `line`, and read until its reply has `until` in it.
fn ask(addr: &str, line: &str, until: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    writeln!(s, "{line}").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(until) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A child process (a broker, Prometheus) killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The exposition parses with `prometheus_client` (a real parser, not ours) and its numbers
/// follow what the node did: bytes served by each door, the share's files, a recording
/// closed, the build info.
#[test]
fn metrics_parse_with_the_prometheus_client_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("a.bin"), vec![7u8; 1000]).unwrap();
    std::fs::write(share.join("sub/b.bin"), vec![8u8; 234]).unwrap();
    let state = dir.path().join("state");
    let (node, addr, web) = web_node(
        &share,
        "cam1",
        &["--state", state.to_str().unwrap(), "--ftp", "127.0.0.1:0"],
    );
    let ftp = node.next_line(WAIT);
    let ftp = ftp
        .strip_prefix("ftp ")
        .expect("the FTP door's line")
        .to_owned();

    // The first walk of the share is made at start.
    wait_until(WAIT, "the share to be counted", || {
        sample(&metrics_of(&web), "meshfs_share_files") == Some(2.0)
    });
    assert_eq!(
        sample(&metrics_of(&web), "meshfs_share_bytes"),
        Some(1234.0)
    );

    // 1000 bytes through the file server, 1000 through the web door.
    ask(&addr, "pread 0 1000 a.bin", "0 1000\n");
    let (code, body) = http_get(&web, "/files/cam1/a.bin");
    assert_eq!((code, body.len()), (200, 1000));
    // And 1000 through FTP (anonymous, read-only), fetched by curl.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", &format!("ftp://{ftp}/a.bin")])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(out.stdout.len(), 1000);
    // A browser's keep-alive connection stays open: counted, beside the scrape's own.
    let mut kept = TcpStream::connect(&web).unwrap();
    kept.set_read_timeout(Some(WAIT)).unwrap();
    write!(kept, "GET /metrics HTTP/1.1\r\nHost: {web}\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let open = r#"meshfs_connections_open{door="web"}"#;
    assert_eq!(sample(&metrics_of(&web), open), Some(2.0));
    drop(kept);
    wait_until(WAIT, "the closed connection uncounted", || {
        sample(&metrics_of(&web), open) == Some(1.0)
    });
    // A recording finishes: written, then closed.
    std::fs::write(share.join("clip.mp4"), b"frames").unwrap();
    wait_until(WAIT, "the recording's events", || {
        sample(&metrics_of(&web), "meshfs_last_recording_timestamp_seconds").is_some()
    });

    // Debian's interpreter, which python3-prometheus-client installs into.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .arg(common::group::python_script("parse_metrics.py"))
        .arg(format!("http://{web}/metrics"))
        .output()
        .expect("python3");
    // A refusal by prometheus_client shows as its traceback.
    common::assert_success(&out);
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &parsed["samples"];
    let f = &parsed["families"];
    assert!(
        parsed["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{parsed}"
    );
    let id = common::run(
        &["id", "--node", "--state", state.to_str().unwrap()],
        dir.path(),
    );
    let id = String::from_utf8(id.stdout).unwrap().trim().to_owned();
    let info = format!(
        "meshfs_build_info{{node=cam1,node_id={id},version={}}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(s[&info], 1.0, "{info} not in {s}");
    assert_eq!(f["meshfs_connections"], "counter");
    assert_eq!(f["meshfs_share_bytes"], "gauge");
    assert_eq!(f["meshfs_uptime_seconds"], "gauge");
    assert!(
        s["meshfs_sent_bytes_total{door=file_server}"]
            .as_f64()
            .unwrap()
            >= 1000.0,
        "{s}"
    );
    assert!(
        s["meshfs_sent_bytes_total{door=web}"].as_f64().unwrap() >= 1000.0,
        "{s}"
    );
    assert!(
        s["meshfs_requests_total{door=file_server}"]
            .as_f64()
            .unwrap()
            >= 1.0,
        "{s}"
    );
    assert!(
        s["meshfs_requests_total{door=web}"].as_f64().unwrap() >= 2.0,
        "{s}"
    );
    assert_eq!(s["meshfs_sent_bytes_total{door=ftp}"], 1000.0, "{s}");
    assert!(
        s["meshfs_requests_total{door=ftp}"].as_f64().unwrap() >= 1.0,
        "{s}"
    );
    assert!(
        s["meshfs_connections_total{door=file_server}"]
            .as_f64()
            .unwrap()
            >= 1.0,
        "{s}"
    );
    assert!(s["meshfs_events_total"].as_f64().unwrap() >= 2.0, "{s}");
    assert!(
        s["meshfs_disk_available_bytes"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    let recorded = s["meshfs_last_recording_timestamp_seconds"]
        .as_f64()
        .unwrap();
    assert!((now_secs() - recorded).abs() < 60.0, "{recorded}");
    // No link configured, so none reported; no file name anywhere.
    assert!(s.get("meshfs_mqtt_connected").is_none(), "{s}");
    let text = metrics_of(&web);
    assert!(
        !text.contains("a.bin") && !text.contains("clip.mp4"),
        "{text}"
    );
    drop(node);
}

/// A real Prometheus scrapes two nodes: both targets up, each with its own build info.
#[test]
fn prometheus_scrapes_two_nodes() {
    if !have("prometheus") {
        eprintln!("SKIP: prometheus is not installed (.ci/install-deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut webs = Vec::new();
    let mut nodes = Vec::new();
    for name in ["cam1", "cam2"] {
        let share = dir.path().join(name);
        std::fs::create_dir_all(&share).unwrap();
        let state = dir.path().join(format!("{name}.state"));
        let (node, _, web) = web_node(&share, name, &["--state", state.to_str().unwrap()]);
        nodes.push(node);
        webs.push(format!("\"{web}\""));
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: meshfs\n    \
             static_configs:\n      - targets: [{}]\n",
            webs.join(", ")
        ),
    )
    .unwrap();
    let port = common::ports::free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prometheus = KillOnDrop(prometheus);
    wait_until(Duration::from_secs(60), "prometheus to be ready", || {
        TcpStream::connect(&listen).is_ok() && http_get(&listen, "/-/ready").0 == 200
    });
    // Both targets scraped and up, each saying who it is.
    let query = |q: &str, label: &str| -> Vec<String> {
        let (code, body) = http_get(&listen, &format!("/api/v1/query?query={q}"));
        if code != 200 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let mut found: Vec<String> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["value"][1] == "1")
            .map(|r| r["metric"][label].as_str().unwrap_or_default().to_owned())
            .collect();
        found.sort();
        found
    };
    wait_until(Duration::from_secs(60), "both nodes scraped", || {
        query("up", "instance").len() == 2 && query("meshfs_build_info", "node").len() == 2
    });
    assert_eq!(query("meshfs_build_info", "node"), ["cam1", "cam2"]);
    drop(nodes);
}

/// `meshfs status` run with its own config folder (its pins stay in the test), `--plaintext`
/// when asked.
fn status_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.env("XDG_CONFIG_HOME", home).arg("status").args(args);
    cmd
}

fn status_json(home: &Path, args: &[&str]) -> Vec<Value> {
    let out = status_cmd(home, args).output().unwrap();
    common::assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

/// The file server's `status` request, and `meshfs status` over it: the table, `--json`,
/// `--watch`, and the warnings for a quiet node and for two nodes under one name.
#[test]
fn status_request_and_the_status_command() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let share = |name: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let one = share("one");
    std::fs::write(one.join("a.bin"), vec![1u8; 4096]).unwrap();
    let (_cam1, addr1, _) = web_node(&one, "cam1", &[] as &[&str]);
    let (_cam2, addr2, _) = web_node(&share("two"), "cam2", &[] as &[&str]);

    // The request itself, as any client sends it.
    wait_until(WAIT, "the share to be measured", || {
        String::from_utf8_lossy(&ask(&addr1, "status", "\n\n")).contains("share-files: 1\n")
    });
    let reply = String::from_utf8(ask(&addr1, "status", "\n\n")).unwrap();
    assert!(reply.starts_with("0 OK\nname: cam1\nversion: "), "{reply}");
    for key in [
        "share-bytes: 4096\n",
        "disk-available: ",
        "uptime: ",
        "connections: ",
    ] {
        assert!(reply.contains(key), "{key} missing from {reply}");
    }
    assert!(
        !reply.contains("last-closed"),
        "nothing recorded yet: {reply}"
    );

    // A recording on cam1, then the table.
    std::fs::write(one.join("clip.mp4"), b"frames").unwrap();
    wait_until(WAIT, "the recording to be seen", || {
        String::from_utf8_lossy(&ask(&addr1, "status", "\n\n")).contains("last-closed: ")
    });
    let nodes = ["--no-discovery", "--node", &addr1, "--node", &addr2];
    let out = status_cmd(&home, &nodes).output().unwrap();
    common::assert_success(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("LAST-REC"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("cam1 ") && lines[1].contains(&addr1),
        "{table}"
    );
    // No warning but the disk's: that one speaks of the machine the test runs on, which may
    // really be nearly full (the rule itself has its unit test in cmd/status.rs).
    let row = lines[1];
    let disk_only = row.contains("  disk nearly full (") && !row.contains("; ");
    assert!(row.contains("s ago"), "{table}");
    assert!(row.ends_with(" -") || disk_only, "{table}");
    assert!(
        lines[2].starts_with("cam2 ") && lines[2].contains(&addr2),
        "{table}"
    );

    // JSON: the same numbers; a quiet node warns.
    let mut args = nodes.to_vec();
    args.extend(["--json", "--quiet-after", "0s"]);
    let rows = status_json(&home, &args);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["name"], "cam1");
    assert_eq!(rows[0]["status"]["version"], env!("CARGO_PKG_VERSION"));
    // The walk that counts the new file comes later (at most every 2 s): at least the first.
    assert!(
        rows[0]["status"]["share_files"].as_u64().unwrap() >= 1,
        "{rows:?}"
    );
    assert!(rows[0]["status"]["last_closed"].as_u64().unwrap() > 0);
    let warnings = rows[0]["warnings"].to_string();
    assert!(warnings.contains("no events for"), "{warnings}");

    // A second node named cam1: both say so (in clear: the two keys differ under one name).
    let (_twin, addr3, _) = web_node(&share("three"), "cam1", &[] as &[&str]);
    let rows = status_json(
        &home,
        &[
            "--plaintext",
            "--no-discovery",
            "--json",
            "--node",
            &addr1,
            "--node",
            &addr3,
        ],
    );
    for row in &rows {
        assert!(
            row["warnings"]
                .to_string()
                .contains("name conflict: 2 nodes are named cam1"),
            "{rows:?}"
        );
    }
    // An address nobody answers on is a row with a reason, not a failure.
    let refused = common::RefusedPort::bind();
    let rows = status_json(
        &home,
        &["--no-discovery", "--json", "--node", &refused.addr],
    );
    assert!(
        rows[0]["warnings"].to_string().contains("unreachable"),
        "{rows:?}"
    );

    // --watch: a new JSON array per round.
    let watch = common::spawn_piped(
        status_cmd(
            &home,
            &[
                "--no-discovery",
                "--json",
                "--watch",
                "100ms",
                "--node",
                &addr2,
            ],
        )
        .stderr(std::process::Stdio::inherit()),
    );
    for _ in 0..3 {
        let line = watch.next_line(WAIT);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v[0]["name"], "cam2", "{line}");
    }
}

/// This file's block of group addresses (see [`common::group::Group::new`]).
const BLOCK: u8 = 240;

/// Issue 21, item 4: a peer speaking a file-server protocol this meshfs cannot talk to (a
/// Python stand-in for a future meshfs, announcing `proto` 99 three times and answering
/// `hello`/`status`) is logged once by a node that hears it, naming it, and `meshfs status`
/// shows its version and protocol in the warning column.
#[test]
fn a_peer_of_another_protocol_is_logged_once_and_shown_by_status() {
    let net = common::group::Group::new(BLOCK);
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let mut node = common::spawn_piped(
        Command::new(common::bin())
            .args(["node", share.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--name", "cam1", "--no-web"])
            .args(net.args())
            .args(net.dnssd_args())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped()),
    );
    let log = common::lines_of(node.child.stderr.take().unwrap());
    node.next_line(WAIT);

    let future = common::spawn_piped(
        Command::new("python3")
            .arg(common::group::python_script("future_node.py"))
            .args([&net.addr, &net.port.to_string(), "127.0.0.1", "cam9"])
            .stderr(std::process::Stdio::inherit()),
    );
    let ready = future.next_line(WAIT);
    assert!(ready.starts_with("ready "), "{ready}");
    let warned = |l: &str| l.contains("cannot talk to") && l.contains("cam9");
    common::until_line(&log, WAIT, warned);

    // `meshfs status` asks the group (the stand-in answers the question again) and both nodes.
    let mut args = net.lan_args();
    args.extend(net.dnssd_args());
    args.extend(["--json".into(), "--wait".into(), "2s".into()]);
    let out = Command::new(common::bin())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .args(["--plaintext", "status"])
        .args(&args)
        .output()
        .unwrap();
    common::assert_success(&out);
    let rows: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let future_row = rows
        .iter()
        .find(|r| r["name"] == "cam9")
        .unwrap_or_else(|| panic!("cam9 not listed: {rows:?}"));
    let warnings = future_row["warnings"].to_string();
    assert!(warnings.contains("protocol 99"), "{warnings}");
    assert!(warnings.contains("version 9.9.9"), "{warnings}");
    let own = rows
        .iter()
        .find(|r| r["name"] == "cam1")
        .expect("cam1 listed");
    assert!(!own["warnings"].to_string().contains("protocol"), "{own}");

    // Every announcement of the stand-in has reached the node by now (three at its start, one
    // answer to `status`'s question): the node said it once.
    drop(future);
    node.signal(libc::SIGTERM);
    node.wait_exit(WAIT);
    let repeats = log.iter().filter(|l| warned(l)).count();
    assert_eq!(
        repeats, 0,
        "the incompatible peer was logged more than once"
    );
}
