//! Bounding the FTP control channel, also inside TLS.
//!
//! libunftp's control-channel codec buffers a command until its line break with no limit, so a
//! client sending an endless line would grow the node's memory without end. libunftp only
//! accepts a `tokio::net::TcpStream`, so we cannot wrap the socket in a bounded reader; instead
//! each control connection is relayed through a private loopback connection, and the relay
//! refuses (`500`, then close) any line longer than [`MAX_COMMAND_LINE`]. Only the small control
//! traffic takes this detour; data connections go straight to libunftp's passive listeners.
//!
//! Explicit FTPS (`AUTH TLS`, RFC 4217) would hide the lines from a relay that only copies
//! bytes, and the bound would be gone for exactly the clients that ask for TLS (before they log
//! in). So the relay terminates the control channel's TLS itself: it answers `AUTH TLS` (`234`),
//! accepts the client's handshake with the node's certificate, and goes on passing whole,
//! bounded plaintext lines to libunftp over the loopback connection. (Letting libunftp do the
//! handshake behind a second TLS session on loopback was tried: libunftp switches to TLS only
//! some time after sending `234`, and a ClientHello arriving before then is read as a command.)
//! libunftp never learns the control channel is secure, so what depends on that is done here:
//! `--ftp-require-tls` refuses `USER` and `PASS` in clear with `534`. `PBSZ`/`PROT P` and the
//! encrypted data channels are libunftp's own (it has the same certificate), and it refuses
//! transfers without `PROT P` when TLS is required.
//!
//! Because libunftp then sees a loopback connection, passive data ports are bound (by
//! [`BindOn`]) on the address the client really reached, and `PASV` replies name that address.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meshfs_core::tls::{ServerConfig, TlsAcceptor};

use crate::notes::{ANONYMOUS_WRITE, Notes};
use crate::order::Order;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Longest control line accepted: a command word and a path of up to 4096 bytes, with margin.
pub const MAX_COMMAND_LINE: usize = 8192;

/// How long the client's TLS handshake after `AUTH TLS` may take.
const HANDSHAKE: Duration = Duration::from_secs(15);

/// What the relay does about TLS on the control channel.
#[derive(Clone)]
pub(crate) struct RelayTls {
    /// Presented to the FTP client (the node's certificate).
    pub(crate) config: Arc<ServerConfig>,
    /// Refuse `USER` and `PASS` before `AUTH TLS` (`--ftp-require-tls`).
    pub(crate) required: bool,
}

/// Relay `outer` through a fresh loopback connection; returns libunftp's end of it. With
/// `tls`, the relay answers `AUTH TLS` itself (see the module doc); `notes` are the session's
/// (an anonymous upload is refused here, refusals are told as what they are).
pub(crate) async fn relay(
    outer: TcpStream,
    tls: Option<RelayTls>,
    notes: Notes,
) -> io::Result<TcpStream> {
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
    tokio::spawn(pump(outer, ours, tls, notes));
    Ok(theirs)
}

/// How one phase of relaying ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Either side closed (or failed).
    Closed,
    /// The client sent a line longer than [`MAX_COMMAND_LINE`].
    TooLong,
    /// The client asked for `AUTH TLS` and was told `234`: its handshake comes next.
    Upgrade,
}

/// The control channel's state as the relay sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No FTPS on this server: every line goes to libunftp.
    NoTls,
    /// FTPS offered, not yet started (`required`: logins are refused until it is).
    Clear { required: bool },
    /// Inside TLS.
    Secure,
}

/// Relay until either side closes, enforcing the line limit on the client's side, in clear
/// and then, after `AUTH TLS`, inside TLS.
async fn pump(mut outer: TcpStream, mut inner: TcpStream, tls: Option<RelayTls>, notes: Notes) {
    let phase = match &tls {
        None => Phase::NoTls,
        Some(t) => Phase::Clear {
            required: t.required,
        },
    };
    let end = shuttle(&mut outer, &mut inner, phase, &notes)
        .await
        .unwrap_or(End::Closed);
    match (end, tls) {
        (End::TooLong, _) => refuse(&mut outer).await,
        (End::Upgrade, Some(tls)) => {
            let accepted =
                tokio::time::timeout(HANDSHAKE, TlsAcceptor::from(tls.config).accept(outer)).await;
            let mut outer = match accepted {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "FTP client's TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("FTP client's TLS handshake timed out");
                    return;
                }
            };
            match shuttle(&mut outer, &mut inner, Phase::Secure, &notes).await {
                Ok(End::TooLong) => refuse(&mut outer).await,
                _ => {
                    let _ = outer.shutdown().await;
                }
            }
        }
        _ => {}
    }
}

/// Copy both ways, passing the client's input on in whole lines of at most
/// [`MAX_COMMAND_LINE`] bytes. With TLS offered, `AUTH TLS` is answered here and ends the phase
/// with [`End::Upgrade`]; when TLS is required, `USER` and `PASS` in clear are refused here.
/// An anonymous user's upload is refused here, before libunftp answers `150` and takes the
/// bytes; libunftp's refusals are passed on as `notes` describe them.
///
/// Replies come in the order of the commands ([`Order`]): libunftp gets one command at a time
/// (it answers some, `PASS` and `CWD` among them, after a command pipelined behind them), the
/// relay's own replies keep their place among libunftp's, and a command whose answer depends
/// on the session (`STOR` by whom? `AUTH TLS` after what?) waits, with the client's input
/// behind it, until libunftp has answered every command before it.
async fn shuttle<O, I>(outer: &mut O, inner: &mut I, phase: Phase, notes: &Notes) -> io::Result<End>
where
    O: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = vec![0u8; 4096];
    let mut down = vec![0u8; 4096];
    let mut lines = Lines {
        phase,
        notes,
        // libunftp greets a new connection; after `AUTH TLS` it says nothing new.
        order: Order::new(phase != Phase::Secure),
        input: Vec::new(),
        waiting: false,
    };
    // libunftp's current, incomplete reply line.
    let mut reply: Vec<u8> = Vec::new();
    // Set when the client has closed: libunftp's last words are passed on until then.
    let mut drain: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            r = outer.read(&mut up), if !lines.waiting && drain.is_none() => {
                let n = r?;
                if n == 0 {
                    // The client is gone: let libunftp see it, pass on its last words.
                    inner.shutdown().await?;
                    drain = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    continue;
                }
                lines.input.extend_from_slice(&up[..n]);
            }
            r = inner.read(&mut down) => {
                let n = r?;
                if n == 0 {
                    outer.write_all(&reply).await?;
                    return Ok(End::Closed);
                }
                let mut out = Vec::with_capacity(n);
                for &b in &down[..n] {
                    reply.push(b);
                    if b == b'\n' {
                        match notes.rewrite(&reply) {
                            Some(instead) => out.extend_from_slice(instead.as_bytes()),
                            None => out.extend_from_slice(&reply),
                        }
                        lines.order.answered(&reply, &mut out);
                        reply.clear();
                    }
                }
                outer.write_all(&out).await?;
                outer.flush().await?;
            }
            () = tokio::time::sleep_until(drain.unwrap_or_else(tokio::time::Instant::now)),
                if drain.is_some() => return Ok(End::Closed),
        }
        let step = lines.step()?;
        if !step.forward.is_empty() {
            inner.write_all(&step.forward).await?;
        }
        if !step.reply.is_empty() {
            outer.write_all(&step.reply).await?;
            outer.flush().await?;
        }
        if let Some(end) = step.end {
            return Ok(end);
        }
    }
}

/// The client's side of [`shuttle`]: its input not yet handled, and the replies owed to it.
struct Lines<'a> {
    phase: Phase,
    notes: &'a Notes,
    order: Order,
    /// Bytes from the client not handled yet: a partial line, or lines behind one that waits.
    input: Vec<u8>,
    /// The first line of `input` waits for libunftp to answer the commands before it.
    waiting: bool,
}

/// What [`Lines::step`] made of the client's input.
#[derive(Default)]
struct Step {
    /// Whole lines for libunftp.
    forward: Vec<u8>,
    /// The relay's own replies due now.
    reply: Vec<u8>,
    end: Option<End>,
}

impl Lines<'_> {
    /// Handle the client's complete lines in order, until one must wait or the input is used.
    fn step(&mut self) -> io::Result<Step> {
        let mut step = Step::default();
        self.waiting = false;
        let mut used = 0;
        while let Some(len) = self.input[used..].iter().position(|&b| b == b'\n') {
            if len > MAX_COMMAND_LINE {
                step.end = Some(End::TooLong);
                return Ok(step);
            }
            let line = &self.input[used..used + len + 1];
            let settled = self.order.settled();
            let own: &[u8] = match (classify(line), self.phase) {
                (Command::AuthTls, Phase::Clear { .. }) | (Command::Upload, _) if !settled => {
                    self.waiting = true;
                    break;
                }
                (Command::AuthTls, Phase::Clear { .. }) => {
                    if used + len + 1 != self.input.len() {
                        // RFC 4217: the client waits for the reply before its handshake;
                        // anything pipelined would be lost in the switch.
                        return Err(io::Error::other("data pipelined after AUTH TLS"));
                    }
                    step.reply.extend_from_slice(b"234 AUTH TLS successful\r\n");
                    step.end = Some(End::Upgrade);
                    self.input.clear();
                    return Ok(step);
                }
                (Command::AuthTls, Phase::Secure) => b"503 Already using TLS\r\n",
                (Command::Login, Phase::Clear { required: true }) => {
                    b"534 This node requires TLS: send AUTH TLS first\r\n"
                }
                (Command::Upload, _) if self.notes.is_anonymous() => ANONYMOUS_WRITE.as_bytes(),
                _ if !self.order.all_heard() => {
                    self.waiting = true;
                    break;
                }
                _ => {
                    step.forward.extend_from_slice(line);
                    self.order.passed_on();
                    used += len + 1;
                    continue;
                }
            };
            if let Some(now) = self.order.ours(own) {
                step.reply.extend_from_slice(&now);
            }
            used += len + 1;
        }
        self.input.drain(..used);
        if !self.waiting && self.input.len() > MAX_COMMAND_LINE {
            step.end = Some(End::TooLong);
        }
        Ok(step)
    }
}

/// The commands the relay itself cares about.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    AuthTls,
    /// `USER` or `PASS`.
    Login,
    /// `STOR`, `APPE` or `STOU`: bytes come next on the data connection.
    Upload,
    Other,
}

fn classify(line: &[u8]) -> Command {
    let text = line.trim_ascii();
    let word = text.split(|b| *b == b' ').next().unwrap_or_default();
    if text.eq_ignore_ascii_case(b"AUTH TLS") {
        Command::AuthTls
    } else if word.eq_ignore_ascii_case(b"USER") || word.eq_ignore_ascii_case(b"PASS") {
        Command::Login
    } else if [b"STOR", b"APPE", b"STOU"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(*w))
    {
        Command::Upload
    } else {
        Command::Other
    }
}

/// Answer an overlong line with `500` and close.
async fn refuse<O: AsyncRead + AsyncWrite + Unpin>(outer: &mut O) {
    tracing::info!("FTP client sent an overlong command line: closed");
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        outer.write_all(b"500 Command line too long\r\n").await?;
        outer.flush().await
    })
    .await;
    // Lingering close: closing with unread input would reset the connection and could
    // destroy the reply before the client reads it. Discard input briefly instead.
    let _ = outer.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut sink = [0u8; 4096];
        while matches!(outer.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_the_relay_answers() {
        assert_eq!(classify(b"AUTH TLS\r\n"), Command::AuthTls);
        assert_eq!(classify(b"auth tls\n"), Command::AuthTls);
        assert_eq!(classify(b"AUTH SSL\r\n"), Command::Other);
        assert_eq!(classify(b"user alice\r\n"), Command::Login);
        assert_eq!(classify(b"PASS\r\n"), Command::Login);
        assert_eq!(classify(b"USERS\r\n"), Command::Other);
        assert_eq!(classify(b"RETR a\r\n"), Command::Other);
        assert_eq!(classify(b"stor a b.mp4\r\n"), Command::Upload);
        assert_eq!(classify(b"APPE x\r\n"), Command::Upload);
        assert_eq!(classify(b"STOU\r\n"), Command::Upload);
    }
}
