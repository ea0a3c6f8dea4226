//! Attacks on the file server's TLS, end to end with the real `meshfs` binary: a man in the
//! middle presenting another key, a passive capture of a TLS download, third-party TLS clients
//! (`openssl s_client`, Python's `ssl`) and `nc`-style clear text on the same port. These back
//! the claims of SECURITY.md; each names what it would catch if it broke.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proc, assert_success, bin, pattern, spawn_piped};
use meshfs_core::client::{Client, Credentials};
use meshfs_core::tls::{self, ClientAuth, TlsAcceptor, TlsConnector};
use meshfs_core::trust::Trust;
use meshfs_core::{Identity, KnownNodes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The share password: a string that appears nowhere else, so finding it means it leaked.
const MARKER: &str = "marker-pw-7f3a9c1e-never-on-the-wire";

/// A node and a client user, each with its own folders under one temporary home.
struct Lab {
    home: tempfile::TempDir,
    _node: Proc,
    addr: String,
    node_id: String,
}

impl Lab {
    /// `meshfs node` named cam1 serving `share`, its key in `home/node-state`, `extra` flags.
    fn start(extra: &[&str]) -> Lab {
        let home = tempfile::tempdir().unwrap();
        let share = home.path().join("share");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::write(share.join("notes.txt"), b"camera notes\n").unwrap();
        std::fs::write(share.join("clip.bin"), clip()).unwrap();
        let state = home.path().join("node-state");
        let node = spawn_piped(
            Command::new(bin())
                .args(["node", share.to_str().unwrap(), "--listen", "127.0.0.1:0"])
                .args(["--name", "cam1", "--no-discovery", "--no-web"])
                .args(["--state", state.to_str().unwrap()])
                .args(extra)
                .env("XDG_STATE_HOME", home.path().join("xdg-state"))
                .env("XDG_CONFIG_HOME", home.path().join("node-config"))
                .stderr(Stdio::null()),
        );
        let addr = common::node_addr(&node.next_line(Duration::from_secs(20)));
        let out = Command::new(bin())
            .args(["id", "--node", "--state", state.to_str().unwrap()])
            .output()
            .unwrap();
        assert_success(&out);
        let node_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Lab {
            home,
            _node: node,
            addr,
            node_id,
        }
    }

    /// `meshfs <args>` as the client user (its own config folder: identity and known_nodes).
    fn client(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("user-config"))
            .env("XDG_STATE_HOME", self.home.path().join("user-state"))
            .env_remove("MESHFS_PLAINTEXT")
            .output()
            .unwrap()
    }

    fn cert(&self) -> std::path::PathBuf {
        self.home.path().join("node-state/identity/cert.pem")
    }
}

/// The distinctive file: 1 MiB no other byte stream resembles.
fn clip() -> Vec<u8> {
    pattern(1 << 20, 0x5eed_c1a9)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A man in the middle on loopback: terminates TLS with `mitm`'s key, relays to `upstream`
/// over its own TLS connection, and records every byte it decrypted from the client.
fn start_mitm(
    rt: &tokio::runtime::Runtime,
    mitm: &Identity,
    upstream: String,
) -> (String, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = TlsAcceptor::from(tls::server_config(mitm, ClientAuth::None).unwrap());
    let record = seen.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream, record) = (acceptor.clone(), upstream.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(down) = acceptor.accept(tcp).await else {
                    return;
                };
                let tcp = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let Ok(up) = TlsConnector::from(tls::client_config(None, None).unwrap())
                    .connect(tls::server_name(&upstream), tcp)
                    .await
                else {
                    return;
                };
                let (mut down_r, mut down_w) = tokio::io::split(down);
                let (mut up_r, mut up_w) = tokio::io::split(up);
                let to_client = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = down_r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if up_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                to_client.abort();
            });
        }
    });
    (addr, seen)
}

/// A recording TCP relay: what a passive listener on the LAN would capture, both directions.
fn start_tap(upstream: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let record = seen.clone();
    std::thread::spawn(move || {
        for down in listener.incoming().map_while(Result::ok) {
            let up = TcpStream::connect(&upstream).unwrap();
            for (mut from, mut to) in [
                (down.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, down),
            ] {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (addr, seen)
}

/// A client with the password `MARKER` and a first-use trust (nothing pinned yet).
fn first_contact() -> Credentials {
    Credentials::password(MARKER).with_trust(Trust::tls(None, KnownNodes::in_memory()))
}

/// Breaks if: the pin is not checked for `meshfs ls`/`get` (the proxy's key is accepted), the
/// error stops naming both IDs, or the client sends anything worth having to a wrong key.
#[test]
fn mitm_with_another_key_is_refused_by_pinned_commands() {
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{MARKER}\n")).unwrap();
    let lab = Lab::start(&["--password-file", pw.path().to_str().unwrap()]);
    let rt = rt();
    let mitm = Identity::generate("cam1").unwrap();
    let (proxy, seen) = start_mitm(&rt, &mitm, lab.addr.clone());

    assert_success(&lab.client(&["trust", "cam1", &lab.node_id]));
    for args in [
        vec!["ls".to_owned(), format!("meshfs://{proxy}/")],
        vec![
            "get".to_owned(),
            format!("meshfs://{proxy}/clip.bin"),
            "out.bin".to_owned(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lab.client(&args);
        assert!(!out.status.success(), "{args:?} went through the proxy");
        let err = text(&out.stderr);
        assert!(
            err.contains(&lab.node_id) && err.contains(&mitm.id().to_string()),
            "{args:?}: the error names both IDs: {err}"
        );
        assert!(err.contains("meshfs trust cam1"), "{args:?}: {err}");
    }
    assert!(!lab.home.path().join("out.bin").exists());

    // First contact through the proxy (nothing pinned): the password is proven with pake, so
    // the proxy relays a proof bound to the wrong TLS session and the client stops there.
    let result = rt.block_on(async {
        let mut c = Client::connect_with(&proxy, &first_contact()).await?;
        c.ls("").await
    });
    assert!(result.is_err(), "a proof went through a man in the middle");
    let seen = seen.lock().unwrap().clone();
    assert!(
        !contains(&seen, MARKER.as_bytes()),
        "the proxy saw the password"
    );
    assert!(
        !contains(&seen, b"pake-confirm"),
        "the client confirmed to a man in the middle: {}",
        text(&seen)
    );
}

/// Breaks if: `meshfs get` falls back to clear text, or a password crosses the wire.
#[test]
fn passive_capture_of_a_tls_get_holds_no_file_bytes_and_no_password() {
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{MARKER}\n")).unwrap();
    let open = Lab::start(&[]);
    let (tap, seen) = start_tap(open.addr.clone());
    let out = open.client(&["get", &format!("meshfs://{tap}/clip.bin"), "got.bin"]);
    assert_success(&out);
    assert!(std::fs::read(open.home.path().join("got.bin")).unwrap() == clip());

    // The same through the library with a password (the CLI's password flags are `cli`'s).
    let locked = Lab::start(&["--password-file", pw.path().to_str().unwrap()]);
    let (tap2, seen2) = start_tap(locked.addr.clone());
    let rt = rt();
    rt.block_on(async {
        let mut c = Client::connect_with(&tap2, &first_contact()).await.unwrap();
        assert!(c.is_tls());
        c.ls("")
            .await
            .expect("the password was proven through the tap");
    });

    let mut capture = seen.lock().unwrap().clone();
    capture.extend_from_slice(&seen2.lock().unwrap());
    assert!(capture.len() > 1 << 20, "the capture saw the transfer");
    assert_eq!(capture[0], 0x16, "the client opened with a TLS handshake");
    let file = clip();
    for at in (0..file.len() - 32).step_by(4093) {
        assert!(
            !contains(&capture, &file[at..at + 32]),
            "file bytes at {at} are in the capture"
        );
    }
    assert!(
        !contains(&capture, MARKER.as_bytes()),
        "the password is in the capture"
    );
    assert!(
        !contains(&capture, b"clip.bin"),
        "the file name is in the capture"
    );
}

/// Breaks if: the node stops speaking standard TLS 1.3 that third-party clients accept, or the
/// node ID stops being the SHA-256 of the served certificate's public key.
#[test]
fn openssl_and_python_speak_tls_to_the_file_server() {
    let lab = Lab::start(&[]);

    // openssl s_client: `hello` over TLS 1.3 gets the node's hello line.
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-tls1_3", "-connect", &lab.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    let mut stdin = s_client.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    let lines = common::lines_of(s_client.stdout.take().unwrap());
    let hello = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a reply");
    let _ = s_client.kill();
    let _ = s_client.wait();
    assert!(
        hello.starts_with("0 meshfs ") && hello.contains("node=cam1"),
        "{hello}"
    );

    // The node ID is curl's pin: SHA-256 of the certificate's SubjectPublicKeyInfo.
    let pin = lab.client(&[
        "id",
        "--node",
        "--curl",
        "--state",
        lab.home.path().join("node-state").to_str().unwrap(),
    ]);
    assert_success(&pin);
    let spki = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        )
        .args(["sh", lab.cert().to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&spki);
    assert_eq!(
        text(&pin.stdout).trim(),
        format!("sha256//{}", text(&spki.stdout).trim())
    );

    // Python's ssl: TLS 1.3, the presented certificate is the node's (a pin), `hello` answers.
    let script = r#"
import socket, ssl, sys
addr, cert = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
with socket.create_connection((host, int(port)), timeout=20) as raw:
    with ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
        want = ssl.PEM_cert_to_DER_cert(open(cert).read())
        assert der == want, "not the node's certificate"
        s.sendall(b"hello\n")
        f = s.makefile("rb")
        print(s.version(), f.readline().decode().strip())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &lab.addr, lab.cert().to_str().unwrap()])
        .output()
        .expect("python3");
    assert_success(&out);
    let line = text(&out.stdout);
    assert!(
        line.starts_with("TLSv1.3 0 meshfs ") && line.contains("node=cam1"),
        "{line}"
    );
}

/// `nc`-style: one line at a time on a plain socket.
fn ask_plain(addr: &str, requests: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    requests
        .iter()
        .map(|q| {
            s.write_all(format!("{q}\n").as_bytes()).unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect()
}

/// Breaks if: TLS on the port costs the text protocol its old clients, or `--require-tls`
/// still serves files in clear.
#[test]
fn clear_text_works_on_the_same_port_unless_require_tls() {
    let lab = Lab::start(&[]);
    // `ls` last: its entries follow its status line (as do `stat`'s fields).
    let r = ask_plain(&lab.addr, &["hello", "ls"]);
    assert!(
        r[0].starts_with("0 meshfs ") && r[0].contains("node=cam1"),
        "{r:?}"
    );
    assert_eq!(r[1], "0 OK", "{r:?}");

    let strict = Lab::start(&["--require-tls"]);
    let r = ask_plain(&strict.addr, &["hello", "ls", "stat notes.txt"]);
    assert!(r[0].starts_with("0 meshfs "), "{r:?}");
    assert!(r[1].starts_with("2 this node requires TLS"), "{r:?}");
    assert!(r[2].starts_with("2 this node requires TLS"), "{r:?}");
    // A meshfs command still gets through, over TLS.
    let out = strict.client(&["ls", &format!("meshfs://{}/", strict.addr)]);
    assert_success(&out);
    assert!(
        text(&out.stdout).contains("notes.txt"),
        "{}",
        text(&out.stdout)
    );
}
