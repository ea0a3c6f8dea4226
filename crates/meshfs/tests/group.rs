//! LAN group (seed 004) end to end: real `meshfs` nodes discover each other by multicast on
//! loopback (interface 127.0.0.1, TTL 1), chat with each other and with plain Python sockets,
//! offer files, and protect them with passwords.
//!
//! Every test has its own group address and ports, so tests running in parallel (and nodes of
//! other test files on the default group) never see each other.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::group::{Group, python_script};
use common::{Proc, bin, named_node, no_line_for, spawn_piped, spawn_with_stdin};

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 100;

/// A node in `net`, printing discovery on stdout; returns it and its file-server address.
fn node(dir: &Path, name: &str, net: &Group, extra: &[&str]) -> (Proc, String) {
    std::fs::create_dir_all(dir).unwrap();
    // These tests prove passwords with `auth` over raw text connections, as the seeds' clients
    // do: the node must accept it in clear.
    let mut args: Vec<String> = ["--no-web", "--show-peers", "--allow-plaintext-auth"]
        .map(String::from)
        .to_vec();
    args.extend(net.args());
    args.extend(net.dnssd_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let (proc, addr) = named_node(dir, name, &args);
    // Discovery says when its sockets are ready, before anything it hears.
    let started = proc.next_line_but_id(Duration::from_secs(5));
    assert!(started.starts_with("discovery "), "{started:?}");
    (proc, addr)
}

/// Read stdout lines of `p` until one satisfies `want`; panics after `timeout`. Returns it.
fn wait_line(
    p: &Proc,
    what: &str,
    timeout: Duration,
    mut want: impl FnMut(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match p.lines.recv_timeout(left) {
            Ok(line) if want(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line {what:?} within {timeout:?}"),
        }
    }
}

/// Wait for every line of `wanted` (in any order).
fn wait_all(p: &Proc, wanted: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut missing: Vec<&String> = wanted.iter().collect();
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match p.lines.recv_timeout(left) {
            Ok(line) => missing.retain(|w| **w != line),
            Err(_) => panic!("still missing {missing:?} after {timeout:?}"),
        }
    }
}

fn meshfs<S: AsRef<str>>(args: &[S]) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = Command::new(bin()).args(&args).output().unwrap();
    assert!(out.status.success(), "meshfs {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn three_nodes_discover_each_other_and_a_late_node_learns_everyone_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let names = ["a", "b", "c"];
    let started = Instant::now();
    let nodes: Vec<(Proc, String)> = names
        .iter()
        .map(|n| node(&dir.path().join(n), n, &net, &[]))
        .collect();
    for (i, (p, _)) in nodes.iter().enumerate() {
        let others: Vec<String> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, (_, addr))| format!("peer up {} {addr}", names[j]))
            .collect();
        wait_all(p, &others, Duration::from_secs(2));
    }
    let all_known = started.elapsed();
    eprintln!("three nodes knew each other {all_known:?} after the first start");

    // Hellos repeat every 30 s: a node learning all three within 2 s learned them from the
    // unicast answers to its own first hello.
    let (d, _) = node(&dir.path().join("d"), "d", &net, &[]);
    let t = Instant::now();
    let expect: Vec<String> = nodes
        .iter()
        .zip(names)
        .map(|((_, addr), n)| format!("peer up {n} {addr}"))
        .collect();
    wait_all(&d, &expect, Duration::from_secs(2));
    eprintln!("late node learned everyone in {:?}", t.elapsed());

    // `meshfs peers` asks the group and lists every node.
    let listed = meshfs(
        &[
            vec!["peers".into()],
            net.lan_args(),
            net.dnssd_args().into(),
        ]
        .concat(),
    );
    for ((_, addr), n) in nodes.iter().zip(names) {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("{n} {addr} "))),
            "{n} missing from {listed:?}"
        );
    }
    assert!(listed.lines().any(|l| l.starts_with("d ")), "{listed:?}");
}

#[test]
fn bye_and_silence_remove_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let expiry = ["--peer-expiry", "2s"];
    let (a, _) = node(&dir.path().join("a"), "a", &net, &expiry);
    let (b, b_addr) = node(&dir.path().join("b"), "b", &net, &expiry);
    let (mut c, c_addr) = node(&dir.path().join("c"), "c", &net, &expiry);
    wait_all(
        &a,
        &[format!("peer up b {b_addr}"), format!("peer up c {c_addr}")],
        Duration::from_secs(2),
    );

    // Alive nodes re-announce within the expiry: nobody goes down while all run.
    no_line_for(&a.lines, Duration::from_secs(3), "peer down");

    // SIGTERM: b says bye, a forgets it at once (not by expiry).
    b.signal(libc::SIGTERM);
    let t = Instant::now();
    let line = wait_line(&a, "peer down b", Duration::from_secs(2), |l| {
        l.starts_with("peer down b")
    });
    assert_eq!(line, "peer down b bye");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // SIGKILL: c cannot say bye; a forgets it after the 2 s of silence.
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let t = Instant::now();
    let line = wait_line(&a, "peer down c", Duration::from_secs(6), |l| {
        l.starts_with("peer down c")
    });
    assert_eq!(line, "peer down c expired");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn malformed_oversized_and_unknown_datagrams_are_ignored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let (a, a_addr) = node(&dir.path().join("a"), "a", &net, &[]);
    let s = net.sender();
    let dest = net.announce_dest();
    let bad: [(&[u8], &str); 5] = [
        (b"not json at all", "malformed"),
        (b"{\"v\":1,\"kind\":\"hello\"", "malformed"),
        (&[b'x'; 1500], "oversized"),
        (br#"{"v":1,"kind":"party","node":"z","id":"1"}"#, "unknown"),
        (b"\xff\xfe\x00binary", "malformed"),
    ];
    for (i, (datagram, why)) in bad.iter().enumerate() {
        s.send_to(datagram, &dest).unwrap();
        let line = wait_line(&a, why, Duration::from_secs(2), |l| {
            l.starts_with("ignored")
        });
        assert_eq!(
            line,
            format!("ignored {why} from 127.0.0.1 total {}", i + 1)
        );
    }

    // Still healthy: a good hello is learned and answered by unicast at once...
    s.send_to(
        br#"{"v":1,"kind":"hello","node":"ghost","id":"g1","port":9}"#,
        &dest,
    )
    .unwrap();
    wait_line(&a, "peer up ghost", Duration::from_secs(2), |l| {
        l == "peer up ghost 127.0.0.1:9"
    });
    let mut buf = [0u8; 2048];
    let (n, _) = s
        .recv_from(&mut buf)
        .expect("unicast answer to a new hello");
    let answer: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(answer["v"], 1);
    assert_eq!(answer["kind"], "hello");
    assert_eq!(answer["node"], "a");
    assert_eq!(
        answer["port"].as_u64().unwrap().to_string(),
        a_addr.rsplit(':').next().unwrap()
    );
    // ... and its file server answers.
    assert_a_serves(&a_addr);
}

/// A `meshfs chat` process with piped stdin.
struct Chat {
    proc: Proc,
    stdin: ChildStdin,
}

fn chat(net: &Group) -> Chat {
    chat_in(net, Command::new(bin()), &[])
}

/// `meshfs chat` from `cmd` (which may carry a directory and environment).
fn chat_in(net: &Group, mut cmd: Command, extra: &[&str]) -> Chat {
    let (proc, stdin) = spawn_with_stdin(
        cmd.arg("chat")
            .args(net.args())
            .args(net.dnssd_args())
            .args(extra),
    );
    let first = proc.next_line(Duration::from_secs(20));
    assert!(first.starts_with("joined the group chat "), "{first:?}");
    Chat { proc, stdin }
}

/// A script of `tests/python/`, its stdout lines on `lines`.
fn python(script: &str, args: &[&str]) -> Proc {
    spawn_piped(
        Command::new("python3")
            .arg(python_script(script))
            .args(args)
            .stderr(Stdio::inherit()),
    )
}

#[test]
fn chat_reaches_every_member_and_plain_python_sockets() {
    let net = Group::new(BLOCK);
    let mut one = chat(&net);
    let two = chat(&net);
    let py = net.python_receiver();

    // Ours reach the other member and the plain Python receiver.
    writeln!(one.stdin, "hello from one, ünïcode").unwrap();
    one.stdin.flush().unwrap();
    let want = "127.0.0.1 :> hello from one, ünïcode";
    wait_line(&two.proc, want, Duration::from_secs(2), |l| l == want);
    wait_line(&py, want, Duration::from_secs(2), |l| l == want);

    // A datagram of a plain Python socket is shown by every member.
    net.python_send("coucou !");
    let want = "127.0.0.1 :> coucou !";
    wait_line(&one.proc, want, Duration::from_secs(2), |l| l == want);
    wait_line(&two.proc, want, Duration::from_secs(2), |l| l == want);

    // A hostile datagram cannot drive the terminal.
    let s = net.sender();
    s.send_to(b"\x1b[2Jboom\n", format!("{}:{}", net.addr, net.chat))
        .unwrap();
    let want = "127.0.0.1 :> \u{fffd}[2Jboom";
    wait_line(&two.proc, want, Duration::from_secs(2), |l| l == want);

    // `/quit` ends the chat cleanly.
    writeln!(one.stdin, "/quit").unwrap();
    one.stdin.flush().unwrap();
    assert!(one.proc.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn static_peers_work_without_multicast() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let (mut b, b_addr) = node(&dir.path().join("b"), "b", &net, &["--no-discovery"]);
    // A peer that accepts connections and never answers, and one that speaks nonsense, must
    // not hold up the others.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_addr = stalled.local_addr().unwrap().to_string();
    let liar = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let liar_addr = liar.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in liar.incoming() {
            let Ok(mut conn) = conn else { break };
            let _ = conn.write_all(b"0 meshfs 1 node=a\x1bb proto=1\n");
        }
    });
    let (a, _) = node(
        &dir.path().join("a"),
        "a",
        &net,
        &[
            "--no-discovery",
            "--peer",
            &stalled_addr,
            "--peer",
            &liar_addr,
            "--peer",
            &b_addr,
            "--peer-expiry",
            "2s",
        ],
    );
    // The only peer that shows up is b: the stalled one times out, the liar's name is refused.
    let line = wait_line(&a, "peer up b", Duration::from_secs(2), |l| {
        l.starts_with("peer ")
    });
    assert_eq!(line, format!("peer up b {b_addr}"));
    // With discovery off, a multicast hello is not even heard.
    let s = net.sender();
    s.send_to(
        br#"{"v":1,"kind":"hello","node":"ghost","id":"g1","port":9}"#,
        net.announce_dest(),
    )
    .unwrap();
    // `meshfs peers --peer` asks nodes directly when multicast finds nobody.
    let out = Command::new(bin())
        .arg("peers")
        .args(net.lan_args())
        .args(["--wait", "200ms"])
        .args(net.dnssd_args())
        .args(["--peer", &b_addr, "--peer", &stalled_addr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.starts_with(&format!("b {b_addr} 0s ")) && listed.lines().count() == 1,
        "{listed}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{stalled_addr}: no answer")), "{err}");

    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let line = wait_line(&a, "peer down b", Duration::from_secs(6), |l| {
        l.starts_with("peer ")
    });
    assert_eq!(line, "peer down b expired");
}

/// `pread 0 100 PATH` on `conn`: the status line, and the bytes on success.
fn pread(conn: &mut BufReader<TcpStream>, path: &str) -> (String, Vec<u8>) {
    conn.get_mut()
        .write_all(format!("pread 0 100 {path}\n").as_bytes())
        .unwrap();
    let status = request_line(conn);
    let mut data = Vec::new();
    if let Some(n) = status.strip_prefix("0 ") {
        data.resize(n.parse().unwrap(), 0);
        conn.read_exact(&mut data).unwrap();
    }
    (status, data)
}

fn request_line(conn: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

fn send(conn: &mut BufReader<TcpStream>, request: &str) -> String {
    conn.get_mut()
        .write_all(format!("{request}\n").as_bytes())
        .unwrap();
    request_line(conn)
}

/// Node `a`'s file server still greets a new client, whatever datagrams it was sent.
fn assert_a_serves(addr: &str) {
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    let line = send(&mut conn, "hello");
    assert!(
        line.starts_with("0 meshfs ") && line.contains("node=a"),
        "{line:?}"
    );
}

/// The share of the offer tests, `DIR/a`: `open.txt`, `clips/secret.txt` (offered with the
/// password file `DIR/pw` holding `password`) and `later.txt`. Returns the share and the
/// `--offer` value of the secret file.
fn offer_share(dir: &Path, password: &str) -> (PathBuf, String) {
    let share = dir.join("a");
    std::fs::create_dir_all(share.join("clips")).unwrap();
    std::fs::write(share.join("open.txt"), "hello").unwrap();
    std::fs::write(share.join("clips/secret.txt"), "top secret").unwrap();
    std::fs::write(share.join("later.txt"), "offered later").unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, password).unwrap();
    let secret_offer = format!("clips/secret.txt:{}", pw.display());
    (share, secret_offer)
}

#[test]
fn offers_reach_every_index_and_protected_files_need_their_password() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let (share, secret_offer) = offer_share(dir.path(), "s3cret\n");

    let (b, _) = node(&dir.path().join("b"), "b", &net, &[]);
    let (a, a_addr) = node(
        &share,
        "a",
        &net,
        &["--offer", "open.txt", "--offer", &secret_offer],
    );
    // c starts after the offers were made: it learns them from a's unicast answer.
    let (c, _) = node(&dir.path().join("c"), "c", &net, &[]);
    let offers = [
        format!("offer a meshfs://{a_addr}/open.txt 5 open"),
        format!("offer a meshfs://{a_addr}/clips/secret.txt 10 protected"),
    ];
    wait_all(&b, &offers, Duration::from_secs(2));
    wait_all(&c, &offers, Duration::from_secs(2));

    // `meshfs offers` asks the group.
    let listed = meshfs(&[vec!["offers".into()], net.lan_args()].concat());
    assert!(
        listed.contains(&format!("a meshfs://{a_addr}/open.txt 5 open")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "a meshfs://{a_addr}/clips/secret.txt 10 protected"
        )),
        "{listed}"
    );

    // `meshfs offer` announces a file of a node on its behalf.
    let out = meshfs(&[
        "offer",
        "later.txt",
        "--node",
        &a_addr,
        "--group-addr",
        &net.addr,
        "--group-port",
        &net.port.to_string(),
    ]);
    let later = format!("a meshfs://{a_addr}/later.txt 13 open");
    assert_eq!(out.trim(), later);
    wait_all(&b, &[format!("offer {later}")], Duration::from_secs(2));
    wait_all(&c, &[format!("offer {later}")], Duration::from_secs(2));
    drop(a);

    // The protected file, through the file server: refused without auth and with a wrong
    // password, served with the right one; the open file needs nothing.
    let (_a2, a_addr) = node(&share, "a", &net, &["--offer", &secret_offer]);
    let mut conn = BufReader::new(TcpStream::connect(&a_addr).unwrap());
    assert_eq!(
        pread(&mut conn, "open.txt"),
        ("0 5".into(), b"hello".to_vec())
    );
    let (status, _) = pread(&mut conn, "clips/secret.txt");
    assert!(status.starts_with("8 "), "{status}");
    assert!(send(&mut conn, "open /clips//secret.txt").starts_with("8 "));
    assert!(send(&mut conn, "auth wrong").starts_with("6 "));
    let (status, _) = pread(&mut conn, "clips/secret.txt");
    assert!(status.starts_with("8 "), "{status}");
    assert_eq!(send(&mut conn, "auth s3cret"), "0 OK");
    assert_eq!(
        pread(&mut conn, "clips/secret.txt"),
        ("0 10".into(), b"top secret".to_vec())
    );
    // Another connection has to prove it again.
    let mut other = BufReader::new(TcpStream::connect(&a_addr).unwrap());
    assert!(pread(&mut other, "clips/secret.txt").0.starts_with("8 "));
}

#[test]
fn share_password_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let share = dir.path().join("s");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("f.txt"), "data").unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file\n").unwrap();

    let check = |addr: &str, password: &str| {
        let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
        assert!(send(&mut conn, "stat f.txt").starts_with("8 "));
        assert!(pread(&mut conn, "f.txt").0.starts_with("8 "));
        assert_eq!(send(&mut conn, &format!("auth {password}")), "0 OK");
        assert_eq!(pread(&mut conn, "f.txt"), ("0 4".into(), b"data".to_vec()));
    };
    let (_a, addr) = node(
        &share,
        "a",
        &net,
        &["--no-discovery", "--password-file", pw.to_str().unwrap()],
    );
    check(&addr, "from-file");

    // MESHFS_PASSWORD: never a flag value that `ps` would show.
    let mut cmd = Command::new(bin());
    cmd.args([
        "node",
        share.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "e",
    ])
    .args(["--no-web", "--no-discovery", "--allow-plaintext-auth"])
    .env("MESHFS_PASSWORD", "from-env")
    .stderr(Stdio::inherit());
    let e = spawn_piped(&mut cmd);
    let line = e.next_line(Duration::from_secs(20));
    check(line.rsplit(' ').next().unwrap(), "from-env");
}

#[test]
fn chat_commands_list_offers_get_files_and_offer() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let (share, secret_offer) = offer_share(dir.path(), "s3cret");
    let (_a, a_addr) = node(
        &share,
        "a",
        &net,
        &["--offer", "open.txt", "--offer", &secret_offer],
    );
    let dl = dir.path().join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let mut cmd = Command::new(bin());
    cmd.current_dir(&dl)
        .env("MESHFS_CLIENT_PASSWORD", "s3cret")
        .env_remove("MESHFS_PASSWORD");
    let mut c = chat_in(&net, cmd, &["--node", &a_addr]);
    let say = |c: &mut Chat, line: &str| {
        writeln!(c.stdin, "{line}").unwrap();
        c.stdin.flush().unwrap();
    };
    let t = Duration::from_secs(5);

    say(&mut c, "/offers");
    wait_all(
        &c.proc,
        &[
            format!("a meshfs://{a_addr}/open.txt 5 open"),
            format!("a meshfs://{a_addr}/clips/secret.txt 10 protected"),
        ],
        t,
    );
    say(&mut c, "/get a:open.txt");
    wait_line(&c.proc, "got open", t, |l| {
        l == "got a:open.txt -> open.txt (5 bytes)"
    });
    assert_eq!(std::fs::read(dl.join("open.txt")).unwrap(), b"hello");
    say(&mut c, "/get a:clips/secret.txt");
    wait_line(&c.proc, "got secret", t, |l| {
        l == "got a:clips/secret.txt -> secret.txt (10 bytes)"
    });
    assert_eq!(std::fs::read(dl.join("secret.txt")).unwrap(), b"top secret");
    assert!(!dl.join("secret.txt.part").exists());

    // An overlong line is refused whole; the chat goes on.
    say(&mut c, &"x".repeat(5000));
    say(&mut c, "/peers");
    wait_line(&c.proc, "peer a", t, |l| l == format!("a {a_addr}"));

    // `/offer` announces a file of the local node (`--node`).
    say(&mut c, "/offer later.txt");
    wait_line(&c.proc, "offered", t, |l| {
        l == format!("offered a meshfs://{a_addr}/later.txt 13 open")
    });
    say(&mut c, "/offers");
    wait_line(&c.proc, "later in the index", t, |l| {
        l == format!("a meshfs://{a_addr}/later.txt 13 open")
    });
}

#[test]
fn bad_offers_and_password_files_stop_the_node_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("s");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(dir.path().join("outside.txt"), "x").unwrap();
    let empty_pw = dir.path().join("empty");
    std::fs::write(&empty_pw, "\n").unwrap();
    let offer_empty = format!("sub:{}", empty_pw.display());
    let cases: [(&[&str], &str); 5] = [
        (&["--offer", "missing.txt"], "cannot offer missing.txt"),
        (
            &["--offer", "../outside.txt"],
            "cannot offer ../outside.txt",
        ),
        (&["--offer", "sub"], "not a regular file"),
        (&["--offer", &offer_empty], "empty password"),
        (
            &["--password-file", "/nonexistent/pw"],
            "cannot read the password file /nonexistent/pw",
        ),
    ];
    for (extra, why) in cases {
        let out = Command::new(bin())
            .args(["node", share.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--no-web", "--no-discovery", "--allow-plaintext-auth"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{extra:?}: {err}");
    }
}

#[test]
fn discovered_nodes_show_up_in_the_web_ui() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let web_dir = dir.path().join("w");
    std::fs::create_dir_all(&web_dir).unwrap();
    let args = [
        vec!["--show-peers".into()],
        net.args(),
        net.dnssd_args().into(),
    ]
    .concat();
    let (w, _) = named_node(&web_dir, "w", &args);
    let web = w.next_line(Duration::from_secs(5));
    let web = web
        .strip_prefix("web http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{web:?}"))
        .to_owned();
    assert!(
        w.next_line_but_id(Duration::from_secs(5))
            .starts_with("discovery on ")
    );

    let (_a, a_addr) = node(&dir.path().join("a"), "a", &net, &[]);
    wait_line(&w, "peer up a", Duration::from_secs(2), |l| {
        l == format!("peer up a {a_addr}")
    });
    let mut http = TcpStream::connect(&web).unwrap();
    http.write_all(b"GET /api/nodes HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    assert!(body.contains(&format!("\"{a_addr}\"")), "{body}");
}

#[test]
fn passwords_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("s");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("f.txt"), "data").unwrap();
    let (pw, pw2) = (dir.path().join("pw"), dir.path().join("pw2"));
    std::fs::write(&pw, "hunter2-share").unwrap();
    std::fs::write(&pw2, "hunter2-file").unwrap();
    let log = dir.path().join("log");
    let mut cmd = Command::new(bin());
    cmd.args([
        "node",
        share.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-web",
    ])
    .args(["--no-discovery", "--allow-plaintext-auth"])
    .args(["--password-file", pw.to_str().unwrap()])
    .args(["--offer", &format!("f.txt:{}", pw2.display())])
    .env("RUST_LOG", "trace")
    .stderr(std::fs::File::create(&log).unwrap());
    let mut p = spawn_piped(&mut cmd);
    let addr = p.next_line(Duration::from_secs(20));
    let addr = addr.rsplit(' ').next().unwrap();
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    assert!(send(&mut conn, "auth hunter2-wrong").starts_with("6 "));
    assert_eq!(send(&mut conn, "auth hunter2-share"), "0 OK");
    assert_eq!(send(&mut conn, "auth hunter2-file"), "0 OK");
    assert_eq!(pread(&mut conn, "f.txt"), ("0 4".into(), b"data".to_vec()));
    drop(conn);
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("node ready"), "the log was captured: {log}");
    assert!(
        !log.contains("hunter2"),
        "a password reached the log:\n{log}"
    );
}

#[test]
fn password_prompt_on_a_terminal_does_not_echo() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("s");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("f.txt"), "data").unwrap();
    let p = python(
        "tty_run.py",
        &[
            "typed-secret",
            bin(),
            "node",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--no-web",
            "--no-discovery",
            "--allow-plaintext-auth",
            "--password",
        ],
    );
    let mut before = Vec::new();
    let ready = wait_line(&p, "readiness", Duration::from_secs(20), |l| {
        before.push(l.to_owned());
        l.contains("meshfs node ")
    });
    assert!(
        before.iter().any(|l| l.contains("share password: ")),
        "{before:?}"
    );
    assert!(
        !before.iter().any(|l| l.contains("typed-secret")),
        "echoed: {before:?}"
    );
    let addr = ready.trim_end().rsplit(' ').next().unwrap();
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    assert!(pread(&mut conn, "f.txt").0.starts_with("8 "));
    assert_eq!(send(&mut conn, "auth typed-secret"), "0 OK");
    assert_eq!(pread(&mut conn, "f.txt"), ("0 4".into(), b"data".to_vec()));
}

#[test]
fn a_flood_of_hellos_gets_a_bounded_number_of_answers() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let (a, a_addr) = node(&dir.path().join("a"), "a", &net, &[]);
    let s = net.sender();
    // In batches, each waited for, so no datagram is lost to a full receive buffer.
    for batch in 0..6 {
        for i in batch * 50..(batch + 1) * 50 {
            let hello = format!(r#"{{"v":1,"kind":"hello","node":"n{i}","id":"x","port":9}}"#);
            s.send_to(hello.as_bytes(), net.announce_dest()).unwrap();
        }
        // Every hello is heard...
        let last = format!("peer up n{} 127.0.0.1:9", batch * 50 + 49);
        wait_line(&a, &last, Duration::from_secs(5), |l| l == last);
    }
    // ... but at most one second's budget of them is answered (64, plus one more window if
    // the flood straddled a second).
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answers = 0;
    let mut buf = [0u8; 2048];
    while s.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    assert!((64..=128).contains(&answers), "{answers} answers");
    // Still healthy.
    assert_a_serves(&a_addr);
}

#[test]
fn chat_on_a_terminal_redraws_its_prompt_around_incoming_messages() {
    let net = Group::new(BLOCK);
    let mut args = vec!["unused-password", bin(), "chat"];
    let net_args = [net.args(), net.dnssd_args().into()].concat();
    args.extend(net_args.iter().map(String::as_str));
    let p = python("tty_run.py", &args);
    wait_line(&p, "joined", Duration::from_secs(20), |l| {
        l.starts_with("joined the group chat ")
    });
    wait_line(&p, "help", Duration::from_secs(5), |l| {
        l.starts_with("commands: /get")
    });
    net.python_send("while you type");
    // The prompt is erased (`\r`, erase line), the message shown, the prompt drawn again.
    let line = wait_line(&p, "message", Duration::from_secs(5), |l| {
        l.contains("127.0.0.1 :> while you type")
    });
    assert!(
        line.starts_with("> \r\x1b[K127.0.0.1 :> while you type"),
        "{line:?}"
    );
}

/// One `--peer` list for a whole site names every node, this one too: a node that polls
/// itself is not its own twin (it warned that another node ran with its name and key).
#[test]
fn a_node_given_its_own_address_as_a_peer_is_not_its_own_twin() {
    let dir = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = free.local_addr().unwrap().to_string();
    drop(free);
    let share = dir.path().to_str().unwrap();
    let mut args = vec![
        "node", share, "--listen", &listen, "--name", "self", "--no-web",
    ];
    args.extend(["--peer", &listen]);
    let (net_args, dnssd) = (net.args(), net.dnssd_args());
    args.extend(net_args.iter().chain(&dnssd).map(String::as_str));
    let (_node, _addr, log) = common::logged(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log
            .recv_timeout(left)
            .expect("the node never said its --peer is itself");
        assert!(
            !line.contains("another node runs with this node's name"),
            "{line}"
        );
        if line.contains("static peer is this node") {
            break;
        }
    }
}
