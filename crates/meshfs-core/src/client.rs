//! `Client`: one connection to a node's file server, speaking protocols.md §1.
//!
//! Every read from the socket is bounded in size (status and listing lines are capped at
//! [`MAX_LINE`]) and in time (a peer that stalls mid-reply yields
//! [`ClientError::Timeout`] instead of a hang). Requests can be pipelined: [`Client::send`] queues
//! a request without waiting, and replies are read in order.
//!
//! A connection is made by [`Client::connect_with`] under the caller's [`Credentials`]: with a
//! TLS [`Trust`] it speaks TLS, checks the node's key against the user's pins (pinning on
//! first use) and proves passwords with `pake`, never sending them; with the plaintext policy
//! (`--plaintext`, and the default for libraries given none) it speaks in clear and uses `auth`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::blocks::BlockHashes;
use crate::identity::NodeId;
use crate::known_nodes::KnownNodesError;
use crate::pake::{self, ClientProof, PakeError, Secret};
use crate::proto::{self, Code, MAX_LINE};
use crate::share::Entry;
use crate::stream::Stream;
use crate::trust::{HandshakeError, Trust, TrustError};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on any single wait for the peer (a stalled peer is an error, not a hang).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The slowest a node is expected to read a file it hashes (`hash-prefix`, `blocks`): a
/// camera's SD card while it records. A node says nothing until the whole file is read, so
/// the wait for these replies grows with the file ([`hashing_timeout`]).
pub const SLOWEST_HASHING: u64 = 4 << 20;

/// How long to wait for a node to hash `size` bytes before its reply: the usual `timeout`
/// plus the time [`SLOWEST_HASHING`] takes over them (a 4 GB recording: about 17 minutes
/// more), so a big uncached file on a slow node is waited for, and a small one is not.
pub fn hashing_timeout(timeout: Duration, size: u64) -> Duration {
    timeout.saturating_add(Duration::from_secs(size / SLOWEST_HASHING))
}

/// Most addresses a `cluster-peers` reply may hold.
pub const MAX_CLUSTER_PEERS: usize = 64;

/// Most entries a listing may hold before the client gives up on it.
pub const MAX_ENTRIES: usize = 1_000_000;

/// What can go wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} sent no reply for {secs} s (peer stalled)")]
    Timeout { addr: String, secs: u64 },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{message} (code {code})")]
    Remote { code: u8, message: String },
    #[error("protocol error from {addr}: {what}")]
    Protocol { addr: String, what: String },
    /// The node's key is not the one pinned for it (or the pins cannot be read or written).
    #[error("{addr}: {source}")]
    Trust {
        addr: String,
        #[source]
        source: TrustError,
    },
    /// The TLS handshake failed: not a TLS node (older than TLS), or refused our certificate.
    #[error("TLS with {addr} failed: {source} (a node older than TLS? use --plaintext)")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The protocol code, when the node answered with an error.
    pub fn remote_code(&self) -> Option<Code> {
        match self {
            ClientError::Remote { code, .. } => Code::from_u8(*code),
            _ => None,
        }
    }

    /// True when the error says nothing about the request, only about the connection, so a
    /// retry on a new connection may succeed.
    pub fn is_connection(&self) -> bool {
        !matches!(self, ClientError::Remote { .. } | ClientError::Trust { .. })
    }
}

/// Result alias for client operations.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What `hello` says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub version: String,
    pub proto: u32,
    /// It understands `subscribe … reasons` (`events=reasons`).
    pub reasons: bool,
    /// Its disk is full (`disk=full`); it still serves.
    pub disk_full: bool,
}

/// One connection to a file server.
#[derive(Debug)]
pub struct Client {
    stream: BufReader<Stream>,
    addr: String,
    timeout: Duration,
    /// Requests queued by [`Client::send`] but not yet written.
    out: Vec<u8>,
}

/// How a client meets a node on every new connection: the [`Trust`] policy (TLS with pinned
/// keys, or clear text), the node name the address is expected to be (its pin is then checked
/// in the handshake), and the share password to prove. Every consumer that carries
/// `Credentials` (pools, downloads, followers) gets all three.
///
/// `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    password: Option<String>,
    trust: Trust,
    node: Option<String>,
}

impl Credentials {
    /// Nothing to prove (an open node), in clear unless given a [`Trust`].
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Prove `password` after connecting (`pake` inside TLS, `auth` in clear).
    pub fn password(password: impl Into<String>) -> Credentials {
        Credentials {
            password: Some(password.into()),
            ..Credentials::default()
        }
    }

    /// Meet nodes under `trust` (the binary gives every command the user's).
    pub fn with_trust(mut self, trust: Trust) -> Credentials {
        self.trust = trust;
        self
    }

    /// The address is node `name`: its pinned key is demanded in the handshake, and a key
    /// seen for the first time is pinned under this name.
    pub fn expecting(mut self, name: impl Into<String>) -> Credentials {
        self.node = Some(name.into());
        self
    }

    /// The trust policy.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// True when there is no password to prove.
    pub fn is_empty(&self) -> bool {
        self.password.is_none()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("trust", &self.trust)
            .field("node", &self.node)
            .finish()
    }
}

impl Client {
    /// Connect to `addr` (`host:port`) with nothing to prove.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, &Credentials::none()).await
    }

    /// Connect to `addr` (`host:port`) and prove `credentials`. Every connection meshfs makes
    /// goes through here (directly, or through [`Pool`](crate::pool::Pool)), so the TLS layer
    /// wraps this one function.
    ///
    /// Under a TLS policy: the handshake demands the key pinned for the expected node name (or
    /// seen at this address before); when nothing was pinned yet, the key is pinned under that
    /// name, or under the name `hello` gives. A changed key is [`ClientError::Trust`].
    pub async fn connect_with(addr: &str, credentials: &Credentials) -> Result<Client> {
        let tcp = Client::connect_tcp(addr).await?;
        let trust = &credentials.trust;
        if trust.is_plaintext() {
            let mut client = Client::over(Stream::Plain(tcp), addr);
            if let Some(password) = &credentials.password {
                client.auth(password).await?;
            }
            return Ok(client);
        }
        let node = credentials.node.as_deref();
        let handshake = tokio::time::timeout(CONNECT_TIMEOUT, trust.handshake(tcp, addr, node));
        let (stream, checked) = match handshake.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(HandshakeError::Trust(source))) => {
                return Err(ClientError::Trust {
                    addr: addr.to_owned(),
                    source,
                });
            }
            Ok(Err(HandshakeError::Io(source))) => {
                return Err(ClientError::Tls {
                    addr: addr.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"),
                });
            }
        };
        let mut client = Client::over(stream, addr);
        if !checked {
            let id = client
                .peer_id()
                .ok_or_else(|| client.protocol("no node certificate"))?;
            let name = match node {
                Some(n) => n.to_owned(),
                None => client.hello().await?.name,
            };
            trust
                .admit(addr, &name, id)
                .map_err(|e: KnownNodesError| ClientError::Trust {
                    addr: addr.to_owned(),
                    source: e.into(),
                })?;
        }
        if let Some(password) = &credentials.password {
            client.auth(password).await?;
        }
        Ok(client)
    }

    fn over(stream: Stream, addr: &str) -> Client {
        Client {
            stream: BufReader::with_capacity(256 << 10, stream),
            addr: addr.to_owned(),
            timeout: IO_TIMEOUT,
            out: Vec::new(),
        }
    }

    /// True inside TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.get_ref().is_tls()
    }

    /// The node's ID (inside TLS; checked against the pins by [`Client::connect_with`]).
    pub fn peer_id(&self) -> Option<NodeId> {
        self.stream.get_ref().peer_id()
    }

    async fn connect_tcp(addr: &str) -> Result<TcpStream> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// For a bulk download: let [`tls::Records`](crate::tls::Records) open and seal this TLS
    /// connection's records from now on, reading the socket in large pieces and decrypting in
    /// place (a verified `get` over TLS is limited by the client's core). Call it between
    /// replies, with no request in flight. A connection in clear, or one that cannot be handed
    /// over at this moment, is kept as it is; if rustls then refuses to give its keys up, the
    /// connection is lost (an error).
    pub async fn hand_over_records(mut self) -> Result<Client> {
        self.flush().await?;
        if !self.stream.buffer().is_empty() || !self.stream.get_mut().can_hand_over_records() {
            return Ok(self);
        }
        let stream = match self.stream.into_inner().into_records() {
            Ok(stream) => stream,
            Err(e) => {
                return Err(ClientError::Io {
                    addr: self.addr,
                    source: e,
                });
            }
        };
        // `Records` holds what it decrypted: a small buffer above it is enough for reply
        // lines, and payload reads larger than it go past it (no copy through it).
        self.stream = BufReader::with_capacity(16 << 10, stream);
        Ok(self)
    }

    /// Change the per-wait timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn io_err(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn protocol(&self, what: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            what: what.into(),
        }
    }

    /// Queue one request line (the line break is added). Nothing is sent until
    /// [`Client::flush`] or the next reply is awaited.
    pub fn send(&mut self, request: &str) {
        self.out.extend_from_slice(request.as_bytes());
        self.out.push(b'\n');
    }

    /// Write every queued request.
    pub async fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let stream = self.stream.get_mut();
        let res = tokio::time::timeout(self.timeout, async {
            stream.write_all(&out).await?;
            stream.flush().await
        })
        .await;
        self.out = out;
        self.out.clear();
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_err(e)),
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                secs: self.timeout.as_secs(),
            }),
        }
    }

    /// Read one line (without its line break), at most `MAX_LINE` bytes.
    pub async fn read_line(&mut self) -> Result<String> {
        self.flush().await?;
        let mut line = Vec::new();
        let timeout = self.timeout;
        let res = tokio::time::timeout(timeout, async {
            let mut limited = (&mut self.stream).take(MAX_LINE as u64 + 2);
            limited.read_until(b'\n', &mut line).await
        })
        .await;
        let n = match res {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(self.io_err(e)),
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: self.addr.clone(),
                    secs: timeout.as_secs(),
                });
            }
        };
        if n == 0 {
            return Err(ClientError::Closed {
                addr: self.addr.clone(),
            });
        }
        if line.last() != Some(&b'\n') {
            return Err(self.protocol("reply line too long or cut"));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| self.protocol("reply is not UTF-8"))
    }

    /// Read a status line; `Ok(text)` for code 0, [`ClientError::Remote`] otherwise.
    pub async fn status(&mut self) -> Result<String> {
        let line = self.read_line().await?;
        let (code, text) = line.split_once(' ').unwrap_or((&line, ""));
        let code: u8 = code
            .parse()
            .map_err(|_| self.protocol(format!("malformed status line {line:?}")))?;
        if code == 0 {
            Ok(text.to_owned())
        } else {
            Err(ClientError::Remote {
                code,
                message: text.to_owned(),
            })
        }
    }

    /// Read a `0 <n>` data header and return `n`.
    pub async fn data_header(&mut self, max: u64) -> Result<u64> {
        let text = self.status().await?;
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| self.protocol(format!("malformed data length {text:?}")))?;
        if n > max {
            return Err(self.protocol(format!("{n} bytes sent where at most {max} were asked")));
        }
        Ok(n)
    }

    /// Read exactly `n` payload bytes, appending them to `buf`.
    ///
    /// Reads straight into `buf`'s spare capacity: zeroing a 1 MiB buffer first cost the FUSE
    /// mount 7% of its CPU for nothing.
    pub async fn payload_into(&mut self, n: u64, buf: &mut Vec<u8>) -> Result<()> {
        let end = buf.len() + n as usize;
        buf.reserve(n as usize);
        let timeout = self.timeout;
        // Time out per wait rather than for the whole payload, so slow links are fine but a
        // stalled peer is not.
        while buf.len() < end {
            // `take`: bytes past the payload belong to the next reply.
            let want = (end - buf.len()) as u64;
            let mut payload = (&mut self.stream).take(want);
            match tokio::time::timeout(timeout, payload.read_buf(buf)).await {
                Ok(Ok(0)) => {
                    return Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.io_err(e)),
                Err(_) => {
                    return Err(ClientError::Timeout {
                        addr: self.addr.clone(),
                        secs: timeout.as_secs(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Read lines until an empty one; used by `stat`, `ls` and `help` bodies.
    async fn lines_until_empty(&mut self) -> Result<Vec<String>> {
        self.at_most_lines_until_empty(MAX_ENTRIES, "listing too long")
            .await
    }

    /// Read lines until an empty one, at most `max` of them (else the error `too_many`).
    async fn at_most_lines_until_empty(
        &mut self,
        max: usize,
        too_many: &str,
    ) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                return Ok(lines);
            }
            if lines.len() >= max {
                return Err(self.protocol(too_many));
            }
            lines.push(line);
        }
    }

    /// `hello`: who is this node?
    pub async fn hello(&mut self) -> Result<NodeInfo> {
        self.send("hello");
        let text = self.status().await?;
        let mut info = NodeInfo {
            name: String::new(),
            version: String::new(),
            proto: 0,
            reasons: false,
            disk_full: false,
        };
        let mut words = text.split(' ');
        if words.next() != Some("meshfs") {
            return Err(self.protocol(format!("not a meshfs node: {text:?}")));
        }
        info.version = words.next().unwrap_or_default().to_owned();
        for w in words {
            if let Some(name) = w.strip_prefix("node=") {
                info.name = name.to_owned();
            } else if let Some(p) = w.strip_prefix("proto=") {
                info.proto = p.parse().unwrap_or(0);
            } else if w == "events=reasons" {
                info.reasons = true;
            } else if w == "disk=full" {
                info.disk_full = true;
            }
        }
        Ok(info)
    }

    /// `status`: the node's state (uptime, share, disk, last recording).
    pub async fn node_status(&mut self) -> Result<crate::status::NodeStatus> {
        self.send("status");
        self.status().await?;
        let lines = self.lines_until_empty().await?;
        crate::status::NodeStatus::parse(&lines)
            .ok_or_else(|| self.protocol("malformed status reply"))
    }

    /// `cluster-peers`: the nodes this one keeps in step with, as `host:port` (each at most
    /// [`MAX_CLUSTER_PEERS`]). A node older than this request answers `5 unknown command`.
    pub async fn cluster_peers(&mut self) -> Result<Vec<String>> {
        self.send("cluster-peers");
        self.status().await?;
        self.at_most_lines_until_empty(MAX_CLUSTER_PEERS, "more cluster peers than a node tells")
            .await
    }

    /// `stat <path>`.
    pub async fn stat(&mut self, path: &str) -> Result<Entry> {
        // `stat` needs an argument: the share's root is `/` (an empty one is a bad request).
        let wire = if path.is_empty() { "/" } else { path };
        self.send(&format!("stat {wire}"));
        self.status().await?;
        let lines = self.lines_until_empty().await?;
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        proto::parse_stat(name, &lines).ok_or_else(|| self.protocol("malformed stat reply"))
    }

    /// `ls [<dir>]`: entries with their metadata.
    pub async fn ls(&mut self, dir: &str) -> Result<Vec<Entry>> {
        self.send(&format!("ls {dir}"));
        self.status().await?;
        let lines = self.lines_until_empty().await?;
        lines
            .iter()
            .map(|l| {
                proto::parse_ls_line(l).ok_or_else(|| self.protocol(format!("bad ls line {l:?}")))
            })
            .collect()
    }

    /// `list [<dir>]`: the seed's plain listing (directories end with `/`).
    pub async fn list(&mut self, dir: &str) -> Result<Vec<String>> {
        self.send(&format!("list {dir}"));
        self.status().await?;
        let mut names = self.lines_until_empty().await?;
        // The seed format ends with two empty lines: consume the second one.
        let second = self.read_line().await?;
        if !second.is_empty() {
            return Err(self.protocol("list reply not closed by two empty lines"));
        }
        names.shrink_to_fit();
        Ok(names)
    }

    /// `hash <path>`: BLAKE3 of the whole remote file, as 64 hex characters.
    pub async fn hash(&mut self, path: &str) -> Result<String> {
        self.send(&format!("hash {path}"));
        self.hash_reply().await
    }

    /// `hash-prefix <size> <path>`: BLAKE3 of the remote file's first `size` bytes. A node
    /// older than this request answers code 5 `unknown command`; one whose file holds fewer
    /// bytes, code 5 too.
    /// Waited for as long as the node may need to read `size` bytes ([`hashing_timeout`]).
    pub async fn hash_prefix(&mut self, path: &str, size: u64) -> Result<String> {
        self.send(&format!("hash-prefix {size} {path}"));
        self.while_hashing(size, async |c| c.hash_reply().await)
            .await
    }

    /// `blocks <size> <path>`: the chaining values of the remote file's 1 MiB blocks over its
    /// first `size` bytes ([`crate::blocks`]), checked to fit `size`. Not yet checked against
    /// the file's BLAKE3: compare [`BlockHashes::root`] with it before trusting the list.
    /// Waited for as long as the node may need to read `size` bytes ([`hashing_timeout`]).
    pub async fn blocks(&mut self, path: &str, size: u64) -> Result<BlockHashes> {
        self.send(&format!("blocks {size} {path}"));
        // Bounded by what `size` needs, not by any payload: a node cannot make us take 16 MiB
        // for a small file.
        let want = crate::blocks::block_count(size).min(crate::blocks::MAX_BLOCKS)
            * crate::blocks::ENTRY_LEN as u64;
        let n = self
            .while_hashing(size, async |c| c.data_header(want).await)
            .await?;
        let mut bytes = Vec::new();
        self.payload_into(n, &mut bytes).await?;
        BlockHashes::from_bytes(size, bytes).map_err(|e| self.protocol(e.to_string()))
    }

    /// Run `op` (the wait for a reply the node sends only once it read `size` bytes) with the
    /// timeout [`hashing_timeout`] allows, then the usual one again.
    async fn while_hashing<T>(
        &mut self,
        size: u64,
        op: impl AsyncFnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        let usual = self.timeout;
        self.timeout = hashing_timeout(usual, size);
        let result = op(self).await;
        self.timeout = usual;
        result
    }

    /// `0 HEX` with 64 hex digits.
    async fn hash_reply(&mut self) -> Result<String> {
        let text = self.status().await?;
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.protocol(format!("malformed hash {text:?}")));
        }
        Ok(text)
    }

    /// `open <path>`.
    pub async fn open(&mut self, path: &str) -> Result<()> {
        self.send(&format!("open {path}"));
        self.status().await.map(drop)
    }

    /// `seek <offset>`.
    pub async fn seek(&mut self, offset: u64) -> Result<()> {
        self.send(&format!("seek {offset}"));
        self.status().await.map(drop)
    }

    /// `close`.
    pub async fn close(&mut self) -> Result<()> {
        self.send("close");
        self.status().await.map(drop)
    }

    /// `read <size>` on the open file, appending the bytes to `buf`; returns how many came
    /// (0 at end of file).
    pub async fn read(&mut self, size: u64, buf: &mut Vec<u8>) -> Result<u64> {
        self.send(&format!("read {size}"));
        let n = self.data_header(size).await?;
        self.payload_into(n, buf).await?;
        Ok(n)
    }

    /// `pread <offset> <size> <path>`, appending the bytes to `buf`.
    pub async fn pread(
        &mut self,
        path: &str,
        offset: u64,
        size: u64,
        buf: &mut Vec<u8>,
    ) -> Result<u64> {
        self.send(&format!("pread {offset} {size} {path}"));
        let n = self.data_header(size).await?;
        self.payload_into(n, buf).await?;
        Ok(n)
    }

    /// Prove the share's password: `pake` inside TLS (the password never leaves this
    /// process), `auth <password>` in clear.
    pub async fn auth(&mut self, password: &str) -> Result<()> {
        self.auth_for("", password).await
    }

    /// Prove the password of `scope` (`""`: the share's; a path: that file's own, as offered
    /// files have). In clear, `auth` tries the password against all of them.
    pub async fn auth_for(&mut self, scope: &str, password: &str) -> Result<()> {
        if !self.is_tls() {
            self.send(&format!("auth {password}"));
            return self.status().await.map(drop);
        }
        let (session, node) = match (self.stream.get_ref().binding(), self.peer_id()) {
            (Some(Ok(session)), Some(node)) => (session, node),
            _ => return Err(self.protocol("TLS session without keying material")),
        };
        let binding = pake::Binding { session, node };
        let (proof, arg) = ClientProof::start(&Secret::from_password(password), &binding, scope);
        self.send(&format!("{} {arg}", pake::REQUEST));
        let reply = self.status().await?;
        let confirm = proof.finish(&reply).map_err(|e| match e {
            // Wrong password, or a node that is not the one whose key we checked: send nothing.
            PakeError::NodeNotProven => ClientError::Remote {
                code: Code::AuthFailed.as_u8(),
                message: e.to_string(),
            },
            other => self.protocol(other.to_string()),
        })?;
        self.send(&format!("{} {confirm}", pake::CONFIRM));
        self.status().await.map(drop)
    }

    /// `quit`, then close.
    pub async fn quit(mut self) -> Result<()> {
        self.send("quit");
        self.status().await.map(drop)
    }
}

/// A connection turned into an event stream by `subscribe`.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
}

/// A subscription with no line (not even a ping) for this long is considered dead.
pub const SUBSCRIPTION_SILENCE: Duration = Duration::from_secs(35);

impl Client {
    /// `subscribe [<since>]`: from now on this connection only carries events.
    pub async fn subscribe(self, since: Option<u64>) -> Result<Subscription> {
        self.subscribe_with(since, false).await
    }

    /// `subscribe [<since>] [reasons]`: with `reasons`, events meshfs caused itself carry why
    /// (only for a node whose `hello` says `events=reasons`).
    pub async fn subscribe_with(
        mut self,
        since: Option<u64>,
        reasons: bool,
    ) -> Result<Subscription> {
        let mut line = String::from("subscribe");
        if let Some(s) = since {
            line.push_str(&format!(" {s}"));
        }
        if reasons {
            line.push_str(" reasons");
        }
        self.send(&line);
        self.status().await?;
        self.set_timeout(SUBSCRIPTION_SILENCE);
        Ok(Subscription { client: self })
    }
}

impl Subscription {
    /// The next event or ping. Fails when the node goes away or stays silent too long.
    pub async fn next(&mut self) -> Result<crate::events::StreamLine> {
        let line = self.client.read_line().await?;
        crate::events::StreamLine::parse(&line).ok_or_else(|| {
            self.client
                .protocol(format!("malformed event line {line:?}"))
        })
    }
}
