//! TLS on the file server's port: the first byte tells TLS from the text protocol, payloads
//! cross the cipher intact, `--require-tls` and `--allow-plaintext-auth` hold, passwords are
//! proven with `pake` only inside TLS, and a man in the middle gets no proof through.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use meshfs_core::access::Access;
use meshfs_core::pake::{Binding, ClientProof, PakeError, Secret};
use meshfs_core::stream::Stream;
use meshfs_core::tls::{self, ClientAuth, TlsAcceptor, TlsConnector};
use meshfs_core::{Identity, NodeId};
use meshfs_server::{Config, Tls, Transport};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod support;

use support::{Options, TestServer};

/// A node with TLS (its identity returned), `config` tweaking the rest.
fn tls_node(
    root: &Path,
    clients: ClientAuth,
    access: Option<Access>,
    tweak: impl FnOnce(&mut Transport),
) -> (TestServer, Identity) {
    let node = Identity::generate("cam1").unwrap();
    let mut transport = Transport {
        tls: Some(Tls {
            config: tls::server_config(&node, clients).unwrap(),
            id: node.id(),
        }),
        plaintext_auth: false,
        ..Transport::default()
    };
    tweak(&mut transport);
    let server = support::start(
        root,
        Options {
            config: Config {
                name: "cam1".into(),
                ..Config::default()
            },
            transport,
            access,
            ..Options::default()
        },
    );
    (server, node)
}

fn share() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hello").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(dir.path().join("big.bin"), big).unwrap();
    dir
}

/// A line-at-a-time client over a plain or TLS stream.
struct Line(BufReader<Stream>);

impl Line {
    async fn plain(addr: &str) -> Line {
        Line(BufReader::new(Stream::Plain(
            TcpStream::connect(addr).await.unwrap(),
        )))
    }

    async fn tls(
        addr: &str,
        user: Option<&Identity>,
        expect: Option<NodeId>,
    ) -> std::io::Result<Line> {
        let tcp = TcpStream::connect(addr).await?;
        let config = tls::client_config(user, expect).unwrap();
        let s = TlsConnector::from(config)
            .connect(tls::server_name(addr), tcp)
            .await?;
        Ok(Line(BufReader::new(Stream::TlsClient(Box::new(s)))))
    }

    fn stream(&self) -> &Stream {
        self.0.get_ref()
    }

    /// Send one request line, read one reply line (empty when the peer closed).
    async fn ask(&mut self, request: &str) -> std::io::Result<String> {
        let s = self.0.get_mut();
        s.write_all(request.as_bytes()).await?;
        s.write_all(b"\n").await?;
        s.flush().await?;
        let mut line = String::new();
        self.0.read_line(&mut line).await?;
        Ok(line.trim_end_matches('\n').to_owned())
    }

    async fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.0.read_exact(&mut buf).await.unwrap();
        buf
    }

    /// Prove `password` for `scope` with `pake`: the node's last status line, or why the
    /// client stopped.
    async fn prove(&mut self, password: &str, scope: &str) -> Result<String, PakeError> {
        let binding = Binding {
            session: self.stream().binding().unwrap().unwrap(),
            node: self.stream().peer_id().unwrap(),
        };
        let (proof, arg) = ClientProof::start(&Secret::from_password(password), &binding, scope);
        let reply = self.ask(&format!("pake {arg}")).await.unwrap();
        let Some(text) = reply.strip_prefix("0 ") else {
            return Ok(reply);
        };
        let confirm = proof.finish(text)?;
        Ok(self.ask(&format!("pake-confirm {confirm}")).await.unwrap())
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn one_port_serves_text_and_tls() {
    let dir = share();
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, None, |_| {});
    rt().block_on(async {
        let mut plain = Line::plain(&srv.addr).await;
        let hello = plain.ask("hello").await.unwrap();
        assert!(
            hello.starts_with("0 meshfs ") && hello.contains("node=cam1"),
            "{hello}"
        );
        assert_eq!(plain.ask("pread 0 5 hello.txt").await.unwrap(), "0 5");
        assert_eq!(plain.bytes(5).await, b"hello");

        let mut secure = Line::tls(&srv.addr, None, Some(node.id())).await.unwrap();
        assert!(secure.stream().is_tls());
        assert_eq!(secure.stream().peer_id(), Some(node.id()));
        assert!(secure.ask("hello").await.unwrap().contains("node=cam1"));
        // A payload larger than a TLS chunk, through the cipher instead of sendfile.
        let want = std::fs::read(dir.path().join("big.bin")).unwrap();
        assert_eq!(secure.ask("open big.bin").await.unwrap(), "0 OK");
        let reply = secure.ask("read 16000000").await.unwrap();
        assert_eq!(reply, format!("0 {}", want.len()));
        assert!(secure.bytes(want.len()).await == want, "payload differs");
        assert_eq!(secure.ask("read 10").await.unwrap(), "0 0");
    });
}

#[test]
fn require_tls_leaves_only_hello_and_help_in_clear() {
    let dir = share();
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, None, |c| {
        c.require_tls = true
    });
    rt().block_on(async {
        let mut plain = Line::plain(&srv.addr).await;
        assert!(plain.ask("hello").await.unwrap().starts_with("0 meshfs "));
        for refused in [
            "ls",
            "stat hello.txt",
            "open hello.txt",
            "pread 0 5 hello.txt",
        ] {
            let reply = plain.ask(refused).await.unwrap();
            assert!(
                reply.starts_with("2 this node requires TLS"),
                "{refused}: {reply}"
            );
        }
        assert_eq!(plain.ask("help").await.unwrap(), "0 OK");

        let mut secure = Line::tls(&srv.addr, None, Some(node.id())).await.unwrap();
        assert_eq!(secure.ask("ls").await.unwrap(), "0 OK");
    });
}

#[test]
fn auth_in_clear_is_refused_unless_allowed() {
    let dir = share();
    let access = Access::open();
    access.set_share_password("s3cret");
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, Some(access.clone()), |_| {});
    rt().block_on(async {
        let mut plain = Line::plain(&srv.addr).await;
        let reply = plain.ask("auth s3cret").await.unwrap();
        assert!(reply.starts_with("2 auth in clear refused"), "{reply}");
        assert!(
            reply.contains("--allow-plaintext-auth") && reply.contains("TLS"),
            "{reply}"
        );
        assert!(
            plain
                .ask("ls")
                .await
                .unwrap()
                .starts_with("8 password required")
        );
        // pake needs the TLS session it is bound to.
        let reply = plain.ask("pake QUFB").await.unwrap();
        assert!(reply.starts_with("2 pake needs TLS"), "{reply}");

        // Inside TLS, `auth` is encrypted and accepted (third-party TLS clients use it).
        let mut secure = Line::tls(&srv.addr, None, Some(node.id())).await.unwrap();
        assert_eq!(secure.ask("auth s3cret").await.unwrap(), "0 OK");
        assert_eq!(secure.ask("ls").await.unwrap(), "0 OK");
    });
    // With --allow-plaintext-auth, the old way works.
    let (srv, _) = tls_node(dir.path(), ClientAuth::Offer, Some(access), |c| {
        c.plaintext_auth = true
    });
    rt().block_on(async {
        let mut plain = Line::plain(&srv.addr).await;
        assert_eq!(plain.ask("auth s3cret").await.unwrap(), "0 OK");
    });
}

#[test]
fn pake_proves_share_and_file_passwords() {
    let dir = share();
    let access = Access::open();
    access.set_share_password("whole");
    access.protect_file("hello.txt", "own").unwrap();
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, Some(access), |_| {});
    rt().block_on(async {
        let mut c = Line::tls(&srv.addr, None, Some(node.id())).await.unwrap();
        assert!(
            c.ask("ls")
                .await
                .unwrap()
                .starts_with("8 password required")
        );
        assert_eq!(c.prove("wrong", "").await, Err(PakeError::NodeNotProven));
        assert_eq!(c.prove("whole", "").await.unwrap(), "0 OK");
        assert_eq!(c.ask("ls").await.unwrap(), "0 OK");
        loop {
            // The listing, up to its empty line.
            let mut line = String::new();
            c.0.read_line(&mut line).await.unwrap();
            if line == "\n" {
                break;
            }
        }
        let reply = c.ask("pread 0 5 hello.txt").await.unwrap();
        assert!(reply.starts_with("8 password required"), "{reply}");
        assert_eq!(c.prove("own", "hello.txt").await.unwrap(), "0 OK");
        assert_eq!(c.ask("pread 0 5 hello.txt").await.unwrap(), "0 5");
        assert_eq!(c.bytes(5).await, b"hello");
        let reply = c.prove("x", "nothing-here").await.unwrap();
        assert!(reply.starts_with("1 no password protects"), "{reply}");
        assert!(
            c.ask("pake-confirm QUFB")
                .await
                .unwrap()
                .starts_with("4 no pake")
        );
    });
}

/// Guesses count even when the client never confirms (it learns nothing it could test
/// offline, but each exchange is one online guess): the fifth unconfirmed proof is the last,
/// counted in the node's one login throttle like `auth`'s.
#[test]
fn pake_guesses_are_counted() {
    let dir = share();
    let access = Access::open();
    access.set_share_password("whole");
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, Some(access), |_| {});
    rt().block_on(async {
        let mut c = Line::tls(&srv.addr, None, Some(node.id())).await.unwrap();
        for _ in 0..5 {
            assert_eq!(c.prove("guess", "").await, Err(PakeError::NodeNotProven));
        }
        let reply = c.prove("whole", "").await.unwrap();
        assert!(
            reply.starts_with("6 too many wrong passwords from 127.0.0.1: logins refused for "),
            "{reply}"
        );
        assert_eq!(c.ask("hello").await.unwrap_or_default(), "", "closed");
    });
}

#[test]
fn allow_list_refuses_unknown_clients() {
    let dir = share();
    let friend = Identity::generate("friend").unwrap();
    let stranger = Identity::generate("stranger").unwrap();
    let allowed = Arc::new(HashSet::from([friend.id()]));
    let (srv, node) = tls_node(dir.path(), ClientAuth::Require(allowed), None, |c| {
        c.require_tls = true
    });
    rt().block_on(async {
        let mut ok = Line::tls(&srv.addr, Some(&friend), Some(node.id()))
            .await
            .unwrap();
        assert_eq!(ok.ask("ls").await.unwrap(), "0 OK");
        for user in [Some(&stranger), None] {
            // TLS 1.3: the refusal may arrive after the client's handshake completes.
            let refused = match Line::tls(&srv.addr, user, Some(node.id())).await {
                Err(_) => true,
                Ok(mut c) => c.ask("ls").await.map(|r| r.is_empty()).unwrap_or(true),
            };
            assert!(refused, "a client not in --allow got through");
        }
    });
}

/// A man in the middle: a proxy that shows the client its own key and relays to the real
/// node over a TLS session of its own. A client that pinned the node refuses it at once; a
/// client meeting the name for the first time (trust on first use) connects, but its password
/// proof fails at the client without a confirmation sent, and the node grants the proxy
/// nothing.
#[test]
fn a_man_in_the_middle_gets_no_proof_through() {
    let dir = share();
    let access = Access::open();
    access.set_share_password("s3cret");
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, Some(access), |_| {});
    rt().block_on(async {
        let mitm = Identity::generate("cam1").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap().to_string();
        let upstream = srv.addr.clone();
        let acceptor = TlsAcceptor::from(tls::server_config(&mitm, ClientAuth::None).unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut down) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let tcp = TcpStream::connect(&upstream).await.unwrap();
                    let config = tls::client_config(None, None).unwrap();
                    let mut up = TlsConnector::from(config)
                        .connect(tls::server_name(&upstream), tcp)
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
            }
        });

        // Pinned: refused in the handshake, naming both keys.
        let err = Line::tls(&proxy_addr, None, Some(node.id()))
            .await
            .err()
            .unwrap();
        let mismatch = tls::pin_mismatch(&err).expect("a pin mismatch");
        assert_eq!(
            (mismatch.expected, mismatch.presented),
            (node.id(), mitm.id())
        );

        // First contact: the proof fails at the client, which sends no confirmation.
        let mut c = Line::tls(&proxy_addr, None, None).await.unwrap();
        assert_eq!(c.stream().peer_id(), Some(mitm.id()));
        assert_eq!(c.prove("s3cret", "").await, Err(PakeError::NodeNotProven));
        let reply = c.ask("ls").await.unwrap();
        assert!(reply.starts_with("8 password required"), "{reply}");
    });
}

/// The client side as meshfs commands use it: `Client`, `Pool` and downloads under a TLS
/// `Trust` pin the node on first use, prove the password with `pake`, and refuse an impostor
/// under the pinned name.
#[test]
fn clients_pin_on_first_use_and_refuse_an_impostor() {
    use meshfs_core::client::{Client, ClientError, Credentials};
    use meshfs_core::pool::{Pool, PoolConfig};
    use meshfs_core::transfer::{self, DownloadOptions};
    use meshfs_core::trust::Trust;
    use meshfs_core::{KnownNodes, RemotePath};

    let dir = share();
    let access = Access::open();
    access.set_share_password("s3cret");
    let (srv, node) = tls_node(dir.path(), ClientAuth::Offer, Some(access.clone()), |_| {});
    let (impostor, fake) = tls_node(dir.path(), ClientAuth::Offer, Some(access), |_| {});
    let home = tempfile::tempdir().unwrap();
    let known_path = home.path().join("known_nodes");
    let user = Identity::generate("me").unwrap();
    let trust = Trust::tls(Some(user), KnownNodes::load(&known_path).unwrap());
    let creds = Credentials::password("s3cret").with_trust(trust.clone());
    rt().block_on(async {
        let mut c = Client::connect_with(&srv.addr, &creds).await.unwrap();
        assert!(c.is_tls());
        assert_eq!(c.peer_id(), Some(node.id()));
        assert!(c.ls("").await.is_ok(), "the password was proven");
        let pins = std::fs::read_to_string(&known_path).unwrap();
        assert!(pins.contains(&format!("cam1 {}", node.id())), "{pins}");

        // A pool and a download reuse the pin (checked in the handshake now).
        let pool = Pool::with_credentials(&srv.addr, PoolConfig::default(), creds.clone());
        let entry = pool.run(async |c| c.stat("big.bin").await).await.unwrap();
        assert_eq!(entry.size, 3 << 20);
        let src: RemotePath = format!("meshfs://{}/big.bin", srv.addr).parse().unwrap();
        let dest = home.path().join("big.bin");
        let opts = DownloadOptions {
            credentials: creds.clone(),
            ..DownloadOptions::default()
        };
        transfer::download(&src, &dest, &opts, &()).await.unwrap();
        assert!(
            std::fs::read(&dest).unwrap() == std::fs::read(dir.path().join("big.bin")).unwrap()
        );

        // Another key answering as cam1: refused, naming both keys and the fix.
        let err = Client::connect_with(&impostor.addr, &creds)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Trust { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&node.id().to_string())
                && text.contains(&fake.id().to_string())
                && text.contains("meshfs trust cam1"),
            "{text}"
        );
        // Expected by name, the impostor fails in the handshake already.
        let by_name = creds.clone().expecting("cam1");
        let err = Client::connect_with(&impostor.addr, &by_name)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Trust { .. }), "{err}");

        // A wrong password is an authentication failure, not a broken node.
        let wrong = Credentials::password("nope").with_trust(trust.clone());
        let err = Client::connect_with(&srv.addr, &wrong).await.unwrap_err();
        assert_eq!(
            err.remote_code(),
            Some(meshfs_core::proto::Code::AuthFailed),
            "{err}"
        );

        // --plaintext still reaches the node through the text protocol.
        let mut old = Client::connect_with(&srv.addr, &Credentials::none())
            .await
            .unwrap();
        assert!(!old.is_tls());
        assert_eq!(old.hello().await.unwrap().name, "cam1");
    });
}

/// A node older than TLS: a TLS client says to use --plaintext.
#[test]
fn a_node_without_tls_gets_a_hint() {
    use meshfs_core::client::{Client, ClientError, Credentials};
    use meshfs_core::trust::Trust;
    let dir = share();
    let srv = support::start(dir.path(), Options::default());
    let creds =
        Credentials::none().with_trust(Trust::tls(None, meshfs_core::KnownNodes::in_memory()));
    rt().block_on(async {
        let err = Client::connect_with(&srv.addr, &creds).await.unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("--plaintext"), "{err}");
    });
}
