//! Bounding the FTP control channel.
//!
//! libunftp's control-channel codec buffers a command until its line break with no limit, so a
//! client sending an endless line would grow the node's memory without end. libunftp only
//! accepts a `tokio::net::TcpStream`, so we cannot wrap the socket in a bounded reader; instead
//! each control connection is relayed through a private loopback connection, and the relay
//! refuses (`500`, then close) any line longer than [`MAX_COMMAND_LINE`]. Only the small control
//! traffic takes this detour; data connections go straight to libunftp's passive listeners.
//!
//! Because libunftp then sees a loopback connection, passive data ports are bound (by
//! [`BindOn`]) on the address the client really reached, and `PASV` replies name that address.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Longest control line accepted: a command word and a path of up to 4096 bytes, with margin.
pub const MAX_COMMAND_LINE: usize = 8192;

/// Relay `outer` through a fresh loopback connection; returns libunftp's end of it.
pub(crate) async fn relay(outer: TcpStream) -> io::Result<TcpStream> {
    let loopback: IpAddr = match outer.local_addr()?.ip() {
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };
    let listener = TcpListener::bind((loopback, 0)).await?;
    let addr = listener.local_addr()?;
    let (ours, accepted) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(TcpStream::connect(addr), listener.accept())
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "loopback relay"))?;
    let ours = ours?;
    let (theirs, peer) = accepted?;
    // The listener lived for one connect, but anyone on this machine could have raced us.
    if peer != ours.local_addr()? {
        return Err(io::Error::other("unexpected connection on the relay"));
    }
    let _ = ours.set_nodelay(true);
    let _ = theirs.set_nodelay(true);
    let _ = outer.set_nodelay(true);
    tokio::spawn(pump(outer, ours));
    Ok(theirs)
}

/// Copy both ways until either side closes, enforcing the line limit on the client's side.
async fn pump(outer: TcpStream, inner: TcpStream) {
    let (mut outer_r, mut outer_w) = outer.into_split();
    let (mut inner_r, mut inner_w) = inner.into_split();
    let mut down = Box::pin(tokio::io::copy(&mut inner_r, &mut outer_w));
    let up = async {
        let mut buf = vec![0u8; 4096];
        let mut line = 0usize;
        loop {
            let n = outer_r.read(&mut buf).await?;
            if n == 0 {
                // The client is gone: let libunftp see it and close its side.
                inner_w.shutdown().await?;
                return Ok::<bool, io::Error>(false);
            }
            for &b in &buf[..n] {
                line = if b == b'\n' { 0 } else { line + 1 };
                if line > MAX_COMMAND_LINE {
                    return Ok(true);
                }
            }
            inner_w.write_all(&buf[..n]).await?;
        }
    };
    let too_long = tokio::select! {
        r = up => r.unwrap_or(false),
        _ = &mut down => return,
    };
    if too_long {
        drop(down);
        tracing::info!("FTP client sent an overlong command line: closed");
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            outer_w.write_all(b"500 Command line too long\r\n"),
        )
        .await;
        // Lingering close: closing with unread input would reset the connection and could
        // destroy the reply before the client reads it. Discard input briefly instead.
        let _ = outer_w.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut sink = [0u8; 4096];
            while matches!(outer_r.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(5), down).await;
    }
}

/// Binds passive data ports on the address the client reached (not the relay's loopback).
#[derive(Debug)]
pub(crate) struct BindOn(pub(crate) IpAddr);

#[async_trait]
impl libunftp::options::Binder for BindOn {
    async fn bind(&mut self, _relay: IpAddr, ports: RangeInclusive<u16>) -> io::Result<TcpSocket> {
        let (lo, hi) = (*ports.start() as u64, *ports.end() as u64);
        let span = hi - lo + 1;
        let mut last = io::Error::other("no free passive port");
        for _ in 0..64 {
            let port = (lo + random() % span) as u16;
            let socket = match self.0 {
                IpAddr::V4(_) => TcpSocket::new_v4()?,
                IpAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            match socket.bind(SocketAddr::new(self.0, port)) {
                Ok(()) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A random number from the standard library's per-process random hasher keys.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}
