//! [`Records`]: a client's TLS 1.3 connection whose records are opened and sealed here once
//! rustls has made the handshake — kernel TLS done in user space, for bulk downloads.
//!
//! Why: a verified `get` over TLS is held back by the client's core (issue 15 item 6), and
//! rustls's buffered connection spends it on more than the cipher: it reads the socket 4 KiB
//! at a time (its receive buffer shrinks back to 4 KiB each time it empties: about 260,000
//! `read` calls per GiB), copies each decrypted record into a queue of plaintext and from there
//! into the caller's buffer, and moves the partial next record to the front after every record.
//! Here the socket is read up to 256 KiB at a time into one buffer, each record is decrypted in
//! place there, and the caller's read copies the plaintext out once: what curl and OpenSSL do
//! per byte, and what kernel TLS would do in the kernel (not built into every kernel: this
//! project's benchmark VM has no `tls` module). A read into a large buffer (a payload, at
//! least [`DIRECT_MIN`]) skips even that copy: the socket is read straight into the caller's
//! buffer and each record is decrypted there, its plaintext written over the record header
//! and the tags before it (`open_within` shifts it as it decrypts), so the bytes are touched
//! once, by the cipher; only a record cut off at the end of such a read is moved to our
//! buffer, to be completed by the next read.
//!
//! How: rustls hands over both directions' traffic keys and sequence numbers for kernel TLS
//! (`dangerous_extract_secrets`) once the handshake is done and nothing is left buffered
//! ([`ready_to_hand_over`]). Records are opened and sealed with `ring`'s AEADs, the same code
//! rustls uses here. What rustls would still have done after the handshake: session tickets
//! arriving later are dropped (they only save a later handshake), and a key update ends the
//! connection with an error, since only rustls could derive the next keys (a rustls node sends
//! one near AES-GCM's limit, about 2^24 records: some 380 GB on one connection; a download
//! resumes on a new one).
//!
//! The record rules kept (RFC 8446 §5): every record after the handshake is
//! `application_data` (0x17), legacy version 0x0303, at most 2^14 + 256 bytes of ciphertext;
//! the nonce is the IV xor the 64-bit sequence number, which never wraps; the 5-byte header is
//! the additional data; the inner content type is the last non-zero byte of the plaintext. A
//! record that fails authentication, a malformed header, an alert other than close_notify, a
//! handshake message other than NewSessionTicket, or the connection closing without
//! close_notify ends the stream with an error: never with bytes the peer did not send.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;
use rustls::client::ClientConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::identity::NodeId;

const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
const MAX_PLAINTEXT: usize = 1 << 14;
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Bytes the socket is read into. Reads go to the free end of it; the partial record left
/// there is moved to the front only when less than half is free, so reads stay large.
const RECV_BUF: usize = 256 << 10;
/// A read into a buffer of at least this much room reads the socket into that buffer and
/// opens the records there ([`Records::read_direct`]). Larger than a record, so a read that
/// only completes one record is rare.
const DIRECT_MIN: usize = 64 << 10;
/// Sealed bytes a write may leave unsent before it waits for the socket.
const MAX_UNSENT: usize = 64 << 10;

const CHANGE_CIPHER_SPEC: u8 = 0x14;
const ALERT: u8 = 0x15;
const HANDSHAKE: u8 = 0x16;
const APPLICATION_DATA: u8 = 0x17;
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;
const CLOSE_NOTIFY: u8 = 0;

/// Can this connection be handed over? Only when the handshake is done, nothing waits to be
/// sent, and no decrypted byte waits to be read (rustls would keep it). The caller must also
/// hold no bytes read ahead, and the peer must have nothing more in flight: a request/reply
/// protocol between replies. Bytes rustls read but had not yet decrypted would be lost; the
/// records after them would then fail authentication (an error, never wrong bytes).
pub fn ready_to_hand_over(conn: &mut ClientConnection) -> bool {
    // First what rustls has read: taking it in may queue something to send.
    let quiet = conn
        .process_new_packets()
        .is_ok_and(|state| state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed());
    // The record format here is TLS 1.3's (the only version meshfs offers, see
    // `super::provider_with`; checked, not assumed).
    quiet
        && !conn.is_handshaking()
        && !conn.wants_write()
        && conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
}

/// One direction's key, IV and next sequence number.
struct Direction {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl Direction {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> io::Result<Direction> {
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(invalid("cipher suite not supported by the record layer")),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| invalid("traffic key of the wrong length"))?;
        let iv = iv
            .as_ref()
            .try_into()
            .map_err(|_| invalid("traffic IV of the wrong length"))?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// Open the record whose header is `header` and whose ciphertext and tag are
    /// `record[shift..]`: its plaintext (content and inner type) lands at `record[..]`.
    fn open<'a>(
        &mut self,
        header: [u8; HEADER_LEN],
        record: &'a mut [u8],
        shift: usize,
    ) -> io::Result<&'a mut [u8]> {
        let nonce = self.next_nonce()?;
        self.key
            .open_within(nonce, Aad::from(header), record, shift..)
            .map_err(|_| invalid("a TLS record failed authentication"))
    }

    /// The next record's nonce (RFC 8446 §5.3).
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        let mut nonce = self.iv;
        for (b, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| invalid("TLS sequence number exhausted"))?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// A client's TLS 1.3 connection after the handshake, records opened and sealed here.
pub struct Records {
    tcp: TcpStream,
    rx: Direction,
    tx: Direction,
    /// What the socket gave: `buf[plain.0..plain.1]` decrypted and not yet read,
    /// `buf[raw..filled]` records not yet opened.
    buf: Box<[u8]>,
    plain: (usize, usize),
    raw: usize,
    filled: usize,
    /// Sealed records, `out[sent..]` not yet on the socket.
    out: Vec<u8>,
    sent: usize,
    /// The peer sent close_notify: the end of the stream.
    closed: bool,
    /// close_notify queued by a shutdown.
    shut: bool,
    /// An error ended the stream: every later read and write gets it again. The record
    /// sequence has moved past what failed, so going on would skip bytes silently.
    failed: Option<io::ErrorKind>,
    peer: Option<NodeId>,
    binding: [u8; 32],
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("tcp", &self.tcp)
            .field("peer", &self.peer)
            .field("rx_seq", &self.rx.seq)
            .field("tx_seq", &self.tx.seq)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// Take over `tls`, which [`ready_to_hand_over`] approved. Fails (the connection is then
    /// lost) when rustls refuses to hand its keys over.
    pub fn from_client(tls: tokio_rustls::client::TlsStream<TcpStream>) -> io::Result<Records> {
        let (tcp, conn) = tls.into_inner();
        let peer = super::peer_id(&conn);
        let binding = super::session_binding(&conn).map_err(io::Error::other)?;
        let secrets = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
        Ok(Records {
            tcp,
            rx: Direction::new(secrets.rx)?,
            tx: Direction::new(secrets.tx)?,
            buf: vec![0; RECV_BUF].into_boxed_slice(),
            plain: (0, 0),
            raw: 0,
            filled: 0,
            out: Vec::new(),
            sent: 0,
            closed: false,
            shut: false,
            failed: None,
            peer,
            binding,
        })
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The ID of the server's certificate.
    pub fn peer_id(&self) -> Option<NodeId> {
        self.peer
    }

    /// The session's exported keying material ([`super::session_binding`]), taken before the
    /// hand-over.
    pub fn binding(&self) -> [u8; 32] {
        self.binding
    }

    /// Open the record at `raw` if it is all here: true when one was consumed.
    fn open_record(&mut self) -> io::Result<bool> {
        let here = &self.buf[self.raw..self.filled];
        let Some((header, len)) = record_header(here)? else {
            return Ok(false);
        };
        if here.len() < HEADER_LEN + len {
            return Ok(false);
        }
        let start = self.raw + HEADER_LEN;
        self.raw = start + len;
        let plain = self.rx.open(header, &mut self.buf[start..start + len], 0)?;
        if let Some(content) = Self::received(plain, &mut self.closed)? {
            self.plain = (start, start + content);
        }
        Ok(true)
    }

    /// What the record opened in `plain` (content and inner type) says: the length of its
    /// application data, or `None` when it carried an alert or handshake messages (taken
    /// into account here: close_notify sets `closed`, anything else is an error).
    fn received(plain: &[u8], closed: &mut bool) -> io::Result<Option<usize>> {
        // RFC 8446 §5.4: at most 2^14 bytes of content and its type.
        if plain.len() > MAX_PLAINTEXT + 1 {
            return Err(invalid("TLS record longer than the protocol allows"));
        }
        let Some(kind_at) = plain.iter().rposition(|&b| b != 0) else {
            return Err(invalid("TLS record without a content type"));
        };
        let content = &plain[..kind_at];
        match plain[kind_at] {
            APPLICATION_DATA => return Ok(Some(kind_at)),
            ALERT => match content {
                [_, CLOSE_NOTIFY] => *closed = true,
                [_, what] => return Err(invalid(format!("the peer sent TLS alert {what}"))),
                _ => return Err(invalid("malformed TLS alert")),
            },
            HANDSHAKE => after_handshake(content)?,
            other => return Err(invalid(format!("TLS record of content type {other}"))),
        }
        Ok(None)
    }

    /// Read the socket straight into `out` (whose room is at least [`DIRECT_MIN`]; our
    /// buffer holds nothing) and open the records there: each record's plaintext is written
    /// where the previous one's ended, over headers and tags. A record cut off at the end is
    /// moved to our buffer. Ready with true once `out` got bytes or the stream ended.
    fn read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<bool>> {
        debug_assert_eq!((self.raw, self.filled), (0, 0));
        let start = out.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, out))?;
        let region = &mut out.filled_mut()[start..];
        if region.is_empty() {
            return Poll::Ready(Err(closed_without_notify()));
        }
        let (mut plain, mut at) = (0, 0);
        let opened = loop {
            let here = &region[at..];
            let (header, len) = match record_header(here) {
                Ok(Some((_, len))) if here.len() < HEADER_LEN + len => break Ok(()),
                Ok(Some(header)) => header,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let end = at + HEADER_LEN + len;
            // Opened in place, shifted back to `plain` as it is decrypted.
            let record = &mut region[plain..end];
            let shift = at + HEADER_LEN - plain;
            let opened = match self.rx.open(header, record, shift) {
                Ok(opened) => opened,
                Err(e) => break Err(e),
            };
            at = end;
            match Self::received(opened, &mut self.closed) {
                Ok(Some(content)) => plain += content,
                Ok(None) if self.closed => break Ok(()),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = opened {
            // Nothing of this read is given: the error is the answer.
            out.set_filled(start);
            return Poll::Ready(Err(e));
        }
        if !self.closed {
            let rest = &region[at..];
            self.buf[..rest.len()].copy_from_slice(rest);
            self.filled = rest.len();
        }
        out.set_filled(start + plain);
        Poll::Ready(Ok(plain > 0 || self.closed))
    }

    /// Bytes still missing from the record cut off at `raw`: its header's, or its body's.
    fn missing(&self) -> usize {
        let here = &self.buf[self.raw..self.filled];
        match here.first_chunk::<HEADER_LEN>() {
            None => HEADER_LEN - here.len(),
            Some(h) => HEADER_LEN + usize::from(u16::from_be_bytes([h[3], h[4]])) - here.len(),
        }
    }

    /// Seal `data` as records of content type `kind`, queued on `out`.
    fn seal(&mut self, kind: u8, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(MAX_PLAINTEXT) {
            let len = piece.len() + 1 + TAG_LEN;
            let [hi, lo] = (len as u16).to_be_bytes();
            let header = [APPLICATION_DATA, 3, 3, hi, lo];
            let nonce = self.tx.next_nonce()?;
            self.out.extend_from_slice(&header);
            let start = self.out.len();
            self.out.extend_from_slice(piece);
            self.out.push(kind);
            let tag = self
                .tx
                .key
                .seal_in_place_separate_tag(nonce, Aad::from(header), &mut self.out[start..])
                .map_err(|_| invalid("sealing a TLS record failed"))?;
            self.out.extend_from_slice(tag.as_ref());
        }
        Ok(())
    }

    /// Write the sealed records still unsent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// The stream's work; the traits below run it through [`Records::guarded`].
impl Records {
    fn read_records(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A reader waiting for a reply must not wait on its own unsent request.
        if let Poll::Ready(Err(e)) = self.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            let (from, to) = self.plain;
            if from < to {
                let n = (to - from).min(out.remaining());
                out.put_slice(&self.buf[from..from + n]);
                self.plain.0 += n;
                return Poll::Ready(Ok(()));
            }
            if self.closed || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if self.open_record()? {
                continue;
            }
            // Only part of a record is here: read more, after it.
            let direct = out.remaining() >= DIRECT_MIN;
            if self.raw == self.filled {
                (self.raw, self.filled) = (0, 0);
                if direct {
                    if ready!(self.read_direct(cx, out))? {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
            } else if self.buf.len() - self.filled < RECV_BUF / 2 {
                self.buf.copy_within(self.raw..self.filled, 0);
                (self.raw, self.filled) = (0, self.filled - self.raw);
            }
            // Into a large buffer, only the rest of the record cut off here: what follows it
            // is read straight into that buffer.
            let room = if direct && self.raw < self.filled {
                self.filled + self.missing()
            } else {
                self.buf.len()
            };
            let mut room = ReadBuf::new(&mut self.buf[self.filled..room]);
            ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut room))?;
            let n = room.filled().len();
            if n == 0 {
                return Poll::Ready(Err(closed_without_notify()));
            }
            self.filled += n;
        }
    }

    fn write_records(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.out.len() - self.sent >= MAX_UNSENT {
            ready!(self.poll_send(cx))?;
        }
        let n = data.len().min(MAX_UNSENT);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        self.seal(APPLICATION_DATA, &data[..n])?;
        // Send now what the socket takes; the rest goes with the next write, flush or read.
        if let Poll::Ready(Err(e)) = self.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn flush_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn shutdown_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            self.shut = true;
            self.seal(ALERT, &[1, CLOSE_NOTIFY])?;
        }
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    /// Run `op` unless an earlier error ended the stream, which it then answers again; an
    /// error `op` returns ends the stream.
    fn guarded<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(
                kind,
                "the TLS stream ended with an error before",
            )));
        }
        let res = op(self);
        if let Poll::Ready(Err(e)) = &res {
            self.failed = Some(e.kind());
        }
        res
    }
}

/// The header at the start of `here` (if all five bytes are there) and the length of the
/// record body it announces; an error for a header no record after the handshake may have.
fn record_header(here: &[u8]) -> io::Result<Option<([u8; HEADER_LEN], usize)>> {
    let Some(header) = here.first_chunk::<HEADER_LEN>().copied() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != APPLICATION_DATA
        || header[1..3] != [3, 3]
        || !(TAG_LEN + 1..=MAX_CIPHERTEXT).contains(&len)
    {
        // A change_cipher_spec record is allowed only during the handshake.
        let what = if header[0] == CHANGE_CIPHER_SPEC {
            "change_cipher_spec record after the handshake"
        } else {
            "malformed TLS record header"
        };
        return Err(invalid(what));
    }
    Ok(Some((header, len)))
}

fn closed_without_notify() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection without close_notify",
    )
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Handshake messages after the handshake: session tickets, dropped (they would only
/// save a later connection its full handshake). Anything else (a key update) ends the
/// connection. Each message must sit whole in its record.
fn after_handshake(mut messages: &[u8]) -> io::Result<()> {
    while let [kind, a, b, c, rest @ ..] = messages {
        let len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
        let Some((_, next)) = rest.split_at_checked(len) else {
            return Err(invalid("a handshake message split across TLS records"));
        };
        match *kind {
            NEW_SESSION_TICKET => {}
            KEY_UPDATE => return Err(invalid("TLS key update after the hand-over")),
            _ => {
                return Err(invalid(format!(
                    "handshake message {kind} after the handshake"
                )));
            }
        }
        messages = next;
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(invalid("a handshake message split across TLS records"))
    }
}

impl AsyncRead for Records {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().guarded(|r| r.read_records(cx, out))
    }
}

impl AsyncWrite for Records {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guarded(|r| r.write_records(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guarded(|r| r.flush_records(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guarded(|r| r.shutdown_records(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::stream::Stream;
    use crate::tls::{
        ClientAuth, TlsAcceptor, TlsConnector, client_config_with, server_config_with,
    };
    use rustls::crypto::CryptoProvider;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    type ServerSide = tokio_rustls::server::TlsStream<TcpStream>;

    /// Bytes that differ at every offset (a shifted or repeated record shows).
    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A node's TLS server on a real socket: answers `ping` with `pong`, waits for `go!!` (sent
    /// by the client after the hand-over, as requests are), then hands the connection to `then`. With `flip_at`, the server's bytes reach the client through a
    /// relay that inverts the byte at that offset of the server-to-client stream.
    async fn connect<F, Fut>(then: F, flip_at: Option<usize>) -> Stream
    where
        F: FnOnce(ServerSide) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = io::Result<()>> + Send,
    {
        connect_with(crate::tls::provider(), then, flip_at).await
    }

    /// [`connect`] with both ends limited to `provider`'s cipher suites.
    async fn connect_with<F, Fut>(
        provider: Arc<CryptoProvider>,
        then: F,
        flip_at: Option<usize>,
    ) -> Stream
    where
        F: FnOnce(ServerSide) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = io::Result<()>> + Send,
    {
        let node = Identity::generate("cam1").unwrap();
        let server = server_config_with(&node, ClientAuth::Offer, provider.clone()).unwrap();
        let acceptor = TlsAcceptor::from(server);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut ping = [0u8; 4];
            tls.read_exact(&mut ping).await.unwrap();
            tls.write_all(b"pong").await.unwrap();
            tls.flush().await.unwrap();
            tls.read_exact(&mut ping).await.unwrap();
            assert_eq!(&ping, b"go!!");
            let _ = then(tls).await;
        });
        if let Some(at) = flip_at {
            addr = relay(addr, at).await;
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = client_config_with(None, Some(node.id()), provider).unwrap();
        let tls = TlsConnector::from(config)
            .connect(crate::tls::server_name(&addr.to_string()), tcp)
            .await
            .unwrap();
        let mut stream = Stream::TlsClient(Box::new(tls));
        stream.write_all(b"ping").await.unwrap();
        stream.flush().await.unwrap();
        let mut pong = [0u8; 4];
        stream.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
        assert!(stream.can_hand_over_records());
        let mut stream = stream.into_records().unwrap();
        assert!(matches!(stream, Stream::Records(_)));
        assert_eq!(stream.peer_id(), Some(node.id()));
        stream.write_all(b"go!!").await.unwrap();
        stream.flush().await.unwrap();
        stream
    }

    /// A TCP relay to `to` that inverts the server's byte at offset `at`: a man in the middle
    /// without the keys.
    async fn relay(to: std::net::SocketAddr, at: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(to).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
            let mut seen = 0;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if (seen..seen + n).contains(&at) {
                    buf[at - seen] ^= 0xff;
                }
                seen += n;
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn records_carry_both_ways_after_the_hand_over() {
        let sent = payload((3 << 20) + 123);
        let expected = sent.clone();
        let mut stream = connect(
            move |mut tls| async move {
                let mut more = [0u8; 4];
                tls.read_exact(&mut more).await?;
                assert_eq!(&more, b"more");
                // Writes of many sizes: records of every length, some split across reads.
                let (mut at, mut step) = (0, 1);
                while at < sent.len() {
                    let end = (at + step).min(sent.len());
                    tls.write_all(&sent[at..end]).await?;
                    at = end;
                    step = step * 3 + 1;
                }
                tls.shutdown().await
            },
            None,
        )
        .await;
        stream.write_all(b"more").await.unwrap();
        stream.flush().await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert!(
            got == expected,
            "{} bytes read, {} sent",
            got.len(),
            expected.len()
        );
    }

    /// Reads into large buffers (payloads) open the records in the caller's buffer; records
    /// cut off at the end of such a read, tiny reads between large ones and the end of the
    /// stream all keep every byte in order.
    #[tokio::test]
    async fn large_reads_open_records_in_place_and_keep_every_byte() {
        let sent = payload((5 << 20) + 77);
        let expected = sent.clone();
        let mut stream = connect(
            move |mut tls| async move {
                let (mut at, mut step) = (0, 1000);
                while at < sent.len() {
                    let end = (at + step).min(sent.len());
                    tls.write_all(&sent[at..end]).await?;
                    tls.flush().await?;
                    at = end;
                    step = step * 5 % (700 << 10) + 1;
                }
                tls.shutdown().await
            },
            None,
        )
        .await;
        let mut got = Vec::new();
        let sizes = [1 << 20, DIRECT_MIN, 5, 300_007, DIRECT_MIN - 1, 2 << 20, 17];
        for size in sizes.iter().cycle() {
            let mut part = vec![0u8; *size];
            match stream.read(&mut part).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&part[..n]),
            }
        }
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }

    /// A peer that drops the connection without close_notify, at a record's end or inside
    /// one, ends a large read with an error: a cut-off stream is never taken for its end.
    #[tokio::test]
    async fn a_connection_dropped_without_close_notify_is_an_error_in_large_reads() {
        for cut in [0, 1000] {
            let sent = payload(1 << 20);
            let expected = sent.clone();
            let mut stream = connect(
                move |mut tls| async move {
                    tls.write_all(&sent).await?;
                    tls.flush().await?;
                    let (mut tcp, _) = tls.into_inner();
                    // Part of one more record, or none: then the connection just ends.
                    tcp.write_all(&[APPLICATION_DATA, 3, 3, 0x40, 0x11][..cut.min(5)])
                        .await?;
                    tcp.write_all(&vec![7u8; cut.saturating_sub(5)]).await?;
                    tcp.shutdown().await
                },
                None,
            )
            .await;
            let mut got = Vec::with_capacity(4 << 20);
            let err = stream.read_to_end(&mut got).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
            assert!(got.len() <= expected.len() && got[..] == expected[..got.len()]);
        }
    }

    /// Every TLS 1.3 suite meshfs offers is opened here: AES-128-GCM on CPUs with AES
    /// instructions, ChaCha20-Poly1305 on a Raspberry Pi, AES-256-GCM when a peer prefers it.
    #[tokio::test]
    async fn every_cipher_suite_is_opened() {
        use rustls::crypto::ring::cipher_suite::{
            TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
        };
        for suite in [
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ] {
            let provider = Arc::new(CryptoProvider {
                cipher_suites: vec![suite],
                ..rustls::crypto::ring::default_provider()
            });
            let sent = payload(100_000);
            let expected = sent.clone();
            let mut stream = connect_with(
                provider,
                move |mut tls| async move {
                    assert_eq!(tls.get_ref().1.negotiated_cipher_suite(), Some(suite));
                    tls.write_all(&sent).await?;
                    let mut echo = [0u8; 4];
                    tls.read_exact(&mut echo).await?;
                    tls.write_all(&echo).await?;
                    tls.shutdown().await
                },
                None,
            )
            .await;
            let mut got = vec![0u8; expected.len()];
            stream.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "{:?}", suite.suite());
            stream.write_all(b"echo").await.unwrap();
            stream.flush().await.unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"echo", "{:?}", suite.suite());
        }
    }

    #[tokio::test]
    async fn a_changed_byte_is_an_error_never_data() {
        let sent = payload(1 << 20);
        let expected = sent.clone();
        // Past the handshake and the hand-over, inside the bulk records.
        let mut stream = connect(
            move |mut tls| async move {
                tls.write_all(&sent).await?;
                tls.shutdown().await
            },
            Some(500_000),
        )
        .await;
        let mut got = Vec::new();
        let err = stream.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(got.len() < expected.len() && got[..] == expected[..got.len()]);
        // The error ends the stream: reading on (small reads, through the buffer) never
        // gives the records after the bad one, whose bytes would follow a silent gap.
        let mut more = [0u8; 4096];
        for _ in 0..4 {
            let err = stream.read(&mut more).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }

    #[tokio::test]
    async fn a_key_update_ends_the_stream() {
        let mut stream = connect(
            |mut tls| async move {
                tls.write_all(b"before").await?;
                tls.get_mut()
                    .1
                    .refresh_traffic_keys()
                    .map_err(io::Error::other)?;
                tls.write_all(b"after").await?;
                tls.flush().await
            },
            None,
        )
        .await;
        let mut got = Vec::new();
        let err = stream.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(got, b"before");
    }
}
