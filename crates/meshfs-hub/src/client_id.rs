//! The identity of a hub client: the path of its own FIFO, exactly as the client wrote it.
//!
//! The seed identifies a client by the path it registered (`¶/tmp/client…`) and prefixes each
//! message with that same path (`/tmp/client…¶text`), so the path *is* the identifier. It is kept
//! as raw bytes (paths need not be UTF-8) and only validated enough to be safe to open.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::framing::{MAX_ID_LEN, SEPARATOR};

/// A client's FIFO path; cheap to clone (shared bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<[u8]>);

/// Why bytes cannot be a client identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("empty client path")]
    Empty,
    #[error("client path longer than {MAX_ID_LEN} bytes")]
    TooLong,
    #[error("client path is not absolute (the hub and its clients need not share a directory)")]
    NotAbsolute,
    #[error("client path contains a NUL byte or the separator ¶")]
    BadByte,
}

impl ClientId {
    /// Validates `bytes` as a client FIFO path: absolute, bounded, no NUL, no separator.
    pub fn new(bytes: &[u8]) -> Result<Self, InvalidId> {
        if bytes.is_empty() {
            return Err(InvalidId::Empty);
        }
        if bytes.len() > MAX_ID_LEN {
            return Err(InvalidId::TooLong);
        }
        if bytes[0] != b'/' {
            return Err(InvalidId::NotAbsolute);
        }
        if bytes.contains(&0) || bytes.windows(SEPARATOR.len()).any(|w| w == SEPARATOR) {
            return Err(InvalidId::BadByte);
        }
        Ok(Self(bytes.into()))
    }

    /// The identifier's bytes, as they appear on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The client's FIFO.
    pub fn path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }
}

/// Lets sets of ids be searched with the raw bytes of a read.
impl std::borrow::Borrow<[u8]> for ClientId {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({:?})", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(ClientId::new(b"/tmp/clientx1").is_ok());
        assert_eq!(ClientId::new(b""), Err(InvalidId::Empty));
        assert_eq!(ClientId::new(b"tmp/x"), Err(InvalidId::NotAbsolute));
        assert_eq!(ClientId::new(b"/tmp/\0x"), Err(InvalidId::BadByte));
        assert_eq!(
            ClientId::new("/tmp/a¶b".as_bytes()),
            Err(InvalidId::BadByte)
        );
        assert_eq!(
            ClientId::new(&[b'/'; MAX_ID_LEN + 1]),
            Err(InvalidId::TooLong)
        );
        assert_eq!(
            ClientId::new(b"/tmp/x").unwrap().path(),
            Path::new("/tmp/x")
        );
    }
}
