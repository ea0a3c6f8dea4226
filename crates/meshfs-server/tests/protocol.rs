//! The file-server protocol byte for byte, over real sockets, against an in-process server
//! bound to an ephemeral loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use meshfs_server::Config;

mod support;

use support::{Options, TestServer};

fn start(root: &Path, config: Config) -> TestServer {
    support::start(
        root,
        Options {
            config,
            ..Options::default()
        },
    )
}

fn default_server(root: &Path) -> TestServer {
    start(
        root,
        Config {
            name: "cam1".into(),
            ..Config::default()
        },
    )
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Send `request` bytes, then read exactly `expected.len()` bytes and compare.
fn exchange(s: &mut TcpStream, request: &[u8], expected: &[u8]) {
    s.write_all(request).unwrap();
    let mut got = vec![0u8; expected.len()];
    s.read_exact(&mut got).unwrap_or_else(|e| {
        panic!(
            "reading reply to {:?}: {e}",
            String::from_utf8_lossy(request)
        )
    });
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "reply to {:?}",
        String::from_utf8_lossy(request)
    );
}

/// Read until the peer closes; returns everything.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("hello.txt"), b"hello world").unwrap();
    std::fs::write(root.join("with space.txt"), b"spaced").unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::create_dir(root.join("clips")).unwrap();
    std::fs::write(root.join("clips/a.mp4"), vec![7u8; 1000]).unwrap();
    dir
}

/// The answer to a request that needs the share's password (code 8, protocols.md §1).
const LOCKED: &[u8] = b"8 password required: this share is protected (meshfs clients: --password-file FILE or MESHFS_CLIENT_PASSWORD; the text protocol: auth PASSWORD)\n";

#[test]
fn seed_commands_byte_for_byte() {
    let dir = fixture();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);
    exchange(&mut s, b"read 5\n", b"4 no file is open\n");
    exchange(&mut s, b"close\n", b"4 no file is open\n");
    exchange(&mut s, b"open hello.txt\n", b"0 OK\n");
    exchange(&mut s, b"open hello.txt\n", b"3 a file is already open\n");
    exchange(&mut s, b"read 5\n", b"0 5\nhello");
    exchange(&mut s, b"READ 100\r\n", b"0 6\n world");
    exchange(&mut s, b"read 100\n", b"0 0\n");
    exchange(&mut s, b"read 100\n", b"0 0\n");
    exchange(&mut s, b"seek 6\n", b"0 OK\n");
    exchange(&mut s, b"read 3\n", b"0 3\nwor");
    exchange(&mut s, b"close\n", b"0 OK\n");
    exchange(&mut s, b"open nope\n", b"1 no such file or directory\n");
    exchange(&mut s, b"open clips\n", b"7 not a regular file\n");
    exchange(
        &mut s,
        b"list\n",
        b"0 OK\nclips/\nempty/\nhello.txt\nwith space.txt\n\n\n",
    );
    exchange(&mut s, b"list empty\n", b"0 OK\n\n\n");
    exchange(&mut s, b"list hello.txt\n", b"7 not a directory\n");
    exchange(&mut s, b"list nope\n", b"1 no such file or directory\n");
    let mtime = std::fs::metadata(dir.path().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let expected = format!(
        "0 OK\nsize: 11\nmodified: {}\nmode: -rw-r--r--\ntype: file\n\n",
        humantime_rfc3339(mtime)
    );
    std::fs::set_permissions(
        dir.path().join("hello.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    exchange(&mut s, b"stat hello.txt\n", expected.as_bytes());
    exchange(&mut s, b"stat\n", b"5 missing argument\n");
    exchange(&mut s, b"bogus\n", b"5 unknown command\n");
    exchange(&mut s, b"\n", b"5 empty request\n");
    exchange(&mut s, b"read abc\n", b"5 malformed number\n");
    exchange(&mut s, b"auth x\n", b"5 this node has no password\n");
    exchange(&mut s, b"quit\n", b"0 bye\n");
    assert!(read_to_close(&mut s).is_empty());
}

fn humantime_rfc3339(t: std::time::SystemTime) -> String {
    // Independent of the server's formatter: compute the civil date by hand.
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn extensions_byte_for_byte() {
    let dir = fixture();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);
    let hello = format!("0 meshfs {} node=cam1 proto=1\n", meshfs_core::VERSION);
    exchange(&mut s, b"hello\n", hello.as_bytes());
    exchange(&mut s, b"pread 6 100 hello.txt\n", b"0 5\nworld");
    exchange(&mut s, b"pread 100 5 hello.txt\n", b"0 0\n");
    exchange(&mut s, b"pread 0 6 with space.txt\n", b"0 6\nspaced");
    exchange(
        &mut s,
        b"pread 0 6\n",
        b"5 usage: pread <offset> <size> <path>\n",
    );
    let hash = blake3::hash(b"hello world").to_hex().to_string();
    exchange(
        &mut s,
        b"hash hello.txt\n",
        format!("0 {hash}\n").as_bytes(),
    );
    exchange(&mut s, b"hash clips\n", b"7 not a regular file\n");
    exchange(&mut s, b"seek 3\n", b"4 no file is open\n");
    // ls: `<type> <size> <mtime-ns> <mode-octal> <name>`, one empty line.
    std::fs::set_permissions(
        dir.path().join("clips/a.mp4"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let md = std::fs::metadata(dir.path().join("clips/a.mp4")).unwrap();
    let ns = std::os::unix::fs::MetadataExt::mtime(&md) * 1_000_000_000
        + std::os::unix::fs::MetadataExt::mtime_nsec(&md);
    exchange(
        &mut s,
        b"ls clips\n",
        format!("0 OK\nf 1000 {ns} 640 a.mp4\n\n").as_bytes(),
    );
    exchange(&mut s, b"ls empty\n", b"0 OK\n\n");
    s.write_all(b"help\n").unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n\n") {
        s.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    let text = String::from_utf8(reply).unwrap();
    assert!(text.starts_with("0 OK\n"));
    for cmd in ["open", "read", "pread", "subscribe", "quit"] {
        assert!(text.contains(&format!("\n{cmd} ")), "help lacks {cmd}");
    }
}

#[test]
fn pipelined_hundred_requests_in_one_write() {
    let dir = fixture();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        if i % 2 == 0 {
            request.extend_from_slice(b"pread 0 5 hello.txt\n");
            expected.extend_from_slice(b"0 5\nhello");
        } else {
            request.extend_from_slice(b"open nope\n");
            expected.extend_from_slice(b"1 no such file or directory\n");
        }
    }
    exchange(&mut s, &request, &expected);
}

#[test]
fn line_too_long_closes_connection_and_server_survives() {
    let dir = fixture();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);
    let mut line = vec![b'a'; 8193];
    line.push(b'\n');
    s.write_all(&line).unwrap();
    assert_eq!(read_to_close(&mut s), b"5 line too long\n");
    // Exactly 8192 bytes is fine (an unknown command, but answered).
    let mut s = connect(&srv.addr);
    let mut line = vec![b'a'; 8192];
    line.push(b'\n');
    exchange(&mut s, &line, b"5 unknown command\n");
    // Also without any newline at all.
    let mut s = connect(&srv.addr);
    s.write_all(&vec![b'x'; 20_000]).unwrap();
    assert_eq!(read_to_close(&mut s), b"5 line too long\n");
    exchange(&mut connect(&srv.addr), b"stat hello.txt\n", b"0 OK\n");
}

#[test]
fn idle_connections_are_closed() {
    let dir = fixture();
    let srv = start(
        dir.path(),
        Config {
            idle_timeout: Duration::from_millis(300),
            ..Config::default()
        },
    );
    let mut s = connect(&srv.addr);
    // A slowloris that never finishes a line is cut too.
    s.write_all(b"sta").unwrap();
    let started = std::time::Instant::now();
    assert!(read_to_close(&mut s).is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));

    // So is one that trickles a byte every 50 ms, each well within the timeout: a partial
    // line does not reset the clock, the whole line must arrive in time.
    let mut s = connect(&srv.addr);
    let mut w = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            if w.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = std::time::Instant::now();
    assert!(read_to_close(&mut s).is_empty());
    let cut_after = started.elapsed();
    trickle.join().unwrap();
    assert!(
        cut_after < Duration::from_secs(2),
        "a trickling client was cut only after {cut_after:?}"
    );
}

/// A client that asks for 16 MiB and never reads holds its connection only until a write has
/// waited the timeout: then it is closed, and its slot serves the next client.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let dir = fixture();
    std::fs::write(dir.path().join("big.bin"), vec![7u8; 16 << 20]).unwrap();
    let srv = start(
        dir.path(),
        Config {
            idle_timeout: Duration::from_millis(500),
            max_connections: 1,
            ..Config::default()
        },
    );
    let mut stalled = connect(&srv.addr);
    stalled
        .write_all(format!("pread 0 {} big.bin\n", 16 << 20).as_bytes())
        .unwrap();
    // The slot is taken while the node writes to the stalled client: newcomers are refused
    // until its write times out, then served.
    let started = std::time::Instant::now();
    loop {
        let mut next = connect(&srv.addr);
        next.write_all(b"pread 0 5 hello.txt\n").unwrap();
        let got = read_to_close_or_five(&mut next);
        if got == b"0 5\nhello" {
            break;
        }
        assert_eq!(got, b"9 too many connections\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stalled client still holds its slot after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stalled);
}

/// Read until the peer closes or 5 bytes of payload after a `0 5` status came.
fn read_to_close_or_five(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"hello") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Hostile names: every one is refused (1 or 2) and never returns bytes from outside.
#[test]
fn hostile_paths_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("share");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(outer.path().join("secret.txt"), b"TOPSECRET").unwrap();
    std::fs::write(root.join("ok.txt"), b"fine").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("/", root.join("rootlink")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), root.join("secretlink")).unwrap();
    std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
    let srv = default_server(&root);
    // A symlink created after the server started is judged when used.
    std::os::unix::fs::symlink(outer.path(), root.join("late")).unwrap();

    let long = "a".repeat(300);
    let deep = "d/".repeat(2100);
    let cases: Vec<String> = vec![
        "..".into(),
        "../secret.txt".into(),
        "a/../../secret.txt".into(),
        "sub/../../secret.txt".into(),
        "/../secret.txt".into(),
        "./../secret.txt".into(),
        "sub/./../..//secret.txt".into(),
        "/etc/passwd".into(),
        "//etc//passwd".into(),
        "%2e%2e/secret.txt".into(),
        "..%2fsecret.txt".into(),
        "ok.txt\0../secret.txt".into(),
        "\0".into(),
        "rootlink/etc/passwd".into(),
        "rootlink".into(),
        "secretlink".into(),
        "sub/up/secret.txt".into(),
        "late/secret.txt".into(),
        "late".into(),
        long.clone(),
        format!("{long}/{long}"),
        deep,
        "...".into(),
        "ok.txt/..".into(),
        "\u{2025}/secret.txt".into(),
        "sub\\..\\..\\secret.txt".into(),
    ];
    assert!(cases.len() >= 20);
    let mut s = connect(&srv.addr);
    for case in &cases {
        for cmd in ["open", "stat", "hash", "ls", "list"] {
            let request = format!("{cmd} {case}\n");
            if request.len() > 8192 {
                continue;
            }
            s.write_all(request.as_bytes()).unwrap();
            let line = read_line(&mut s);
            assert!(
                line.starts_with("1 ") || line.starts_with("2 ") || line.starts_with("7 "),
                "{cmd} {case:?} answered {line:?}"
            );
            if cmd == "open" {
                // Nothing was opened: read must fail.
                s.write_all(b"read 100\n").unwrap();
                assert_eq!(read_line(&mut s), "4 no file is open");
            }
        }
        let request = format!("pread 0 100 {case}\n");
        if request.len() <= 8192 {
            s.write_all(request.as_bytes()).unwrap();
            let line = read_line(&mut s);
            assert!(
                line.starts_with("1 ") || line.starts_with("2 "),
                "pread {case:?} answered {line:?}"
            );
        }
    }
    // The classic traversals get code 2 specifically.
    for case in [
        "../secret.txt",
        "a/../../x",
        "secretlink",
        "rootlink/etc/passwd",
        "late",
    ] {
        s.write_all(format!("open {case}\n").as_bytes()).unwrap();
        assert!(read_line(&mut s).starts_with("2 "), "{case}");
    }
    s.write_all(b"open ok\0.txt\n").unwrap();
    assert!(read_line(&mut s).starts_with("2 "));
    // And the legitimate file is still served on the same connection.
    exchange(&mut s, b"pread 0 4 ok.txt\n", b"0 4\nfine");
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).unwrap();
        if byte[0] == b'\n' {
            return String::from_utf8(line).unwrap();
        }
        line.push(byte[0]);
    }
}

#[test]
fn two_hundred_concurrent_clients_read_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..200u32 {
        let data: Vec<u8> = (0..(50_000 + i * 997))
            .map(|j| (j.wrapping_mul(31).wrapping_add(i)) as u8)
            .collect();
        std::fs::write(dir.path().join(format!("f{i}")), data).unwrap();
    }
    let srv = default_server(dir.path());
    let threads: Vec<_> = (0..200u32)
        .map(|i| {
            let addr = srv.addr.clone();
            let root = dir.path().to_owned();
            std::thread::spawn(move || {
                let mut s = connect(&addr);
                s.write_all(format!("open f{i}\n").as_bytes()).unwrap();
                assert_eq!(read_line(&mut s), "0 OK");
                let mut got = Vec::new();
                loop {
                    s.write_all(b"read 7000\n").unwrap();
                    let header = read_line(&mut s);
                    let n: usize = header.strip_prefix("0 ").unwrap().parse().unwrap();
                    if n == 0 {
                        break;
                    }
                    let start = got.len();
                    got.resize(start + n, 0);
                    s.read_exact(&mut got[start..]).unwrap();
                }
                assert_eq!(got, std::fs::read(root.join(format!("f{i}"))).unwrap());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn client_vanishing_mid_read_leaves_server_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0xabu8; 32 << 20];
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("small"), b"ok").unwrap();
    let srv = default_server(dir.path());
    for _ in 0..20 {
        let mut s = connect(&srv.addr);
        s.write_all(b"open big\nread 16777216\nread 16777216\n")
            .unwrap();
        let mut some = [0u8; 1000];
        s.read_exact(&mut some).unwrap();
        drop(s); // vanish with megabytes still to send
    }
    let mut s = connect(&srv.addr);
    exchange(&mut s, b"pread 0 2 small\n", b"0 2\nok");
}

#[test]
fn read_is_capped_at_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![1u8; 17 << 20]).unwrap();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);
    s.write_all(b"open big\nread 99999999999\n").unwrap();
    assert_eq!(read_line(&mut s), "0 OK");
    assert_eq!(read_line(&mut s), format!("0 {}", 16 << 20));
}

#[test]
fn over_the_connection_limit_is_refused_with_a_message() {
    let dir = fixture();
    let srv = start(
        dir.path(),
        Config {
            max_connections: 1,
            ..Config::default()
        },
    );
    let mut first = connect(&srv.addr);
    exchange(&mut first, b"pread 0 5 hello.txt\n", b"0 5\nhello");
    let mut second = connect(&srv.addr);
    assert_eq!(read_to_close(&mut second), b"9 too many connections\n");
    exchange(&mut first, b"pread 0 5 hello.txt\n", b"0 5\nhello");
}

fn start_with_access(root: &Path, access: meshfs_core::access::Access) -> TestServer {
    support::start(
        root,
        Options {
            access: Some(access),
            ..Options::default()
        },
    )
}

#[test]
fn protected_file_needs_auth() {
    let dir = fixture();
    let access = meshfs_core::access::Access::open();
    access.protect_file("clips/a.mp4", "s3cret").unwrap();
    std::os::unix::fs::symlink("clips/a.mp4", dir.path().join("alias.mp4")).unwrap();
    let srv = start_with_access(dir.path(), access);
    let mut s = connect(&srv.addr);
    exchange(&mut s, b"open clips/a.mp4\n", LOCKED);
    exchange(&mut s, b"pread 0 1 /clips//a.mp4\n", LOCKED);
    exchange(&mut s, b"hash clips/a.mp4\n", LOCKED);
    // Another name for the same file is no way around its password.
    exchange(&mut s, b"pread 0 1 alias.mp4\n", LOCKED);
    // Browsing and other files stay open.
    exchange(&mut s, b"list clips\n", b"0 OK\na.mp4\n\n\n");
    exchange(&mut s, b"pread 0 5 hello.txt\n", b"0 5\nhello");
    exchange(&mut s, b"auth wrong\n", b"6 authentication failed\n");
    exchange(&mut s, b"auth s3cret\n", b"0 OK\n");
    exchange(&mut s, b"pread 0 1 clips/a.mp4\n", b"0 1\n\x07");
    // Proven passwords belong to the connection, not the client's address.
    let mut other = connect(&srv.addr);
    exchange(&mut other, b"open clips/a.mp4\n", LOCKED);
}

/// Five wrong passwords close the connection, and reconnecting does not start a new count:
/// the node's one login throttle refuses that address (even the right password) for a while,
/// saying why; another address is not affected.
#[test]
fn five_failed_auth_attempts_close_the_connection_and_lock_the_address_out() {
    let dir = fixture();
    let access = meshfs_core::access::Access::open();
    access.set_share_password("whole share");
    let srv = start_with_access(dir.path(), access);
    let mut s = connect(&srv.addr);
    exchange(&mut s, b"list\n", LOCKED);
    exchange(&mut s, b"stat hello.txt\n", LOCKED);
    exchange(&mut s, b"subscribe\n", LOCKED);
    for _ in 0..4 {
        exchange(&mut s, b"auth nope\n", b"6 authentication failed\n");
    }
    s.write_all(b"auth nope\n").unwrap();
    assert_eq!(read_to_close(&mut s), b"6 authentication failed\n");
    let mut s = connect(&srv.addr);
    s.write_all(b"auth whole share\n").unwrap();
    let refused = String::from_utf8(read_to_close(&mut s)).unwrap();
    assert!(
        refused.starts_with("6 too many wrong passwords from 127.0.0.1: logins refused for "),
        "{refused}"
    );
    let mut s = connect_from("127.0.0.2", &srv.addr);
    exchange(&mut s, b"auth whole share\n", b"0 OK\n");
    exchange(&mut s, b"pread 0 5 hello.txt\n", b"0 5\nhello");
}

/// A connection from another loopback address: another client, as the node counts them.
fn connect_from(from: &str, addr: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let s = socket.connect(addr.parse().unwrap()).await.unwrap();
        s.into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `blocks SIZE PATH`: 32 bytes per 1 MiB block, each the BLAKE3 chaining value of that block
/// at its offset, merging into the file's `hash`; a prefix of a growing file; bad sizes.
#[test]
fn blocks_are_the_chaining_values_of_the_files_blake3_tree() {
    use blake3::hazmat::HasherExt;
    use meshfs_core::blocks::{BLOCK_LEN, BlockHashes};

    let dir = fixture();
    let len = 3 * BLOCK_LEN as usize + 12_345;
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("clip.mp4"), &bytes).unwrap();
    let srv = default_server(dir.path());
    let mut s = connect(&srv.addr);

    let ask = |s: &mut TcpStream, size: usize| -> Vec<u8> {
        s.write_all(format!("blocks {size} clip.mp4\n").as_bytes())
            .unwrap();
        let header = read_line(s);
        let n: usize = header.strip_prefix("0 ").expect(&header).parse().unwrap();
        let mut list = vec![0; n];
        s.read_exact(&mut list).unwrap();
        list
    };
    let list = ask(&mut s, len);
    assert_eq!(list.len(), 4 * 32);
    for (k, block) in bytes.chunks(BLOCK_LEN as usize).enumerate() {
        let cv = blake3::Hasher::new()
            .set_input_offset(k as u64 * BLOCK_LEN)
            .update(block)
            .finalize_non_root();
        assert_eq!(&list[k * 32..(k + 1) * 32], &cv, "block {k}");
    }
    let root = BlockHashes::from_bytes(len as u64, list.clone())
        .unwrap()
        .root();
    assert_eq!(root, blake3::hash(&bytes));
    // Asked again (now from the node's cache): the same list.
    assert_eq!(ask(&mut s, len), list);
    // The first bytes only, as of a recording still growing; a file of one block: its hash.
    let prefix = 2 * BLOCK_LEN as usize + 1;
    let head = BlockHashes::from_bytes(prefix as u64, ask(&mut s, prefix)).unwrap();
    assert_eq!(head.root(), blake3::hash(&bytes[..prefix]));
    assert_eq!(ask(&mut s, 10), blake3::hash(&bytes[..10]).as_bytes());
    assert_eq!(ask(&mut s, 0), blake3::hash(b"").as_bytes());

    exchange(
        &mut s,
        format!("blocks {} clip.mp4\n", len + 1).as_bytes(),
        format!("5 the file holds fewer than {} bytes\n", len + 1).as_bytes(),
    );
    exchange(
        &mut s,
        b"blocks 1000000000000000 clip.mp4\n",
        b"5 a file of 1000000000000000 bytes has more than 524288 blocks: too large to check by block\n",
    );
    exchange(&mut s, b"blocks 5 clips\n", b"7 not a regular file\n");
    exchange(&mut s, b"blocks 5\n", b"5 usage: blocks <size> <path>\n");
}
