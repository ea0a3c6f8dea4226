//! The web UI's test helpers (web.rs, webui.rs): a node with its web address, raw HTTP/1.1
//! requests (sent byte for byte, plain or TLS), and the browser scripts of
//! `crates/meshfs-web/e2e/` run in headless Chromium.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Proc, named_node};

/// A node serving `dir` as `name`, with its file-server and web addresses.
pub struct WebNode {
    pub proc: Proc,
    pub addr: String,
    /// `host:port`, spoken to in plain HTTP.
    pub web: String,
    /// The same port as `https://host:port`: [`http`] speaks TLS to it.
    pub https: String,
}

impl WebNode {
    pub fn new(proc: Proc, addr: String, web: String) -> WebNode {
        let https = format!("https://{web}");
        WebNode {
            proc,
            addr,
            web,
            https,
        }
    }
}

pub fn web_node(dir: &Path, name: &str, extra: &[&str]) -> WebNode {
    // Only the nodes a test names: no multicast discovery of other tests' nodes.
    let mut args = vec!["--no-discovery"];
    args.extend_from_slice(extra);
    let (proc, addr) = named_node(dir, name, &args);
    let web = web_addr(&proc);
    assert!(
        web.starts_with("127.0.0.1:"),
        "web UI should follow --listen's host: {web}"
    );
    WebNode::new(proc, addr, web)
}

/// The web UI's address, from the line a node prints after its readiness line
/// (`web http://ADDR/`).
pub fn web_addr(proc: &Proc) -> String {
    let second = proc.next_line(Duration::from_secs(10));
    second
        .strip_prefix("web http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected web line {second:?}"))
        .to_owned()
}

/// One HTTP/1.1 response, read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one raw request (the target is sent byte for byte, so hostile paths arrive as
/// written) and read the whole response. `addr` is `host:port` (plain HTTP) or
/// `https://host:port` (TLS, accepting the node's key whatever it is: the tests of the key
/// itself pin it with curl).
pub fn http(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    http_body(addr, method, target, headers, b"")
}

/// [`http`] with a request body (and its `Content-Length`).
pub fn http_body(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let (addr, mut s) = connect(addr);
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer closing without close_notify, after the whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("read the response: {e}"),
    }
    parse_response(&raw)
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection to the web UI at `addr` (see [`http`]), and its `host:port`.
pub fn connect(addr: &str) -> (&str, Box<dyn ReadWrite>) {
    let (host, tls) = match addr.strip_prefix("https://") {
        Some(host) => (host, true),
        None => (addr, false),
    };
    let tcp = TcpStream::connect(host).expect("connect to the web UI");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if !tls {
        return (host, Box::new(tcp));
    }
    let config = meshfs_core::tls::client_config(None, None).unwrap();
    let conn = rustls::ClientConnection::new(config, meshfs_core::tls::server_name(host)).unwrap();
    (host, Box::new(rustls::StreamOwned::new(conn, tcp)))
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

pub fn get(addr: &str, target: &str) -> Resp {
    http(addr, "GET", target, &[])
}

/// Chromium and the e2e folder for a browser test, or `None` (saying so) when chromium is
/// absent.
pub fn browser(test: &str) -> Option<(String, PathBuf)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!(
            "SKIPPED {test}: {chromium} is absent (install Debian's chromium: .ci/install-deps)"
        );
        return None;
    }
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../meshfs-web/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run `npm ci` in {} (.ci/install-deps does)",
        e2e.display()
    );
    Some((chromium, e2e))
}

/// Run one browser script of `e2e` with `env`; panics if it fails or takes over 120 s.
pub fn run_browser_script(
    e2e: &Path,
    script: &str,
    chromium: &str,
    env: &[(&str, &std::ffi::OsStr)],
) {
    let mut child = std::process::Command::new("node")
        .arg(e2e.join(script))
        .current_dir(e2e)
        .envs(env.iter().copied())
        .env("CHROMIUM", chromium)
        .spawn()
        .expect("run node (nodejs) on the browser test");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test {script} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "browser test {script} failed ({status}); see its output above"
    );
}

/// A TCP relay in front of a web UI that counts the bytes the node sends through it: what a
/// browser really received, which a response's announced length (`Range: bytes=0-` of a
/// whole video) does not tell.
pub struct ByteRelay {
    /// `host:port` to point the browser at.
    pub addr: String,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ByteRelay {
    pub fn new(node: &str) -> ByteRelay {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (node, counted) = (node.to_owned(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&node) else {
                    continue;
                };
                let (mut to_node, mut from_client) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_node);
                    let _ = to_node.shutdown(std::net::Shutdown::Write);
                });
                let (mut from_node, mut to_client, counted) = (upstream, client, counted.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n @ 1..) = from_node.read(&mut buf) {
                        if to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ByteRelay { addr, sent }
    }

    /// Bytes the node sent to browsers through this relay so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}
