//! `Session`: one client's state (its open file and position) and the handling of each request.
//!
//! Every path goes to [`Share`]; this module only translates between protocol lines and share
//! calls. Errors become status lines; only a broken stream ends the session.

use std::io;
use std::sync::Arc;

use meshfs_core::access::{self, Access, Keys};
use meshfs_core::blocks::BlockHasher;
use meshfs_core::events::Events;
use meshfs_core::metrics::{Door, metrics};
use meshfs_core::pake::{self, NodeProof, PakeError};
use meshfs_core::proto::{self, Code, MAX_READ, PROTO_VERSION, Request};
use meshfs_core::retention::DiskStatus;
use meshfs_core::status::NodeStatus;
use meshfs_core::throttle::Attempt;
use meshfs_core::{Share, ShareError, ShareFile};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, ReadError};
use crate::subscription;
use crate::{Config, MAX_CLUSTER_PEERS, Transport};

/// The file a client opened with `open`, and where its next `read` starts.
struct OpenFile {
    file: ShareFile,
    pos: u64,
}

pub(crate) struct Session {
    conn: Connection,
    share: Share,
    config: Arc<Config>,
    transport: Arc<Transport>,
    events: Option<Events>,
    /// Whether the share's disk is full, for `hello`.
    disk: Option<DiskStatus>,
    access: Access,
    /// Passwords this connection has proven with `auth` or `pake`.
    keys: Keys,
    open: Option<OpenFile>,
    /// A `pake` proof answered and waiting for `pake-confirm`.
    pake: Option<PendingProof>,
}

/// The node's half of a `pake` answered, and the login attempt it counts against the client's
/// address. Never confirmed (the client stopped after seeing the node's half, or started
/// another), it is a failure: the client could tell from that half whether its guess was right.
struct PendingProof {
    proof: NodeProof,
    attempt: Option<Attempt>,
}

impl Drop for PendingProof {
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            attempt.failed_at(DOOR);
        }
    }
}

/// The door's name in the login throttle's log lines.
const DOOR: &str = "file server";

/// The answer to a request that needs a password not proven yet.
const PASSWORD_REQUIRED: &str = "password required: this share is protected (meshfs \
    clients: --password-file FILE or MESHFS_CLIENT_PASSWORD; the text protocol: auth PASSWORD)";
/// The answer to requests in clear on a node started with `--require-tls`.
const TLS_REQUIRED: &str =
    "this node requires TLS (meshfs clients speak it unless told --plaintext)";
/// The answer to `auth` in clear without `--allow-plaintext-auth`.
const AUTH_IN_CLEAR: &str = "auth in clear refused: the password would cross the network \
    readable; connect with TLS (meshfs clients do, and prove it with pake), or start the node \
    with --allow-plaintext-auth";

/// Count a payload of `n` bytes as sent, or as a transfer error.
fn counted(sent: io::Result<()>, n: u64) -> io::Result<()> {
    match &sent {
        Ok(()) => metrics().door(Door::FileServer).bytes_sent_total.add(n),
        Err(_) => metrics().transfer_errors_total.inc(),
    }
    sent
}

/// What to do after a request.
enum Next {
    Continue,
    Close,
}

impl Session {
    pub(crate) fn new(
        conn: Connection,
        share: Share,
        config: Arc<Config>,
        transport: Arc<Transport>,
        events: Option<Events>,
        access: Access,
        disk: Option<DiskStatus>,
    ) -> Session {
        Session {
            conn,
            share,
            config,
            transport,
            events,
            access,
            disk,
            keys: Keys::default(),
            open: None,
            pake: None,
        }
    }

    /// Serve requests until the client leaves, idles out, or the node shuts down. A request
    /// already received is always answered before shutdown closes the connection.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> io::Result<()> {
        loop {
            let deadline = Instant::now() + self.config.idle_timeout;
            let line = if self.conn.has_buffered_request() {
                self.conn.next_line(deadline).await
            } else {
                tokio::select! {
                    res = self.conn.next_line(deadline) => res,
                    _ = shutdown.cancelled() => break,
                }
            };
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(ReadError::TooLong) => {
                    self.conn.status(Code::BadRequest.as_u8(), "line too long");
                    return self.conn.linger_close().await;
                }
                Err(ReadError::Idle) => {
                    tracing::debug!("closing idle connection");
                    break;
                }
                Err(ReadError::Io(e)) => return Err(e),
            };
            if let Ok(req @ Request::Subscribe { since, reasons }) = Request::parse(&line)
                && let Some(events) = self.events.clone()
                && !self.needs_tls(&req)
                && self.access.may_browse(&self.keys)
            {
                // The connection now carries events until the client leaves.
                return subscription::serve(&mut self.conn, &events, since, reasons, &shutdown)
                    .await;
            }
            match self.handle(&line).await? {
                Next::Continue => {}
                Next::Close => break,
            }
        }
        self.conn.flush().await
    }

    /// True when `req` arrived in clear on a node that requires TLS for it.
    fn needs_tls(&self, req: &Request<'_>) -> bool {
        self.transport.require_tls
            && !self.conn.is_tls()
            && !matches!(req, Request::Hello | Request::Help | Request::Quit)
    }

    /// Does this connection's proven passwords allow `req`? Browsing needs the share's
    /// password; content (`open`, `pread`, `hash`) is checked by [`Session::open_checked`]
    /// against the file actually opened.
    fn permitted(&self, req: &Request<'_>) -> bool {
        match req {
            Request::Stat(_) | Request::List(_) | Request::Ls(_) | Request::Subscribe { .. } => {
                self.access.may_browse(&self.keys)
            }
            _ => true,
        }
    }

    /// Open `path` for this connection: the file's rule checked on the file opened.
    fn open_checked(&mut self, path: &str) -> Option<ShareFile> {
        match self.access.open_file(&self.share, path, &self.keys) {
            Ok(file) => Some(file),
            Err(access::ReadError::Locked) => {
                self.error(Code::AuthRequired, PASSWORD_REQUIRED);
                None
            }
            Err(access::ReadError::Share(e)) => {
                self.share_error(e);
                None
            }
        }
    }

    fn error(&mut self, code: Code, text: &str) {
        self.conn.status(code.as_u8(), text);
    }

    /// `hash-prefix`/`blocks` of more bytes than the file holds (it shrank, or was replaced).
    fn fewer_bytes(&mut self, size: u64) {
        self.error(
            Code::BadRequest,
            &format!("the file holds fewer than {size} bytes"),
        );
    }

    fn share_error(&mut self, err: ShareError) {
        if let ShareError::Io(e) = &err {
            tracing::warn!(error = %e, "I/O error serving a request");
        }
        self.conn.status(err.code().as_u8(), &err.to_string());
    }

    async fn handle(&mut self, line: &[u8]) -> io::Result<Next> {
        let req = match Request::parse(line) {
            Ok(req) => req,
            Err(bad) => {
                self.error(Code::BadRequest, bad.0);
                return Ok(Next::Continue);
            }
        };
        if self.needs_tls(&req) {
            self.error(Code::Denied, TLS_REQUIRED);
            return Ok(Next::Continue);
        }
        if !self.permitted(&req) {
            self.error(Code::AuthRequired, PASSWORD_REQUIRED);
            return Ok(Next::Continue);
        }
        metrics().door(Door::FileServer).requests_total.inc();
        match req {
            Request::Status => {
                self.conn.status(0, "OK");
                NodeStatus::current(&self.config.name).write(self.conn.out());
            }
            Request::ClusterPeers => {
                self.conn.status(0, "OK");
                let out = self.conn.out();
                for peer in self.config.cluster_peers.iter().take(MAX_CLUSTER_PEERS) {
                    out.extend_from_slice(peer.as_bytes());
                    out.push(b'\n');
                }
                out.push(b'\n');
            }
            Request::Hello => {
                let mut text = format!(
                    "meshfs {} node={} proto={PROTO_VERSION}",
                    meshfs_core::VERSION,
                    self.config.name
                );
                // Words old clients ignore: `subscribe … reasons` is understood here, and
                // the share's disk is full (the node still serves).
                if self.events.is_some() {
                    text.push_str(" events=reasons");
                }
                if let Some(word) = self.disk.as_ref().and_then(|d| d.hello_word()) {
                    text.push(' ');
                    text.push_str(word);
                }
                self.conn.status(0, &text);
            }
            Request::Open(path) => {
                if self.open.is_some() {
                    self.error(Code::AlreadyOpen, "a file is already open");
                } else if let Some(file) = self.open_checked(path) {
                    self.open = Some(OpenFile { file, pos: 0 });
                    self.conn.status(0, "OK");
                }
            }
            Request::Read(size) => {
                let Some(open) = self.open.as_mut() else {
                    self.error(Code::NotOpen, "no file is open");
                    return Ok(Next::Continue);
                };
                let len = open.file.len()?;
                let n = size.min(MAX_READ).min(len.saturating_sub(open.pos));
                let pos = open.pos;
                open.pos += n;
                let file = &self.open.as_ref().expect("checked above").file;
                counted(self.conn.data(file.as_file(), pos, n).await, n)?;
            }
            Request::Seek(offset) => match self.open.as_mut() {
                Some(open) => {
                    open.pos = offset;
                    self.conn.status(0, "OK");
                }
                None => self.error(Code::NotOpen, "no file is open"),
            },
            Request::Close => {
                if self.open.take().is_some() {
                    self.conn.status(0, "OK");
                } else {
                    self.error(Code::NotOpen, "no file is open");
                }
            }
            Request::Pread { offset, size, path } => {
                if let Some(file) = self.open_checked(path) {
                    let len = file.len()?;
                    let n = size.min(MAX_READ).min(len.saturating_sub(offset));
                    counted(self.conn.data(file.as_file(), offset, n).await, n)?;
                }
            }
            Request::Stat(path) => match self.share.stat(path) {
                Ok(entry) => {
                    self.conn.status(0, "OK");
                    proto::write_stat(self.conn.out(), &entry);
                }
                Err(e) => self.share_error(e),
            },
            Request::List(dir) | Request::Ls(dir) => {
                let seed_format = matches!(req, Request::List(_));
                let share = self.share.clone();
                let dir = dir.to_owned();
                let listing = tokio::task::spawn_blocking(move || share.list(&dir))
                    .await
                    .map_err(io::Error::other)?;
                match listing {
                    Ok(entries) => {
                        self.conn.status(0, "OK");
                        let out = self.conn.out();
                        for e in &entries {
                            if seed_format {
                                out.extend_from_slice(e.name.as_bytes());
                                if e.kind == meshfs_core::Kind::Dir {
                                    out.push(b'/');
                                }
                                out.push(b'\n');
                            } else {
                                proto::write_ls_line(out, e);
                            }
                        }
                        // The seed's `list` ends with two empty lines; `ls` with one.
                        out.extend_from_slice(if seed_format { b"\n\n" } else { b"\n" });
                    }
                    Err(e) => self.share_error(e),
                }
            }
            Request::Hash(path) => {
                let Some(file) = self.open_checked(path) else {
                    return Ok(Next::Continue);
                };
                let share = self.share.clone();
                let hash = tokio::task::spawn_blocking(move || share.hash_file(&file))
                    .await
                    .map_err(io::Error::other)?;
                match hash {
                    Ok(h) => self.conn.status(0, h.to_hex().as_str()),
                    Err(e) => self.share_error(e),
                }
            }
            Request::HashPrefix { size, path } => {
                let Some(file) = self.open_checked(path) else {
                    return Ok(Next::Continue);
                };
                let share = self.share.clone();
                let hash = tokio::task::spawn_blocking(move || share.hash_prefix(&file, size))
                    .await
                    .map_err(io::Error::other)?;
                match hash {
                    Ok(Some(h)) => self.conn.status(0, h.to_hex().as_str()),
                    Ok(None) => self.fewer_bytes(size),
                    Err(e) => self.share_error(e),
                }
            }
            Request::Blocks { size, path } => {
                if let Err(e) = BlockHasher::new(size) {
                    self.error(Code::BadRequest, &e.to_string());
                    return Ok(Next::Continue);
                }
                let Some(file) = self.open_checked(path) else {
                    return Ok(Next::Continue);
                };
                let share = self.share.clone();
                let list = tokio::task::spawn_blocking(move || share.block_hashes(&file, size))
                    .await
                    .map_err(io::Error::other)?;
                match list {
                    Ok(Some(list)) => {
                        let bytes = list.as_bytes();
                        self.conn.status(0, &bytes.len().to_string());
                        self.conn.queue(bytes);
                    }
                    Ok(None) => self.fewer_bytes(size),
                    Err(e) => self.share_error(e),
                }
            }
            Request::Auth(password) => {
                if !self.conn.is_tls() && !self.transport.plaintext_auth {
                    self.error(Code::Denied, AUTH_IN_CLEAR);
                } else if !self.access.is_protected() {
                    self.error(Code::BadRequest, "this node has no password");
                } else {
                    let Some(attempt) = self.begin_login() else {
                        return Ok(Next::Close);
                    };
                    if self.access.authenticate(password, &mut self.keys) {
                        attempt.succeeded();
                        self.conn.status(0, "OK");
                        return Ok(Next::Continue);
                    }
                    let locked = attempt.failed_at(DOOR);
                    self.error(Code::AuthFailed, "authentication failed");
                    if locked {
                        return Ok(Next::Close);
                    }
                }
            }
            Request::Pake(arg) => return Ok(self.pake_start(arg)),
            Request::PakeConfirm(arg) => return Ok(self.pake_confirm(arg)),
            Request::Subscribe { .. } => {
                self.error(Code::BadRequest, "this node does not watch its share")
            }
            Request::Help => {
                self.conn.status(0, "OK");
                self.conn.queue(proto::HELP.as_bytes());
                self.conn.queue(b"\n");
            }
            Request::Quit => {
                self.conn.status(0, "bye");
                return Ok(Next::Close);
            }
        }
        Ok(Next::Continue)
    }

    /// Count a login attempt against the client's address (the node's one throttle, shared
    /// with FTP and the web). `None`, answered with how long to wait, while it is locked out.
    fn begin_login(&mut self) -> Option<Attempt> {
        let ip = self.conn.peer_ip();
        match self.access.throttle().begin_at(DOOR, ip) {
            Ok(attempt) => Some(attempt),
            Err(wait) => {
                let text = format!(
                    "too many wrong passwords from {ip}: logins refused for {}s more; wait, \
                     then prove the right password",
                    wait.as_secs().max(1)
                );
                self.error(Code::AuthFailed, &text);
                None
            }
        }
    }

    /// `pake <msg>[ <path>]`: answer the first half of a password proof (see
    /// [`meshfs_core::pake`]). Counted as a failed attempt until confirmed.
    fn pake_start(&mut self, arg: &str) -> Next {
        self.pake = None;
        let (Some(binding), Some(tls)) = (self.conn.binding(), &self.transport.tls) else {
            self.error(
                Code::Denied,
                "pake needs TLS (its proof is bound to the TLS session)",
            );
            return Next::Continue;
        };
        let node = tls.id;
        let request = match pake::Request::parse(arg) {
            Ok(r) => r,
            Err(e) => {
                self.error(Code::BadRequest, &e.to_string());
                return Next::Continue;
            }
        };
        let Some(secret) = self.access.pake_secret(&request.scope) else {
            if request.scope.is_empty() {
                self.error(Code::BadRequest, "this node has no password");
            } else {
                self.error(Code::NotFound, "no password protects that path");
            }
            return Next::Continue;
        };
        let Some(attempt) = self.begin_login() else {
            return Next::Close;
        };
        let binding = pake::Binding {
            session: binding,
            node,
        };
        match NodeProof::respond(&secret, &binding, &request) {
            Ok((proof, reply)) => {
                self.pake = Some(PendingProof {
                    proof,
                    attempt: Some(attempt),
                });
                self.conn.status(0, &reply);
            }
            Err(e) => self.error(Code::BadRequest, &e.to_string()),
        }
        Next::Continue
    }

    /// `pake-confirm <msg>`: the client's half; on success the password is proven.
    fn pake_confirm(&mut self, arg: &str) -> Next {
        let Some(mut pending) = self.pake.take() else {
            self.error(Code::NotOpen, "no pake in progress");
            return Next::Continue;
        };
        match pending.proof.confirm(arg) {
            Ok(scope) => {
                if let Some(attempt) = pending.attempt.take() {
                    attempt.succeeded();
                }
                if self.access.grant(&scope, &mut self.keys) {
                    self.conn.status(0, "OK");
                } else {
                    self.error(Code::AuthFailed, "authentication failed");
                }
            }
            Err(PakeError::Failed | PakeError::Malformed(_) | PakeError::NodeNotProven) => {
                let locked = pending
                    .attempt
                    .take()
                    .is_some_and(|attempt| attempt.failed_at(DOOR));
                self.error(Code::AuthFailed, "authentication failed");
                if locked {
                    return Next::Close;
                }
            }
        }
        Next::Continue
    }
}
