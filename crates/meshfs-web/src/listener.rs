//! `WebListener`: the web UI's one port, answering HTTPS with the node's certificate and,
//! unless told otherwise, plain HTTP beside it.
//!
//! A browser opening `https://` sends a TLS ClientHello first (a handshake record, byte 0x16),
//! one opening `http://` sends a request line (a letter): the first byte tells them apart, as
//! on the file server, so one address serves both and the URL a camera owner already knows
//! keeps working. Each accepted connection is sniffed and, for TLS, shaken hands with in a
//! task of its own (a slow or silent client never holds up the others), bounded in time
//! ([`FIRST_BYTE`], [`HANDSHAKE`]) and in number ([`MAX_PENDING`]); ready connections go to
//! axum through [`axum::serve::Listener`], each with its [`Conn`] (address, and whether it
//! is TLS), so no HTTP server of our own and no new dependency is needed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use meshfs_core::metrics::{Door, Held, metrics};
use meshfs_core::stream::{Stream, opens_with_tls};
use meshfs_core::tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for a client's first byte (browsers open spare connections ahead of need).
pub const FIRST_BYTE: Duration = Duration::from_secs(30);
/// Longest TLS handshake once it started.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// Most connections being sniffed or shaken hands with at once; past it, accepting waits
/// (the kernel's backlog holds the rest).
pub const MAX_PENDING: usize = 256;

/// Which protocols the web UI's port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Https {
    /// Plain HTTP only (no identity, or `--no-web-tls`): no login form anywhere.
    Off,
    /// Both on one port (the default with an identity): HTTPS, where the login form is, and
    /// plain HTTP for what no password protects.
    #[default]
    Offer,
    /// HTTPS only (`--web-tls`): a plain HTTP request is redirected to HTTPS.
    Only,
}

/// Who is at the other end of a connection: what handlers learn through `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// The client's address (failed logins are counted by it).
    pub addr: SocketAddr,
    /// True inside TLS.
    pub secure: bool,
}

impl Connected<IncomingStream<'_, WebListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, WebListener>) -> Conn {
        *stream.remote_addr()
    }
}

/// Connections ready for HTTP, fed by the accept task.
pub struct WebListener {
    local: SocketAddr,
    tls: bool,
    ready: mpsc::Receiver<(Stream, Conn)>,
}

impl WebListener {
    /// Accept on `listener` until `shutdown`, on `tracker`. With `tls`, connections opening
    /// with a TLS handshake are served inside it, the others in clear.
    pub fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<WebListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let secure = tls.is_some();
        tracker.spawn(accept_loop(listener, tls, tx, shutdown, tracker.clone()));
        Ok(WebListener {
            local,
            tls: secure,
            ready,
        })
    }
}

impl Listener for WebListener {
    type Io = Counted;
    type Addr = Conn;

    async fn accept(&mut self) -> (Counted, Conn) {
        match self.ready.recv().await {
            Some((stream, conn)) => (
                Counted {
                    stream,
                    _open: metrics().door(Door::Web).connections_open.hold(),
                },
                conn,
            ),
            // The accept loop ended (shutdown): axum stops asking once it sees shutdown too.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Conn> {
        Ok(Conn {
            addr: self.local,
            secure: self.tls,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ready: mpsc::Sender<(Stream, Conn)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = pending.clone().acquire_owned() => p.expect("never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, say: give connections time to close rather than spin.
                tracing::warn!(error = %e, "web UI: accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        metrics().door(Door::Web).connections_total.inc();
        let Some(acceptor) = tls.clone() else {
            drop(permit);
            let conn = Conn {
                addr,
                secure: false,
            };
            if ready.send((Stream::Plain(tcp), conn)).await.is_err() {
                return;
            }
            continue;
        };
        let (ready, shutdown) = (ready.clone(), shutdown.clone());
        tracker.spawn(async move {
            let opened = tokio::select! {
                _ = shutdown.cancelled() => return,
                o = open(tcp, acceptor) => o,
            };
            drop(permit);
            match opened {
                Ok(stream) => {
                    let conn = Conn {
                        addr,
                        secure: stream.is_tls(),
                    };
                    let _ = ready.send((stream, conn)).await;
                }
                Err(e) => tracing::debug!(%addr, error = %e, "web UI: no connection"),
            }
        });
    }
}

/// A connection axum serves, counted in the web door's `meshfs_connections_open` for as long
/// as axum holds it (a keep-alive connection stays counted while idle, as on the other doors).
pub struct Counted {
    stream: Stream,
    _open: Held,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The connection as the client opens it: inside TLS when it starts a handshake.
async fn open(tcp: TcpStream, acceptor: TlsAcceptor) -> std::io::Result<Stream> {
    let timed_out = |what| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
    let is_tls = tokio::time::timeout(FIRST_BYTE, opens_with_tls(&tcp))
        .await
        .map_err(|_| timed_out("no request"))??;
    if !is_tls {
        return Ok(Stream::Plain(tcp));
    }
    match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::TlsServer(Box::new(tls))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(timed_out("TLS handshake")),
    }
}

/// The TLS configuration of the web UI: the node's certificate, no client certificate asked
/// (a browser would show a picker), HTTP/1.1 announced.
pub fn acceptor(
    identity: &meshfs_core::Identity,
) -> Result<TlsAcceptor, meshfs_core::tls::TlsError> {
    let base = meshfs_core::tls::server_config(identity, meshfs_core::tls::ClientAuth::None)?;
    let mut config = (*base).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
