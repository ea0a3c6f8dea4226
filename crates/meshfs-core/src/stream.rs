//! `Stream`: one TCP connection, in clear or inside TLS, behind one `AsyncRead + AsyncWrite`.
//!
//! The file server speaks the same protocol both ways on one port, and clients speak TLS to
//! new nodes and clear text to old ones (`--plaintext`), so the code that frames requests and
//! replies takes a `Stream` and does not care which it is. What does care asks: `sendfile` only
//! works on the plain socket ([`Stream::plain`]), and a password proof needs the session's
//! keying material ([`Stream::binding`]). A client's TLS connection may hand its records over
//! to [`tls::Records`] for a bulk download ([`Stream::into_records`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::identity::NodeId;
use crate::tls::{self, TlsError};

/// A connection, plain or TLS (client or server side).
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A client's TLS connection after [`Stream::into_records`].
    Records(Box<tls::Records>),
}

impl Stream {
    /// The TCP socket underneath (addresses, socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::TlsClient(s) => s.get_ref().0,
            Stream::TlsServer(s) => s.get_ref().0,
            Stream::Records(s) => s.tcp(),
        }
    }

    /// The socket when nothing wraps it (so bytes may go to it directly, as `sendfile` does).
    pub fn plain(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            _ => None,
        }
    }

    /// True inside TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// The ID of the peer's certificate (`None` in clear, or for a client that showed none).
    pub fn peer_id(&self) -> Option<NodeId> {
        match self {
            Stream::Plain(_) => None,
            Stream::TlsClient(s) => tls::peer_id(s.get_ref().1),
            Stream::TlsServer(s) => tls::peer_id(s.get_ref().1),
            Stream::Records(s) => s.peer_id(),
        }
    }

    /// The TLS session's exported keying material (see [`tls::session_binding`]); `None` in
    /// clear.
    pub fn binding(&self) -> Option<Result<[u8; 32], TlsError>> {
        match self {
            Stream::Plain(_) => None,
            Stream::TlsClient(s) => Some(tls::session_binding(s.get_ref().1)),
            Stream::TlsServer(s) => Some(tls::session_binding(s.get_ref().1)),
            Stream::Records(s) => Some(Ok(s.binding())),
        }
    }

    /// Can [`Stream::into_records`] take this connection over? A client's TLS connection
    /// between replies ([`tls::records::ready_to_hand_over`]); never one in clear or a
    /// server's.
    pub fn can_hand_over_records(&mut self) -> bool {
        match self {
            Stream::TlsClient(s) => tls::records::ready_to_hand_over(s.get_mut().1),
            _ => false,
        }
    }

    /// This client TLS connection with its records opened and sealed by [`tls::Records`]
    /// (fewer copies and system calls per byte than rustls's buffered connection); any other
    /// stream as it is. Ask [`Stream::can_hand_over_records`] first: a refusal here loses the
    /// connection.
    pub fn into_records(self) -> io::Result<Stream> {
        match self {
            Stream::TlsClient(s) => Ok(Stream::Records(Box::new(tls::Records::from_client(*s)?))),
            other => Ok(other),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Records(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Records(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Records(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::TlsClient(s) => s.is_write_vectored(),
            Stream::TlsServer(s) => s.is_write_vectored(),
            Stream::Records(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Records(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Records(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Does the client on `tcp` open with TLS? Peeks at its first byte without consuming it;
/// `false` at end of stream. Waits for that byte, so callers bound it with their idle timeout
/// (the text protocol, like TLS, has the client speak first, so waiting is safe).
pub async fn opens_with_tls(tcp: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    Ok(n == 1 && tls::looks_like_tls(first[0]))
}

/// Longest TLS handshake once its first byte arrived.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server's side of a new connection on a port that speaks both ways: inside TLS when the
/// client opens with a handshake and `tls` is given, else in clear. The first byte must come
/// within `first_byte` (the door's idle timeout), the handshake within [`HANDSHAKE_TIMEOUT`]; a
/// client the TLS configuration refuses (mutual TLS, `--allow`) ends here with an error.
pub async fn accept(
    tcp: TcpStream,
    tls: Option<&tls::TlsAcceptor>,
    first_byte: std::time::Duration,
) -> io::Result<Stream> {
    let Some(acceptor) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    match tokio::time::timeout(first_byte, opens_with_tls(&tcp)).await {
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "idle before the first byte",
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(false)) => Ok(Stream::Plain(tcp)),
        Ok(Ok(true)) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(Stream::TlsServer(Box::new(s))),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake refused");
                Err(e)
            }
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::tls::{ClientAuth, TlsAcceptor, TlsConnector};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// One listener serving both ways by sniffing the first byte, as the file server does:
    /// echoes one line prefixed with how it came.
    async fn serve(listener: TcpListener, node: Identity) {
        let acceptor = TlsAcceptor::from(tls::server_config(&node, ClientAuth::Offer).unwrap());
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = if opens_with_tls(&tcp).await.unwrap() {
                Stream::TlsServer(Box::new(acceptor.accept(tcp).await.unwrap()))
            } else {
                Stream::Plain(tcp)
            };
            let how = if stream.is_tls() { "tls" } else { "plain" };
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let reply = format!("{how} {line}");
            stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
            stream.get_mut().shutdown().await.unwrap();
        }
    }

    #[tokio::test]
    async fn one_port_tells_tls_from_text() {
        let node = Identity::generate("cam1").unwrap();
        let id = node.id();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(serve(listener, node));

        let mut plain = BufReader::new(Stream::Plain(TcpStream::connect(&addr).await.unwrap()));
        plain.get_mut().write_all(b"hello\n").await.unwrap();
        let mut line = String::new();
        plain.read_line(&mut line).await.unwrap();
        assert_eq!(line, "plain hello\n");
        assert!(plain.get_ref().binding().is_none() && plain.get_ref().peer_id().is_none());

        let tcp = TcpStream::connect(&addr).await.unwrap();
        let config = tls::client_config(None, Some(id)).unwrap();
        let tls = TlsConnector::from(config)
            .connect(tls::server_name(&addr), tcp)
            .await
            .unwrap();
        let mut secure = BufReader::new(Stream::TlsClient(Box::new(tls)));
        assert_eq!(secure.get_ref().peer_id(), Some(id));
        assert!(secure.get_ref().binding().unwrap().is_ok());
        secure.get_mut().write_all(b"hello\n").await.unwrap();
        let mut line = String::new();
        secure.read_line(&mut line).await.unwrap();
        assert_eq!(line, "tls hello\n");
        server.await.unwrap();
    }
}
