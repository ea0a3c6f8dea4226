//! End-to-end tests of `meshfs cluster` (seed 002): a master on loopback spreading real clients
//! over three real worker nodes round-robin, skipping a killed worker and taking it back.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Proc;

/// A worker node whose share holds `who.txt` = its name.
fn worker(root: &Path, name: &str, listen: &str) -> (Proc, String) {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("who.txt"), name).unwrap();
    let (proc, line) = common::spawn(&[
        "node",
        dir.to_str().unwrap(),
        "--listen",
        listen,
        "--name",
        name,
    ]);
    assert!(line.starts_with("meshfs node "), "{line}");
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    (proc, addr)
}

fn master(workers: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "cluster",
        "--listen",
        "127.0.0.1:0",
        "--health-interval",
        "200ms",
    ];
    for w in workers {
        args.extend(["--worker", w]);
    }
    let (proc, line) = common::spawn(&args);
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(
        line,
        format!("meshfs cluster master on {addr}"),
        "said once, no name twice"
    );
    (proc, addr)
}

/// A raw protocol connection to the master.
struct Conn {
    read: BufReader<TcpStream>,
    write: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            read: BufReader::new(s.try_clone().unwrap()),
            write: s,
        }
    }
    fn ask(&mut self, req: &str) -> String {
        self.write.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut line = String::new();
        self.read.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }
}

/// What `meshfs cat meshfs://MASTER/who.txt` prints: the name of the worker it was sent to.
fn cat_who(master: &str) -> String {
    let out = Command::new(common::bin())
        .args(["cat", &format!("meshfs://{master}/who.txt")])
        .output()
        .unwrap();
    common::assert_success(&out);
    String::from_utf8(out.stdout).unwrap()
}

fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    common::wait_until(Duration::from_secs(15), what, cond);
}

#[test]
fn clients_are_spread_round_robin_and_a_dead_worker_is_skipped_until_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let (_w1, a1) = worker(tmp.path(), "w1", "127.0.0.1:0");
    let (w2, a2) = worker(tmp.path(), "w2", "127.0.0.1:0");
    let (_w3, a3) = worker(tmp.path(), "w3", "127.0.0.1:0");
    let w2_url = format!("meshfs://{a2}");
    let (_master, m) = master(&[&a1, &w2_url, &a3]);

    let mut conn = Conn::open(&m);
    let hello = conn.ask("hello");
    assert!(
        hello.starts_with("0 meshfs ") && hello.ends_with(" role=cluster"),
        "{hello}"
    );

    // Nine real clients, three per worker.
    let mut count: HashMap<String, usize> = HashMap::new();
    for _ in 0..9 {
        *count.entry(cat_who(&m)).or_default() += 1;
    }
    assert_eq!(count.len(), 3, "{count:?}");
    assert!(count.values().all(|&n| n == 3), "{count:?}");
    // `ls` and `get` follow the assignment too.
    let out = Command::new(common::bin())
        .args(["ls", &format!("meshfs://{m}/")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("who.txt"));
    let dest = tmp.path().join("got.txt");
    let out = Command::new(common::bin())
        .args([
            "get",
            &format!("meshfs://{m}/who.txt"),
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert!(fs::read_to_string(&dest).unwrap().starts_with('w'));

    // Kill w2: once the health check notices, assignments skip it.
    drop(w2);
    wait_until("w2 to be skipped", || {
        (0..3).all(|_| conn.ask("assign") != format!("0 {a2}"))
    });
    let got: Vec<String> = (0..6).map(|_| conn.ask("assign")).collect();
    assert_eq!(
        got.iter().filter(|r| **r == format!("0 {a1}")).count(),
        3,
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|r| **r == format!("0 {a3}")).count(),
        3,
        "{got:?}"
    );
    for _ in 0..4 {
        assert_ne!(cat_who(&m), "w2");
    }

    // Restart w2 on its old address: it is taken back.
    let (_w2, again) = worker(tmp.path(), "w2", &a2);
    assert_eq!(again, a2);
    wait_until("w2 to be back", || conn.ask("assign") == format!("0 {a2}"));
    let got: Vec<String> = (0..3).map(|_| conn.ask("assign")).collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut want = vec![format!("0 {a1}"), format!("0 {a2}"), format!("0 {a3}")];
    want.sort();
    assert_eq!(sorted, want, "{got:?}");
}

#[test]
fn master_without_healthy_workers_says_so_and_refuses_junk() {
    // A port where connections are refused.
    let refused = common::RefusedPort::bind();
    let dead = refused.addr.clone();
    let (_master, m) = master(&[&dead]);
    let mut conn = Conn::open(&m);
    assert_eq!(conn.ask("assign"), "9 no healthy worker");
    assert!(conn.ask("open who.txt").starts_with("5 "));
    assert!(conn.ask("assign please").starts_with("5 "));
    // Clients give a clear error.
    let out = Command::new(common::bin())
        .args(["cat", &format!("meshfs://{m}/who.txt")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no healthy worker"));
    // An overlong request line is refused and the connection closed; the master goes on.
    let mut long = Conn::open(&m);
    long.write.write_all(&vec![b'a'; 100_000]).unwrap();
    let mut line = String::new();
    long.read.read_line(&mut line).unwrap();
    assert!(line.starts_with("5 "), "{line}");
    assert_eq!(Conn::open(&m).ask("assign"), "9 no healthy worker");
}

#[test]
fn master_exits_zero_on_sigint() {
    let tmp = tempfile::tempdir().unwrap();
    let (_w1, a1) = worker(tmp.path(), "w1", "127.0.0.1:0");
    let (mut master, m) = master(&[&a1]);
    // A client connected and idle does not hold the master up.
    let mut conn = Conn::open(&m);
    assert_eq!(conn.ask("assign"), format!("0 {a1}"));
    master.signal(libc::SIGINT);
    let status = master.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}
