//! `Client`: one connection to a node's file server, speaking protocols.md §1.
//!
//! Every read from the socket is bounded in size (status and listing lines are capped at
//! [`MAX_LINE`]) and in time (a peer that stalls mid-reply yields
//! [`ClientError::Timeout`] instead of a hang). Requests can be pipelined: [`Client::send`] queues
//! a request without waiting, and replies are read in order.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::proto::{self, Code, MAX_LINE};
use crate::share::Entry;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on any single wait for the peer (a stalled peer is an error, not a hang).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
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
        !matches!(self, ClientError::Remote { .. })
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
}

/// One connection to a file server.
#[derive(Debug)]
pub struct Client {
    stream: BufReader<TcpStream>,
    addr: String,
    timeout: Duration,
    /// Requests queued by [`Client::send`] but not yet written.
    out: Vec<u8>,
}

/// What a client proves to a node on every new connection: for now the share password
/// (`auth`); the node's TLS identity and ours will be added here, so every consumer that
/// carries `Credentials` gets them without a change of its own.
///
/// `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    password: Option<String>,
}

impl Credentials {
    /// Nothing to prove (an open node).
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Prove `password` with `auth` after connecting.
    pub fn password(password: impl Into<String>) -> Credentials {
        Credentials {
            password: Some(password.into()),
        }
    }

    /// True when there is nothing to prove.
    pub fn is_empty(&self) -> bool {
        self.password.is_none()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
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
    pub async fn connect_with(addr: &str, credentials: &Credentials) -> Result<Client> {
        let mut client = Client::connect_tcp(addr).await?;
        if let Some(password) = &credentials.password {
            client.auth(password).await?;
        }
        Ok(client)
    }

    async fn connect_tcp(addr: &str) -> Result<Client> {
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
        Ok(Client {
            stream: BufReader::with_capacity(256 << 10, stream),
            addr: addr.to_owned(),
            timeout: IO_TIMEOUT,
            out: Vec::new(),
        })
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
        let res = tokio::time::timeout(self.timeout, stream.write_all(&out)).await;
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
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                return Ok(lines);
            }
            if lines.len() >= MAX_ENTRIES {
                return Err(self.protocol("listing too long"));
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
            }
        }
        Ok(info)
    }

    /// `stat <path>`.
    pub async fn stat(&mut self, path: &str) -> Result<Entry> {
        self.send(&format!("stat {path}"));
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

    /// `auth <password>`.
    pub async fn auth(&mut self, password: &str) -> Result<()> {
        self.send(&format!("auth {password}"));
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
    pub async fn subscribe(mut self, since: Option<u64>) -> Result<Subscription> {
        match since {
            Some(s) => self.send(&format!("subscribe {s}")),
            None => self.send("subscribe"),
        }
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
