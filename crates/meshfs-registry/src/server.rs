//! The directory server (`meshfs registry`): one TCP connection per operation, as registry.md
//! frames it.
//!
//! Each connection is one task: read the request (bounded: 256-byte fields, 2 s of silence, and
//! [`ServerConfig::request_deadline`] for the whole request), run the operation on the
//! [`Store`] on a blocking thread, write the reply, close. A malformed request is answered with
//! the operation's error code (or [`crate::op::UNKNOWN_OPERATION`]) and closed; nothing a client sends can
//! make the server wait longer than those limits.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::metrics::{Door as MetricsDoor, metrics};
use tokio_util::task::TaskTracker;

use crate::op::{OK, Operation, Request, RequestError};
use crate::store::{Outcome, Store};
use crate::wire::{FieldReader, SERVER_SILENCE, parse_number, push_field, write_all_within};

/// Limits of one directory server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Silence mid-request after which the request fails (registry.md: 2 s).
    pub silence: Duration,
    /// Longest time a whole request may take to arrive, however it trickles in.
    pub request_deadline: Duration,
    /// Longest time a client may take to read its reply.
    pub reply_timeout: Duration,
    /// Connections handled at once; further clients are closed at once (the node-wide overload
    /// rule of [`meshfs_core::accept`]).
    pub max_connections: usize,
    /// Answer requests without the course's date field with their error code, as the
    /// course's later directories do (`--require-date`; to test clients against).
    pub require_date: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            silence: SERVER_SILENCE,
            request_deadline: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(10),
            max_connections: 1024,
            require_date: false,
        }
    }
}

/// A bound directory server, ready to [`run`](DirectoryServer::run).
pub struct DirectoryServer {
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: Arc<ServerConfig>,
}

impl DirectoryServer {
    /// Bind `addr` (port 0 picks a free port; see [`DirectoryServer::local_addr`]).
    pub async fn bind(
        addr: &str,
        store: Arc<dyn Store>,
        config: ServerConfig,
    ) -> io::Result<DirectoryServer> {
        Ok(DirectoryServer {
            listener: TcpListener::bind(addr).await?,
            store,
            config: Arc::new(config),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` is cancelled; each connection is a task on `tracker`.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let (store, config) = (self.store, self.config);
        let door = Door {
            name: "directory",
            max_connections: config.max_connections,
            // The protocol's replies are per operation, read after the request: nothing to say.
            refusal: b"",
        };
        accept_loop(&self.listener, door, &shutdown, &tracker, |stream, peer| {
            let (store, config) = (store.clone(), config.clone());
            async move {
                if let Err(e) = serve(stream, peer, store, &config).await {
                    tracing::debug!(%peer, error = %e, "directory connection ended with an error");
                }
            }
        })
        .await;
    }
}

/// One connection: one request, one reply.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    store: Arc<dyn Store>,
    config: &ServerConfig,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = FieldReader::new(read, config.silence);
    reader.set_deadline(Some(tokio::time::Instant::now() + config.request_deadline));
    let reply = match Request::read_dated(&mut reader, config.require_date).await {
        // An IPv4 client of a dual-stack socket is recorded as IPv4, as peers will dial it.
        Ok(request) => {
            metrics().door(MetricsDoor::Directory).request();
            execute(store, request, peer.ip().to_canonical()).await
        }
        Err(e) => {
            log_bad_request(&e, peer);
            vec![e.code()]
        }
    };
    let sent = write_all_within(&mut write, &reply, config.reply_timeout).await;
    let _ = write.shutdown().await;
    // Let the reply reach a client that sent more than we read (see `drain`).
    reader.drain(Duration::from_millis(200), 64 * 1024).await;
    sent
}

fn log_bad_request(e: &RequestError, peer: SocketAddr) {
    tracing::info!(%peer, error = %e, "s> bad request, answered {}", e.code());
}

/// Run one well-formed request and build its reply.
async fn execute(store: Arc<dyn Store>, request: Request, ip: IpAddr) -> Vec<u8> {
    let op = request.op;
    let user = request.args.first().cloned().unwrap_or_default();
    match &request.date {
        Some(date) => tracing::info!("s> {op} FROM {user} AT {date}"),
        None => tracing::info!("s> {op} FROM {user}"),
    }
    let reply = tokio::task::spawn_blocking(move || run_on_store(&*store, &request, ip)).await;
    match reply {
        Ok(Some(reply)) => reply,
        Ok(None) => vec![op.error_code()],
        Err(e) => {
            tracing::error!(error = %e, "{op} panicked");
            vec![op.error_code()]
        }
    }
}

/// The reply to `request`, or None for the operation's error code.
fn run_on_store(store: &dyn Store, request: &Request, ip: IpAddr) -> Option<Vec<u8>> {
    let op = request.op;
    let date = request.date.as_deref();
    let a = &request.args;
    let done = |outcome: Outcome| -> Option<Vec<u8>> {
        match outcome {
            Ok(Ok(())) => Some(vec![OK]),
            Ok(Err(refusal)) => Some(vec![refusal.code()]),
            Err(e) => {
                tracing::error!(error = %e, "{op} failed");
                None
            }
        }
    };
    match op {
        Operation::Register => {
            if !valid_name(&a[0]) {
                return None;
            }
            done(store.register(&a[0], date))
        }
        Operation::Unregister => done(store.unregister(&a[0], date)),
        Operation::Connect => {
            let port = parse_number(&a[1], u16::MAX as u64).filter(|&p| p != 0)? as u16;
            done(store.connect(&a[0], ip, port, date))
        }
        Operation::Disconnect => done(store.disconnect(&a[0], date)),
        Operation::Publish => {
            if a[1].is_empty() {
                return None;
            }
            done(store.publish(&a[0], &a[1], &a[2], date))
        }
        Operation::Delete => done(store.delete(&a[0], &a[1], date)),
        Operation::ListUsers => match store.list_users(&a[0], date) {
            Ok(Ok(users)) => {
                let mut reply = vec![OK];
                push_field(&mut reply, &users.len().to_string()).ok()?;
                for u in &users {
                    push_field(&mut reply, &u.name).ok()?;
                    push_field(&mut reply, &u.ip).ok()?;
                    push_field(&mut reply, &u.port.to_string()).ok()?;
                }
                Some(reply)
            }
            other => done(other.map(|r| r.map(drop))),
        },
        Operation::ListContent => match store.list_content(&a[0], &a[1], date) {
            Ok(Ok(files)) => {
                let mut reply = vec![OK];
                push_field(&mut reply, &files.len().to_string()).ok()?;
                for f in &files {
                    push_field(&mut reply, f).ok()?;
                }
                Some(reply)
            }
            other => done(other.map(|r| r.map(drop))),
        },
    }
}

/// User names: not empty, no white space or control characters (the shell splits commands on
/// spaces, and they appear in the log). File names may be anything a field carries but empty:
/// nodes publish their files' real names, spaces included, and the shell escapes control
/// characters when it prints them.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}
