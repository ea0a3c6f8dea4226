//! The framing of registry.md: every field is UTF-8 bytes ended by one NUL, results are one
//! raw byte.
//!
//! Reading is bounded three ways so that no peer can hold a task forever or make it allocate:
//! a field may hold at most [`MAX_FIELD`] bytes before its NUL, every read must bring a byte
//! within the reader's silence limit (2 s on the servers, as registry.md demands), and the
//! caller may add an overall deadline for a whole request.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// Longest field, in bytes, not counting its NUL (registry.md).
pub const MAX_FIELD: usize = 256;

/// Silence after which a server gives up on a request (registry.md: "more than 2 s").
pub const SERVER_SILENCE: Duration = Duration::from_secs(2);

/// Why a field could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error("field longer than {MAX_FIELD} bytes")]
    TooLong,
    #[error("connection closed before the end of the field")]
    Closed,
    #[error("peer silent for more than {0:?}")]
    Silent(Duration),
    #[error("field is not valid UTF-8")]
    NotUtf8,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Reads NUL-terminated fields and result bytes from one connection.
pub struct FieldReader<R> {
    inner: BufReader<R>,
    silence: Duration,
    deadline: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FieldReader<R> {
    /// A reader that fails when the peer sends nothing for `silence`.
    pub fn new(inner: R, silence: Duration) -> FieldReader<R> {
        FieldReader {
            inner: BufReader::with_capacity(1024, inner),
            silence,
            deadline: None,
        }
    }

    /// Also fail every read after `deadline` (a bound on a whole request, against a peer that
    /// trickles one byte just often enough).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// When the next read must have produced something.
    fn read_deadline(&self) -> Instant {
        let silent = Instant::now() + self.silence;
        self.deadline.map_or(silent, |d| d.min(silent))
    }

    /// Wait for buffered bytes; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, FieldError> {
        let deadline = self.read_deadline();
        match tokio::time::timeout_at(deadline, self.inner.fill_buf()).await {
            Ok(Ok(buf)) => Ok(!buf.is_empty()),
            Ok(Err(e)) => Err(FieldError::Io(e)),
            Err(_) => Err(FieldError::Silent(self.silence)),
        }
    }

    /// Read one field (without its NUL) as raw bytes.
    pub async fn read_bytes(&mut self) -> Result<Vec<u8>, FieldError> {
        let mut field = Vec::new();
        loop {
            if !self.fill().await? {
                return Err(FieldError::Closed);
            }
            let buf = self.inner.buffer();
            let room = MAX_FIELD + 1 - field.len();
            let window = &buf[..buf.len().min(room)];
            if let Some(nul) = window.iter().position(|&b| b == 0) {
                field.extend_from_slice(&window[..nul]);
                self.inner.consume(nul + 1);
                return Ok(field);
            }
            if window.len() == room {
                // MAX_FIELD + 1 bytes and still no NUL.
                return Err(FieldError::TooLong);
            }
            let n = window.len();
            field.extend_from_slice(window);
            self.inner.consume(n);
        }
    }

    /// Read one field as text.
    pub async fn read_field(&mut self) -> Result<String, FieldError> {
        String::from_utf8(self.read_bytes().await?).map_err(|_| FieldError::NotUtf8)
    }

    /// Read one field holding a decimal number no greater than `max`.
    pub async fn read_number(&mut self, max: u64) -> Result<u64, FieldError> {
        let field = self.read_field().await?;
        parse_number(&field, max).ok_or_else(|| {
            FieldError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a number up to {max}, got {field:?}"),
            ))
        })
    }

    /// Read one result byte.
    pub async fn read_code(&mut self) -> Result<u8, FieldError> {
        if !self.fill().await? {
            return Err(FieldError::Closed);
        }
        let code = self.inner.buffer()[0];
        self.inner.consume(1);
        Ok(code)
    }

    /// The buffered reader, for callers that stream a payload after the fields.
    pub fn inner_mut(&mut self) -> &mut BufReader<R> {
        &mut self.inner
    }

    /// Discard what the peer still sends, for at most `limit` and `max_bytes`. Closing a socket
    /// with unread input makes the kernel send a reset, which can destroy the reply we just
    /// sent before the peer reads it; draining first lets the reply arrive.
    pub async fn drain(&mut self, limit: Duration, max_bytes: usize) {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while seen < max_bytes {
            match tokio::time::timeout_at(deadline, self.inner.fill_buf()).await {
                Ok(Ok(buf)) if !buf.is_empty() => {
                    let n = buf.len();
                    seen += n;
                    self.inner.consume(n);
                }
                _ => return,
            }
        }
    }
}

/// A decimal number of at most 20 digits, no sign, no spaces.
pub fn parse_number(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= max)
}

/// Why a field cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("field {0:?} holds a NUL byte")]
    Nul(String),
    #[error("field of {0} bytes is longer than {MAX_FIELD}")]
    TooLong(usize),
}

/// Append `field` and its NUL to `buf`, refusing what the peer would refuse.
pub fn push_field(buf: &mut Vec<u8>, field: &str) -> Result<(), SendError> {
    if field.len() > MAX_FIELD {
        return Err(SendError::TooLong(field.len()));
    }
    if field.contains('\0') {
        return Err(SendError::Nul(field.into()));
    }
    buf.extend_from_slice(field.as_bytes());
    buf.push(0);
    Ok(())
}

/// Write a whole prepared message, failing if the peer does not take it within `limit`.
pub async fn write_all_within<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(limit, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
    {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer not reading")),
    }
}

/// Whether `s` has the exact shape `DD/MM/YYYY HH:MM:SS` of the course's date field.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            2 | 5 => c == b'/',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8]) -> Vec<Result<String, String>> {
        let mut r = FieldReader::new(input, Duration::from_secs(1));
        let mut out = Vec::new();
        loop {
            match r.read_field().await {
                Ok(f) => out.push(Ok(f)),
                Err(FieldError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn fields_split_on_nul_and_bounded() {
        let fields = read_all(b"REGISTER\0alice\0").await;
        assert_eq!(fields, vec![Ok("REGISTER".into()), Ok("alice".into())]);

        let mut max = vec![b'a'; MAX_FIELD];
        max.push(0);
        assert_eq!(read_all(&max).await, vec![Ok("a".repeat(MAX_FIELD))]);

        let mut long = vec![b'a'; MAX_FIELD + 1];
        long.push(0);
        assert!(
            read_all(&long).await[0]
                .as_ref()
                .unwrap_err()
                .contains("longer")
        );

        assert!(
            read_all(b"\xff\xfe\0").await[0]
                .as_ref()
                .unwrap_err()
                .contains("UTF-8")
        );
    }

    #[tokio::test]
    async fn missing_nul_is_closed() {
        let mut r = FieldReader::new(&b"REGIS"[..], Duration::from_secs(1));
        assert!(matches!(r.read_field().await, Err(FieldError::Closed)));
    }

    #[test]
    fn date_shape() {
        assert!(is_date("21/11/2026 23:59:01"));
        assert!(!is_date("21/11/2026 23:59"));
        assert!(!is_date("2026-11-21 23:59:01"));
        assert!(!is_date("alice"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("4050", 65535), Some(4050));
        assert_eq!(parse_number("70000", 65535), None);
        assert_eq!(parse_number("-1", 65535), None);
        assert_eq!(parse_number("", 65535), None);
        assert_eq!(parse_number(" 1", 65535), None);
    }
}
