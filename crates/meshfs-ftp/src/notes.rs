//! `Notes`: what one session's libunftp side knows that the relay in front of it must say.
//!
//! libunftp answers every refusal of the storage back-end `550 Permission denied` and every
//! failed login `530 Authentication failed`, whatever the cause, and its `STOR` answers `150`
//! before the storage is asked, so a refused upload is only refused once its bytes have all
//! crossed. The relay ([`crate::relay`]) sees every command and every reply line of the
//! session; these notes, written by the authenticator and the storage of the same session,
//! let it answer what libunftp cannot:
//! - an anonymous user's upload is refused before any data connection is used;
//! - "authentication required" (the file server's code 8: a password protects it, or only a
//!   named user may do it) is `530` with what to do, told apart from a plain `550` refusal
//!   (unreadable, outside the share);
//! - a login refused by the node's throttle says so, with the address and the wait.

use std::sync::{Arc, Mutex};

/// `530` for an anonymous user asking to change the share.
pub(crate) const ANONYMOUS_WRITE: &str = "530 Anonymous users only read: log in as a user of \
    this node's --ftp-users file to upload or change files\r\n";

/// `530` for an anonymous user reaching what a node password protects.
pub(crate) const PASSWORD_REQUIRED: &str = "530 Password required: this node's password \
    protects it and anonymous users cannot prove one; log in as a user of its --ftp-users file\r\n";

/// One session's notes; the authenticator, the storage and the relay hold clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notes(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    /// Logged in as `anonymous`/`ftp`.
    anonymous: bool,
    /// The reply line to send instead of libunftp's next `5xx` line.
    refusal: Option<String>,
}

impl Notes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A login succeeded; `anonymous` says as whom.
    pub(crate) fn logged_in(&self, anonymous: bool) {
        self.lock().anonymous = anonymous;
    }

    pub(crate) fn is_anonymous(&self) -> bool {
        self.lock().anonymous
    }

    /// libunftp's next refusal (`5xx`) is to read `line` (a whole reply line, `\r\n` ended).
    pub(crate) fn refuse(&self, line: impl Into<String>) {
        self.lock().refusal = Some(line.into());
    }

    /// The line to send for `line` coming from libunftp: the noted refusal in place of a `5xx`
    /// single-line reply, else `None` (send it as it is).
    pub(crate) fn rewrite(&self, line: &[u8]) -> Option<String> {
        let refusal = line.len() > 4 && line[0] == b'5' && line[3] == b' ';
        if refusal {
            self.lock().refusal.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_refusal_replaces_the_next_5xx_line_once() {
        let notes = Notes::default();
        assert_eq!(notes.rewrite(b"550 Permission denied\r\n"), None);
        notes.refuse(PASSWORD_REQUIRED);
        assert_eq!(notes.rewrite(b"150 Ready\r\n"), None);
        assert_eq!(notes.rewrite(b"211-Features:\r\n"), None);
        assert_eq!(
            notes.rewrite(b"550 Permission denied\r\n").as_deref(),
            Some(PASSWORD_REQUIRED)
        );
        assert_eq!(notes.rewrite(b"550 Permission denied\r\n"), None);
    }
}
