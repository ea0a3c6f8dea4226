//! DNS-SD (`_meshfs._tcp`) end to end: real `meshfs` nodes advertise and browse with mdns-sd
//! beside their multicast group, and Python `zeroconf` (Debian `python3-zeroconf`), a
//! third-party implementation, sees them and is seen.
//!
//! On loopback, nodes of one test share a private mDNS port (`--dnssd-port`), so tests running
//! in parallel never see each other; the Python test uses 5353, the port zeroconf is fixed to,
//! and looks for names of its own. One test builds two hosts out of network namespaces (root
//! and iproute2), where nodes listen on every interface as they do on a real LAN.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::group::{Group, python_script};
use common::ports::free_udp_port;
use common::{
    Proc, bin, lines_of, no_line_for, node_addr, spawn_piped, spawn_with_stdin, until_line,
};

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 1;

/// Flags for a multicast group of its own on loopback: nobody else hears it, so whatever a
/// node learns there came through DNS-SD.
fn own_group() -> Vec<String> {
    Group::new(BLOCK).args()
}

/// The group flags `meshfs peers` takes too.
fn group_flags() -> Vec<String> {
    Group::new(BLOCK).lan_args()
}

/// A node printing discovery on stdout, its log (debug for the group) on `Node::log`.
struct Node {
    proc: Proc,
    log: mpsc::Receiver<String>,
    /// Its file server.
    addr: String,
}

fn node(dir: &Path, name: &str, extra: &[String]) -> Node {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut proc = spawn_piped(
        Command::new(bin())
            .args(["node", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--name", name, "--show-peers"])
            .args(extra)
            .env("RUST_LOG", "info,meshfs_group=debug")
            .stderr(Stdio::piped()),
    );
    let log = lines_of(proc.child.stderr.take().unwrap());
    let addr = node_addr(&proc.next_line(Duration::from_secs(20)));
    Node { proc, log, addr }
}

/// Wait for a line equal to `want`; returns the lines read before it.
fn wait_for(rx: &mpsc::Receiver<String>, want: &str, timeout: Duration) -> Vec<String> {
    let mut seen = until_line(rx, timeout, |l| l == want);
    seen.pop();
    seen
}

/// Wait for a log line that contains `want`.
fn wait_log(n: &Node, want: &str, timeout: Duration) {
    until_line(&n.log, timeout, |l| l.contains(want));
}

fn dnssd_port_args(port: u16) -> Vec<String> {
    vec!["--dnssd-port".into(), port.to_string()]
}

fn args(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

#[test]
fn nodes_on_different_groups_meet_through_dnssd_and_leave_with_a_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let mdns = dnssd_port_args(free_udp_port());
    // c and d advertise nothing (--no-dnssd; --no-discovery, even with a --peer to poll):
    // started first, they would otherwise be resolved before b.
    let no = vec!["--no-web".to_owned(), "--no-dnssd".to_owned()];
    let c = node(dir.path(), "c", &args(&[own_group(), mdns.clone(), no]));
    let no = ["--no-web", "--no-discovery", "--peer", &c.addr].map(String::from);
    let d = node(
        dir.path(),
        "d",
        &args(&[own_group(), mdns.clone(), no.to_vec()]),
    );
    let nw = vec!["--no-web".to_owned()];
    let a = node(
        dir.path(),
        "a",
        &args(&[own_group(), mdns.clone(), nw.clone()]),
    );
    let nw = vec!["--no-web".to_owned()];
    let b = node(dir.path(), "b", &args(&[own_group(), mdns.clone(), nw]));

    // Each learns the other, at its file server, although their groups differ.
    let before = wait_for(
        &a.proc.lines,
        &format!("peer up b {}", b.addr),
        Duration::from_secs(5),
    );
    assert!(
        !before
            .iter()
            .any(|l| l.starts_with("peer up c") || l.starts_with("peer up d")),
        "{before:?}"
    );
    wait_for(
        &b.proc.lines,
        &format!("peer up a {}", a.addr),
        Duration::from_secs(5),
    );

    // `meshfs peers` browses DNS-SD too (its group, fresh, has nobody).
    let out = Command::new(bin())
        .args(["peers", "--wait", "1500ms"])
        .args(group_flags())
        .args(&mdns)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "{listed}");
    assert!(listed.contains(&format!("a {} ", a.addr)), "{listed}");
    assert!(listed.contains(&format!("b {} ", b.addr)), "{listed}");

    // SIGTERM: b's goodbye removes it at once; DNS-SD is the only way a hears of it.
    b.proc.signal(libc::SIGTERM);
    wait_for(&a.proc.lines, "peer down b bye", Duration::from_secs(3));
    drop((c, d));

    // a's log names the service it advertises as it is, not as `Some("...")`.
    let on = until_line(&a.log, Duration::from_secs(5), |l| l.contains("DNS-SD on"));
    let on = on.last().unwrap();
    assert!(
        on.contains(r#"service="a._meshfs._tcp.local.""#) && !on.contains("Some("),
        "{on}"
    );
}

#[test]
fn a_node_known_only_through_dnssd_expires_when_it_dies_silently() {
    let dir = tempfile::tempdir().unwrap();
    let mdns = dnssd_port_args(free_udp_port());
    let quick = ["--no-web", "--peer-expiry", "3s"]
        .map(String::from)
        .to_vec();
    let a = node(
        dir.path(),
        "a",
        &args(&[own_group(), mdns.clone(), quick.clone()]),
    );
    let mut b = node(dir.path(), "b", &args(&[own_group(), mdns, quick]));
    wait_for(
        &a.proc.lines,
        &format!("peer up b {}", b.addr),
        Duration::from_secs(5),
    );
    // Alive, b is kept by answering `hello` (polled every second: a third of the expiry; no
    // multicast hello of b reaches a): more than an expiry passes without a `peer down`.
    no_line_for(&a.proc.lines, Duration::from_millis(4500), "peer down");
    // SIGKILL: no goodbye; a forgets b after 3 s without an answer (counted from its last
    // answer, up to a poll interval before the kill).
    b.proc.child.kill().unwrap();
    b.proc.child.wait().unwrap();
    let t = Instant::now();
    let before = wait_for(
        &a.proc.lines,
        "peer down b expired",
        Duration::from_secs(10),
    );
    assert!(before.is_empty(), "{before:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_node_heard_both_ways_is_one_peer() {
    let dir = tempfile::tempdir().unwrap();
    let group = own_group();
    let mdns = dnssd_port_args(free_udp_port());
    let nw = vec!["--no-web".to_owned()];
    let a = node(
        dir.path(),
        "a",
        &args(&[group.clone(), mdns.clone(), nw.clone()]),
    );
    let b = node(
        dir.path(),
        "b",
        &args(&[group.clone(), mdns.clone(), nw.clone()]),
    );
    wait_for(
        &a.proc.lines,
        &format!("peer up b {}", b.addr),
        Duration::from_secs(2),
    );
    // DNS-SD resolves b too (after its probing)...
    wait_log(&a, "DNS-SD resolved b", Duration::from_secs(5));
    // ...and nothing more is said: c, heard by multicast alone, marks the end of a's output
    // so far (one pipe, in order).
    let c_args = args(&[group, mdns, nw, vec!["--no-dnssd".into()]]);
    let c = node(dir.path(), "c", &c_args);
    let between = wait_for(
        &a.proc.lines,
        &format!("peer up c {}", c.addr),
        Duration::from_secs(2),
    );
    assert!(between.is_empty(), "{between:?}");

    // Its bye and its goodbye are one `peer down`.
    b.proc.signal(libc::SIGTERM);
    wait_for(&a.proc.lines, "peer down b bye", Duration::from_secs(2));
    wait_log(&a, "DNS-SD removed b", Duration::from_secs(5));
    c.proc.signal(libc::SIGTERM);
    let between = wait_for(&a.proc.lines, "peer down c bye", Duration::from_secs(2));
    assert!(between.is_empty(), "{between:?}");
}

/// `zeroconf_peer.py` under Debian's python3 (where python3-zeroconf is installed), killed
/// when dropped.
struct Zeroconf {
    proc: Proc,
    stdin: Option<ChildStdin>,
}

impl Zeroconf {
    fn start(args: &[&str]) -> Zeroconf {
        let script: PathBuf = python_script("zeroconf_peer.py");
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let (proc, stdin) = spawn_with_stdin(Command::new(python).arg(script).args(args));
        Zeroconf {
            proc,
            stdin: Some(stdin),
        }
    }

    /// Close stdin: the script unregisters (or stops browsing) and exits.
    fn finish(&mut self) {
        drop(self.stdin.take());
    }
}

#[test]
fn python_zeroconf_sees_our_nodes_and_we_see_its_services() {
    let dir = tempfile::tempdir().unwrap();
    // mDNS's own port, shared with whatever else runs on this host: names of our own.
    let tag = format!("{}{}", std::process::id(), free_udp_port());
    let ours = format!("zc{tag}");
    let theirs = format!("py{tag}");

    let mut browser = Zeroconf::start(&["browse"]);
    let web = ["--web", "127.0.0.1:0"].map(String::from).to_vec();
    let a = node(dir.path(), &ours, &args(&[own_group(), web]));
    let a_web = a.proc.next_line(Duration::from_secs(5));
    let a_web = a_web
        .strip_prefix("web http://127.0.0.1:")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{a_web:?}"))
        .to_owned();
    let a_port = a.addr.rsplit(':').next().unwrap();
    let instance = format!("{ours}._meshfs._tcp.local.");
    wait_for(
        &browser.proc.lines,
        &format!("added {instance} port={a_port} name={ours} web={a_web} v=1"),
        Duration::from_secs(10),
    );

    // zeroconf advertises `theirs` at the file server of a node that does no discovery of
    // its own: a learns it through zeroconf's records alone.
    let b_args = ["--no-web", "--no-discovery"].map(String::from).to_vec();
    let b = node(dir.path(), &theirs, &b_args);
    let b_port = b.addr.rsplit(':').next().unwrap();
    // Services that are not meshfs nodes as we know them are ignored: another protocol
    // version, a name no command could use, an oversized id.
    let long_id = format!("id={}", "x".repeat(100));
    let bad: Vec<Zeroconf> = [
        vec![format!("v2{tag}"), "v=2".to_owned()],
        vec![format!("sp{tag}"), "name=a b".to_owned()],
        vec![format!("id{tag}"), long_id],
    ]
    .into_iter()
    .map(|extra| {
        let mut z = Zeroconf::start(&["register", &extra[0], b_port, &extra[1]]);
        wait_for(&z.proc.lines, "registered", Duration::from_secs(10));
        z.finish();
        z
    })
    .collect();
    // Announced after them, the good one comes after them, and alone.
    let mut advert = Zeroconf::start(&["register", &theirs, b_port]);
    wait_for(&advert.proc.lines, "registered", Duration::from_secs(10));
    let before = wait_for(
        &a.proc.lines,
        &format!("peer up {theirs} {}", b.addr),
        Duration::from_secs(10),
    );
    // (Other nodes on this host's 5353 may show up: only ours are looked at.)
    for refused in [
        format!("v2{tag}"),
        format!("sp{tag}"),
        format!("id{tag}"),
        "a b".into(),
    ] {
        let up = format!("peer up {refused} ");
        assert!(!before.iter().any(|l| l.starts_with(&up)), "{before:?}");
    }
    drop(bad);
    advert.finish();
    wait_for(&advert.proc.lines, "unregistered", Duration::from_secs(10));
    wait_for(
        &a.proc.lines,
        &format!("peer down {theirs} bye"),
        Duration::from_secs(5),
    );

    // Our goodbye reaches zeroconf when the node stops.
    a.proc.signal(libc::SIGTERM);
    wait_for(
        &browser.proc.lines,
        &format!("removed {instance}"),
        Duration::from_secs(5),
    );
    browser.finish();
}

/// Two network namespaces joined by a veth pair (10.N.M.1 and .2): two hosts on one LAN,
/// each with mDNS's port 5353 to itself. Torn down when dropped.
struct Lan {
    ns: [String; 2],
    ips: [String; 2],
    /// The veth end that starts in this namespace (left behind if moving it failed).
    veth: String,
}

impl Lan {
    fn new() -> Lan {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let ns = [format!("mfs{tag}a"), format!("mfs{tag}b")];
        let subnet = format!("10.{}.{}", 20 + pid % 200, n);
        let ips = [format!("{subnet}.1"), format!("{subnet}.2")];
        let (va, vb) = (format!("v{tag}a"), format!("v{tag}b"));
        let lan = Lan {
            ns,
            ips,
            veth: va.clone(),
        };
        let [a, b] = &lan.ns;
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        for (ns, veth, addr) in [(a, &va, &lan.ips[0]), (b, &vb, &lan.ips[1])] {
            ip(&["link", "set", veth, "netns", ns]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", veth]);
            ip(&["-n", ns, "link", "set", veth, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// `meshfs ARGS` run on host `i` (0 or 1).
    fn command(&self, i: usize) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[i], bin()]);
        c
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?} (network namespaces need root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node on all interfaces of host `i`, with the default group and mDNS port.
fn lan_node(lan: &Lan, i: usize, dir: &Path, name: &str, extra: &[&str]) -> (Proc, u16) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let proc = spawn_piped(
        lan.command(i)
            .args(["node", dir.to_str().unwrap(), "--listen", "0.0.0.0:0"])
            .args(["--name", name, "--no-web", "--show-peers"])
            .args(extra)
            .stderr(Stdio::inherit()),
    );
    let ready = proc.next_line(Duration::from_secs(20));
    let port = ready
        .strip_prefix("meshfs node ")
        .and_then(|l| l.rsplit_once(":"))
        .map(|(_, p)| p.parse().unwrap())
        .unwrap_or_else(|| panic!("{ready:?}"));
    (proc, port)
}

#[test]
fn hosts_whose_network_has_no_route_for_our_group_meet_through_dnssd() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    // No default route in these namespaces: a cannot join our group ("discovery off"), as on
    // a network that drops it; mDNS goes out on the veth all the same. b names its interface
    // (--group-iface): its group and its DNS-SD use that one.
    let (a, a_port) = lan_node(&lan, 0, dir.path(), "a", &[]);
    let (b, b_port) = lan_node(&lan, 1, dir.path(), "b", &["--group-iface", &lan.ips[1]]);
    assert_eq!(a.next_line_but_id(Duration::from_secs(5)), "discovery off");
    let b_on = b.next_line_but_id(Duration::from_secs(5));
    assert!(b_on.ends_with(&format!(" via {}", lan.ips[1])), "{b_on}");
    // Each learns the other at its address on the LAN (never loopback, never 0.0.0.0).
    let up_b = format!("peer up b {}:{b_port}", lan.ips[1]);
    wait_for(&a.lines, &up_b, Duration::from_secs(5));
    let up_a = format!("peer up a {}:{a_port}", lan.ips[0]);
    wait_for(&b.lines, &up_a, Duration::from_secs(5));

    // `meshfs peers` on a's host finds b through DNS-SD alone.
    let out = lan
        .command(0)
        .args(["peers", "--wait", "1500ms"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains(&format!("b {}:{b_port} ", lan.ips[1])),
        "{listed}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("multicast group not asked"), "{err}");

    b.signal(libc::SIGTERM);
    wait_for(&a.lines, "peer down b bye", Duration::from_secs(5));
}
