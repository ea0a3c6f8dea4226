//! `Connection`: frames the file-server protocol on one connection, in clear or in TLS.
//!
//! Requests are lines of at most [`MAX_LINE`] bytes; replies are queued in a write buffer and
//! flushed only when no complete request is left in the read buffer, so a client that pipelines
//! a hundred `stat`s gets one `write` back, not a hundred. File payloads are flushed behind the
//! queued replies and then sent with `sendfile` in clear; inside TLS the bytes must pass through
//! the cipher in user space, so they are read in chunks and written through it.
//!
//! Under an upload limit ([`Limiter`]) every payload byte is charged before it is sent:
//! `sendfile` then goes in [`Limiter::slice`]-sized calls, each after its reservation; without
//! one, a payload is still a single `sendfile`.

use std::fs::File;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use meshfs_core::proto::MAX_LINE;
use meshfs_core::rate::Limiter;
use meshfs_core::stream::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::sendfile::send_file;

/// Payloads up to this size are copied into the write buffer (keeping pipelined replies in one
/// write); larger ones go out with `sendfile`.
const INLINE_PAYLOAD: u64 = 64 << 10;
/// Inside TLS, payloads are read and encrypted this much at a time.
const TLS_CHUNK: usize = 256 << 10;

/// Why no request line could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line too long")]
    TooLong,
    #[error("idle timeout")]
    Idle,
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Longest wait for a peer to accept bytes we write.
    write_timeout: Duration,
    /// The upload limits file payloads are charged to.
    limiter: Limiter,
}

impl Connection {
    pub fn new(stream: Stream, write_timeout: Duration) -> Connection {
        Connection {
            stream,
            // Small to start with: an idle connection should cost little (10k of them are a
            // benchmark target); the buffer grows as needed up to one maximal line.
            rbuf: BytesMut::with_capacity(512),
            wbuf: Vec::new(),
            write_timeout,
            limiter: Limiter::unlimited(),
        }
    }

    /// Charge file payloads to `limiter` (the node's and this client's upload limits).
    pub fn with_limiter(mut self, limiter: Limiter) -> Connection {
        self.limiter = limiter;
        self
    }

    /// The client's address, which failed logins are counted by (unspecified when the
    /// socket has already failed: such a client gets no answer anyway).
    pub fn peer_ip(&self) -> std::net::IpAddr {
        self.stream
            .tcp()
            .peer_addr()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip())
    }

    /// True inside TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The TLS session's exported keying material (`None` in clear).
    pub fn binding(&self) -> Option<[u8; 32]> {
        self.stream.binding().and_then(Result::ok)
    }

    /// Position of the end of the next complete line in the read buffer, if any.
    fn complete_line(&self) -> Result<Option<usize>, ReadError> {
        match memchr(b'\n', &self.rbuf) {
            Some(pos) => {
                // A `\r` before the `\n` does not count against the limit.
                let content = if pos > 0 && self.rbuf[pos - 1] == b'\r' {
                    pos - 1
                } else {
                    pos
                };
                if content > MAX_LINE {
                    Err(ReadError::TooLong)
                } else {
                    Ok(Some(pos))
                }
            }
            None if self.rbuf.len() > MAX_LINE + 1 => Err(ReadError::TooLong),
            None => Ok(None),
        }
    }

    /// True when a whole request is already buffered (so replies can wait to be flushed).
    pub fn has_buffered_request(&self) -> bool {
        matches!(self.complete_line(), Ok(Some(_)))
    }

    /// The next request line (without `\n`), or `None` when the peer closed cleanly.
    /// Replies queued so far are flushed before waiting for the network. The line must
    /// arrive before `deadline`.
    pub async fn next_line(&mut self, deadline: Instant) -> Result<Option<BytesMut>, ReadError> {
        loop {
            if let Some(pos) = self.complete_line()? {
                let mut line = self.rbuf.split_to(pos + 1);
                line.truncate(pos);
                return Ok(Some(line));
            }
            self.flush().await?;
            if self.rbuf.capacity() - self.rbuf.len() < 256 {
                self.rbuf.reserve(1024);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => return Err(ReadError::Idle),
                Ok(Ok(0)) => {
                    return if self.rbuf.is_empty() {
                        Ok(None)
                    } else {
                        Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Close politely after an error reply: flush, stop writing, and discard what the peer is
    /// still sending for a moment. Closing with unread input makes the kernel send a reset,
    /// which can destroy our reply before the peer reads it (nginx's "lingering close").
    pub async fn linger_close(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await?;
        // What arrives is read into the request buffer, not a buffer of its own: a 4 KiB
        // array here was part of every connection's future, idle or not (a third of it).
        let mut budget = 1usize << 20;
        let until = Instant::now() + Duration::from_secs(1);
        while budget > 0 {
            self.rbuf.clear();
            self.rbuf.reserve(4096);
            match tokio::time::timeout_at(until, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
                _ => break,
            }
        }
        Ok(())
    }

    /// Resolves when the peer closes (or errors). Anything it sends meanwhile is discarded:
    /// used while the connection streams events and expects no more requests. Cancel-safe.
    pub async fn closed(&mut self) {
        loop {
            self.rbuf.clear();
            self.rbuf.reserve(512);
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Queue reply bytes.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Queue a status line `<code> <text>\n`.
    pub fn status(&mut self, code: u8, text: &str) {
        self.wbuf.reserve(text.len() + 4);
        self.wbuf.extend_from_slice(code.to_string().as_bytes());
        self.wbuf.push(b' ');
        self.wbuf.extend_from_slice(text.as_bytes());
        self.wbuf.push(b'\n');
    }

    /// The write buffer, for formatters that append to it.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let res = tokio::time::timeout(self.write_timeout, self.stream.write_all(&self.wbuf)).await;
        self.wbuf.clear();
        if self.wbuf.capacity() > 1 << 20 {
            self.wbuf = Vec::new();
        }
        match res {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading",
            )),
        }
    }

    /// Queue `0 <n>\n` followed by `n` bytes of `file` at `offset`. Returns an error if the
    /// bytes could not all be sent (the file shrank or the peer left): the stream is then out
    /// of sync and must be closed.
    pub async fn data(&mut self, file: &File, offset: u64, n: u64) -> io::Result<()> {
        self.status(0, &n.to_string());
        if n == 0 {
            return Ok(());
        }
        if n <= INLINE_PAYLOAD {
            self.limiter.take(n).await;
            let start = self.wbuf.len();
            self.wbuf.resize(start + n as usize, 0);
            let got = read_full_at(file, &mut self.wbuf[start..], offset);
            match got {
                Ok(k) if k as u64 == n => return Ok(()),
                Ok(_) => return Err(shrank()),
                Err(e) => {
                    self.wbuf.truncate(start);
                    return Err(e);
                }
            }
        }
        self.flush().await?;
        let Some(tcp) = self.stream.plain() else {
            return self.copy_through(file, offset, n).await;
        };
        let Some(slice) = self.limiter.slice() else {
            let sent = send_file(tcp, file, offset, n, self.write_timeout).await?;
            return if sent < n { Err(shrank()) } else { Ok(()) };
        };
        let mut sent = 0;
        while sent < n {
            let piece = slice.min(n - sent);
            self.limiter.take(piece).await;
            let got = send_file(tcp, file, offset + sent, piece, self.write_timeout).await?;
            if got < piece {
                return Err(shrank());
            }
            sent += got;
        }
        Ok(())
    }

    /// Send `n` bytes of `file` at `offset` through the stream (TLS: no `sendfile`), a chunk
    /// at a time so memory stays bounded.
    async fn copy_through(&mut self, file: &File, offset: u64, n: u64) -> io::Result<()> {
        let chunk = self.limiter.slice().map_or(TLS_CHUNK, |s| s as usize);
        let mut buf = vec![0u8; chunk.min(TLS_CHUNK).min(n as usize)];
        let mut done = 0u64;
        while done < n {
            let want = buf.len().min((n - done) as usize);
            let got = read_full_at(file, &mut buf[..want], offset + done)?;
            if got < want {
                return Err(shrank());
            }
            self.limiter.take(want as u64).await;
            let write = self.stream.write_all(&buf[..want]);
            match tokio::time::timeout(self.write_timeout, write).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer stopped reading",
                    ));
                }
            }
            done += want as u64;
        }
        self.stream.flush().await
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")
}

/// `read_at` until `buf` is full or the file ends.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
