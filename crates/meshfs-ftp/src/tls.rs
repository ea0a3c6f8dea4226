//! Explicit FTPS (`AUTH TLS`, RFC 4217) with the node's own certificate.
//!
//! The same key pair every other door presents, so an FTP client pins the same ID
//! (`curl --pinnedpubkey "$(meshfs id --node --curl)"`). TLS 1.3 only, with the cipher order of
//! [`meshfs_core::tls`] (ChaCha20 first on a CPU without AES instructions). The control
//! channel's TLS is terminated by the relay (see [`crate::relay`]) so that its line bound still
//! holds; data channels (`PROT P`) are encrypted by libunftp itself with the same configuration.

use std::sync::Arc;

use meshfs_core::Identity;
use meshfs_core::tls::{self, ClientAuth, ServerConfig, TlsError};

use crate::relay::RelayTls;

/// FTPS settings of an FTP server.
#[derive(Clone)]
pub struct FtpTls {
    server: Arc<ServerConfig>,
    /// Refuse `USER`/`PASS` before `AUTH TLS`, and data connections without `PROT P`
    /// (`--ftp-require-tls`). Without it plain FTP keeps working beside FTPS.
    pub required: bool,
}

impl std::fmt::Debug for FtpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpTls")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl FtpTls {
    /// FTPS with `identity`'s certificate.
    ///
    /// Without TLS 1.3 session tickets. rustls sends tickets right after the handshake; an
    /// FTPS client uploading on a data channel (curl `-T`) never reads from it, so the tickets
    /// sit unread in its receive buffer, and closing a socket with unread data makes the
    /// kernel send a reset instead of a FIN. When the reset overtakes the end of the upload,
    /// Linux drops what the node had not read yet, libunftp's read fails, and the upload is
    /// answered `426` (intermittently, by timing). Nothing written to a data channel the
    /// client does not read, nothing to reset: meshfs does not resume FTPS sessions anyway.
    pub fn new(identity: &Identity, required: bool) -> Result<FtpTls, TlsError> {
        let mut server = Arc::unwrap_or_clone(tls::server_config(identity, ClientAuth::None)?);
        server.send_tls13_tickets = 0;
        Ok(FtpTls {
            server: Arc::new(server),
            required,
        })
    }

    /// What libunftp presents on `PROT P` data channels.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    pub(crate) fn relay(&self) -> RelayTls {
        RelayTls {
            config: self.server.clone(),
            required: self.required,
        }
    }
}
