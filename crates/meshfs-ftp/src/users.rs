//! Who may log in: anonymous readers, and named users from a users file who may also write.
//!
//! The users file holds one `NAME:HASH` per line, where HASH is an argon2 PHC string such as
//! `meshfs ftp-passwd NAME` prints; blank lines and `#` comments are ignored. Passwords are never
//! stored. The file is read once at start and bounded (size, line length, user count) so a wrong
//! path (a log file, `/dev/zero`) gives a clear error instead of eating memory.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::notes::Notes;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use meshfs_core::throttle::Throttle;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};

/// Largest users file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest line of a users file.
pub const MAX_LINE: usize = 1024;
/// Most users in one file.
pub const MAX_USERS: usize = 10_000;
/// Longest password checked (argon2 accepts more; nobody types that much).
const MAX_PASSWORD: usize = 1024;

/// The door's name in the login throttle's log lines.
const DOOR: &str = "FTP";

/// Names that log in anonymously, with any password, read-only.
const ANONYMOUS: [&str; 2] = ["anonymous", "ftp"];

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file: {0}")]
    Io(#[from] std::io::Error),
    #[error("users file larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("users file line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("more than {MAX_USERS} users")]
    TooMany,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Named users and their argon2 hashes.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl Users {
    /// Read a users file.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let mut text = String::new();
        let file = std::fs::File::open(path)?;
        file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(UsersError::TooLarge);
        }
        Users::parse(&text)
    }

    /// Parse the contents of a users file.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: &str| UsersError::Line {
                line: i + 1,
                reason: reason.to_owned(),
            };
            if line.len() > MAX_LINE {
                return Err(bad("line too long"));
            }
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:HASH"))?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(bad("bad user name"));
            }
            if ANONYMOUS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(bad("anonymous and ftp are reserved for anonymous reading"));
            }
            PasswordHash::new(hash).map_err(|e| bad(&format!("bad password hash: {e}")))?;
            if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(bad("user listed twice"));
            }
            if hashes.len() > MAX_USERS {
                return Err(UsersError::TooMany);
            }
        }
        Ok(Users { hashes })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Does `password` match `name`'s hash? Unknown users never match. CPU-heavy by design
    /// (argon2): call it off the async threads.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(name).or(self.hashes.values().next()) else {
            return false;
        };
        if !self.hashes.contains_key(name) {
            // Spend the same argon2 time as for a known name, then refuse.
            let _ = Self::matches(hash, password);
            return false;
        }
        Self::matches(hash, password)
    }

    fn matches(hash: &str, password: &str) -> bool {
        if password.len() > MAX_PASSWORD {
            return false;
        }
        PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// An argon2id PHC string for `password`, with a fresh random salt from the kernel.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// A logged-in FTP user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUser {
    pub name: String,
    /// Named users may write; anonymous users only read.
    pub can_write: bool,
}

impl UserDetail for FtpUser {}

impl fmt::Display for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// libunftp's authenticator and user provider over [`Users`], for one session: it knows the
/// client's address (libunftp sees only the relay's loopback) and counts named users' wrong
/// passwords in the node's one login throttle, shared with the file server and the web.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    users: Arc<Users>,
    throttle: Throttle,
    peer: IpAddr,
    notes: Notes,
}

impl Login {
    pub(crate) fn new(users: Arc<Users>, throttle: Throttle, peer: IpAddr, notes: Notes) -> Login {
        Login {
            users,
            throttle,
            peer,
            notes,
        }
    }
}

#[async_trait]
impl Authenticator for Login {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        if ANONYMOUS.contains(&username.to_ascii_lowercase().as_str()) {
            self.notes.logged_in(true);
            return Ok(Principal {
                username: "anonymous".into(),
            });
        }
        let peer = self.peer;
        let attempt = self.throttle.begin_at(DOOR, peer).map_err(|wait| {
            self.notes.refuse(format!(
                "530 Too many wrong passwords from {peer}: logins refused for {}s more\r\n",
                wait.as_secs().max(1)
            ));
            AuthenticationError::BadPassword
        })?;
        // An unknown name costs a guess like a wrong password (names are guessed too), and
        // takes the same argon2 time, so it does not tell itself apart.
        let password = creds.password.clone().unwrap_or_default();
        let users = self.users.clone();
        let name = username.to_owned();
        let ok = tokio::task::spawn_blocking(move || users.verify(&name, &password))
            .await
            .unwrap_or(false);
        if ok {
            attempt.succeeded();
            self.notes.logged_in(false);
            Ok(Principal {
                username: username.to_owned(),
            })
        } else {
            attempt.failed_at(DOOR);
            Err(AuthenticationError::BadPassword)
        }
    }
}

#[async_trait]
impl UserDetailProvider for Login {
    type User = FtpUser;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<FtpUser, UserDetailError> {
        let can_write = self.users.hashes.contains_key(&principal.username);
        Ok(FtpUser {
            name: principal.username.clone(),
            can_write,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("s3cret").unwrap();
        let users = Users::parse(&format!("# uploaders\n\nalice:{hash}\n")).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users.verify("alice", "s3cret"));
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "s3cret"));
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        for (text, line) in [
            ("alice\n", 1),
            ("\nalice:nothash\n", 2),
            (
                "anonymous:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n",
                1,
            ),
        ] {
            match Users::parse(text) {
                Err(UsersError::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let long = format!("a:{}\n", "x".repeat(MAX_LINE));
        assert!(matches!(Users::parse(&long), Err(UsersError::Line { .. })));
    }

    #[test]
    fn huge_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 10]).unwrap();
        assert!(matches!(Users::load(&path), Err(UsersError::TooLarge)));
    }
}
