//! `Access`: which passwords unlock the share, or single files of it.
//!
//! A node may protect its whole share (`--password`), and offer single files behind their own
//! password (seed 004). A connection proves passwords with `auth`; each proven password is kept
//! as a [`Keys`] entry for that connection only.
//!
//! Passwords are kept only as BLAKE3 digests, compared with `blake3::Hash`'s constant-time
//! equality, and never logged. They are LAN-grade secrets over a plain-text protocol: see
//! SECURITY.md for what that does and does not protect.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::share::{Share, ShareError, ShareFile};
use crate::throttle::Throttle;

/// Context string of the password key derivation (changing it invalidates nothing stored:
/// digests live only in memory).
const DIGEST_CONTEXT: &str = "meshfs 2026-11 password digest v1";

/// A keyed digest of a password; `blake3::Hash` compares in constant time. Clients derive the
/// same digest to prove a password with `pake` ([`crate::pake::Secret::from_password`]).
pub(crate) fn digest(password: &str) -> blake3::Hash {
    blake3::Hash::from_bytes(blake3::derive_key(DIGEST_CONTEXT, password.as_bytes()))
}

/// Why [`Access::open_file`] gave no file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The share's password, or the file's own, is needed and was not proven.
    #[error("password required")]
    Locked,
    #[error(transparent)]
    Share(#[from] ShareError),
}

/// The passwords a connection has proven. Wrong ones are counted by the node's one
/// [`Throttle`], per client address, not here.
#[derive(Debug, Default, Clone)]
pub struct Keys {
    proven: Vec<blake3::Hash>,
}

impl Keys {
    fn holds(&self, h: &blake3::Hash) -> bool {
        self.proven.iter().any(|p| p == h)
    }
}

/// The protection rules of one node. Cheap to clone.
///
/// It also carries the node's one [`Throttle`] of failed logins: every door is handed the
/// node's `Access`, so every door counts wrong passwords from an address in the same table
/// (FTP users' own passwords included).
#[derive(Debug, Clone, Default)]
pub struct Access {
    inner: Arc<RwLock<Rules>>,
    throttle: Throttle,
}

#[derive(Debug, Default)]
struct Rules {
    share: Option<blake3::Hash>,
    /// Normalised relative path → digest of its password.
    files: HashMap<String, blake3::Hash>,
}

impl Access {
    /// No protection at all.
    pub fn open() -> Access {
        Access::default()
    }

    /// Failed logins per client address, shared by every door of this node.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Require `password` for everything in the share.
    pub fn set_share_password(&self, password: &str) {
        self.write().share = Some(digest(password));
    }

    /// Require `password` to read the file at `path` (relative to the share).
    pub fn protect_file(&self, path: &str, password: &str) -> Result<(), ShareError> {
        let rel = Share::normalize(path)?;
        self.write().files.insert(rel, digest(password));
        Ok(())
    }

    /// Drop the password of one file.
    pub fn unprotect_file(&self, path: &str) {
        if let Ok(rel) = Share::normalize(path) {
            self.write().files.remove(&rel);
        }
    }

    /// True when any password is configured (so `auth` means something).
    pub fn is_protected(&self) -> bool {
        let r = self.read();
        r.share.is_some() || !r.files.is_empty()
    }

    /// True when `path` itself needs a password (share-wide or its own).
    pub fn is_file_protected(&self, path: &str) -> bool {
        let r = self.read();
        r.share.is_some() || Share::normalize(path).is_ok_and(|rel| r.files.contains_key(&rel))
    }

    /// Check a password; on success it joins `keys`. Returns whether it unlocked anything.
    pub fn authenticate(&self, password: &str, keys: &mut Keys) -> bool {
        let d = digest(password);
        let r = self.read();
        let ok = r.share.as_ref() == Some(&d) || r.files.values().any(|h| *h == d);
        if ok && !keys.holds(&d) {
            keys.proven.push(d);
        }
        ok
    }

    /// The password a `pake` proof for `scope` runs against: `""` is the share's password, a
    /// path is that file's own. `None` when no such password is set.
    pub fn pake_secret(&self, scope: &str) -> Option<crate::pake::Secret> {
        self.scope_digest(scope)
            .map(|d| crate::pake::Secret::from_digest(d.as_bytes()))
    }

    /// A `pake` proof for `scope` succeeded: its password joins `keys`. False when the scope
    /// has no password (any more).
    pub fn grant(&self, scope: &str, keys: &mut Keys) -> bool {
        let Some(d) = self.scope_digest(scope) else {
            return false;
        };
        if !keys.holds(&d) {
            keys.proven.push(d);
        }
        true
    }

    fn scope_digest(&self, scope: &str) -> Option<blake3::Hash> {
        let r = self.read();
        if scope.is_empty() {
            r.share
        } else {
            let rel = Share::normalize(scope).ok()?;
            r.files.get(&rel).copied()
        }
    }

    /// May a connection holding `keys` see the share at all (list, stat)?
    pub fn may_browse(&self, keys: &Keys) -> bool {
        self.read().share.as_ref().is_none_or(|h| keys.holds(h))
    }

    /// May a connection holding `keys` read the content of `path` in `share`? The rule of the
    /// file itself applies under every name that leads to it: the path as asked, and the path
    /// it resolves to (so an in-share symlink to a protected file is protected too).
    ///
    /// A check before a later open resolves the path twice: doors should prefer
    /// [`Access::open_file`], which checks the very file it opened.
    pub fn may_read(&self, share: &Share, path: &str, keys: &Keys) -> bool {
        let r = self.read();
        if !r.share_unlocked(keys) {
            return false;
        }
        if r.files.is_empty() {
            return true;
        }
        // Paths Share refuses are refused later, with the right code.
        Share::normalize(path).map_or(true, |rel| r.file_unlocked(&rel, keys))
            && share
                .canonical_relative(path)
                .map_or(true, |rel| r.file_unlocked(&rel, keys))
    }

    /// Open `path` in `share` for a connection holding `keys`, checking the rules against the
    /// file actually opened: the share's password and the asked name first (without touching
    /// the disk), then the name the opened file really has. A symlink swapped in between can
    /// therefore not serve a protected file under an unprotected name.
    pub fn open_file(
        &self,
        share: &Share,
        path: &str,
        keys: &Keys,
    ) -> Result<ShareFile, ReadError> {
        {
            let r = self.read();
            if !r.share_unlocked(keys) {
                return Err(ReadError::Locked);
            }
            // Paths Share refuses are refused by the open below, with the right code.
            if let Ok(rel) = Share::normalize(path)
                && !r.file_unlocked(&rel, keys)
            {
                return Err(ReadError::Locked);
            }
        }
        let file = share.open_file(path)?;
        let r = self.read();
        if !r.files.is_empty() {
            // Fails closed: a file whose place cannot be told is not served when any file has
            // a password.
            let real = share.canonical_of(&file)?;
            if !r.file_unlocked(&real, keys) {
                return Err(ReadError::Locked);
            }
        }
        Ok(file)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rules> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Rules {
    fn share_unlocked(&self, keys: &Keys) -> bool {
        self.share.as_ref().is_none_or(|h| keys.holds(h))
    }

    fn file_unlocked(&self, rel: &str, keys: &Keys) -> bool {
        self.files.get(rel).is_none_or(|h| keys.holds(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_and_file_passwords() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("clips")).unwrap();
        std::fs::write(dir.path().join("clips/secret.mp4"), b"s").unwrap();
        std::os::unix::fs::symlink("clips/secret.mp4", dir.path().join("alias")).unwrap();
        let share = Share::open(dir.path()).unwrap();
        let access = Access::open();
        let mut keys = Keys::default();
        assert!(access.may_read(&share, "a", &keys) && access.may_browse(&keys));
        access.protect_file("/clips//secret.mp4", "s3cret").unwrap();
        assert!(!access.may_read(&share, "clips/secret.mp4", &keys));
        // A link to the protected file is protected too.
        assert!(!access.may_read(&share, "alias", &keys));
        assert!(access.may_read(&share, "clips/other.mp4", &keys));
        assert!(!access.authenticate("wrong", &mut keys));
        assert!(access.authenticate("s3cret", &mut keys));
        assert!(access.may_read(&share, "clips/secret.mp4", &keys));
        assert!(access.may_read(&share, "alias", &keys));

        access.set_share_password("whole");
        assert!(!access.may_browse(&keys) && !access.may_read(&share, "clips/other.mp4", &keys));
        assert!(access.authenticate("whole", &mut keys));
        assert!(access.may_browse(&keys) && access.may_read(&share, "clips/other.mp4", &keys));
    }

    /// A folder swapped for a symlink to a protected folder — before the request, or between
    /// the check of the asked name and the open — never serves the protected file.
    #[test]
    fn open_file_checks_the_file_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        std::fs::create_dir_all(root.join("priv")).unwrap();
        std::fs::create_dir_all(root.join("pub")).unwrap();
        std::fs::write(root.join("priv/clip.mp4"), b"secret").unwrap();
        std::fs::write(root.join("pub/clip.mp4"), b"public").unwrap();
        for share in [
            Share::open(&root).unwrap(),
            Share::open_walking(&root).unwrap(),
        ] {
            let access = Access::open();
            access.protect_file("priv/clip.mp4", "pw").unwrap();
            let keys = Keys::default();
            let read = |f: ShareFile| {
                let mut buf = [0u8; 6];
                f.read_at(&mut buf, 0).unwrap();
                buf
            };
            assert_eq!(
                read(access.open_file(&share, "pub/clip.mp4", &keys).unwrap()),
                *b"public"
            );
            assert!(matches!(
                access.open_file(&share, "priv/clip.mp4", &keys),
                Err(ReadError::Locked)
            ));
            // Swapped right after the open resolved the path: the file opened is served.
            let r = root.clone();
            share.set_resolve_hook(Some(std::sync::Arc::new(move |_: &str| {
                if !r.join("pub").is_symlink() {
                    std::fs::rename(r.join("pub"), r.join("pub.old")).unwrap();
                    std::os::unix::fs::symlink("priv", r.join("pub")).unwrap();
                }
            })));
            let f = access.open_file(&share, "pub/clip.mp4", &keys).unwrap();
            assert_eq!(read(f), *b"public");
            // Swapped before the request: the protected file is refused under the free name.
            share.set_resolve_hook(None);
            assert!(matches!(
                access.open_file(&share, "pub/clip.mp4", &keys),
                Err(ReadError::Locked)
            ));
            assert!(!access.may_read(&share, "pub/clip.mp4", &keys));
            std::fs::remove_file(root.join("pub")).unwrap();
            std::fs::rename(root.join("pub.old"), root.join("pub")).unwrap();
        }
    }

    /// A `pake` proof runs against the digest `Access` keeps: the client's secret, derived
    /// from the password, matches the node's, derived from the digest; a grant unlocks what
    /// `auth` would have.
    #[test]
    fn pake_secrets_match_the_kept_passwords() {
        use crate::pake::Secret;
        let access = Access::open();
        assert!(access.pake_secret("").is_none());
        access.set_share_password("whole");
        access.protect_file("clips/a.mp4", "own").unwrap();
        assert_eq!(access.pake_secret(""), Some(Secret::from_password("whole")));
        assert_eq!(
            access.pake_secret("/clips//a.mp4"),
            Some(Secret::from_password("own"))
        );
        assert!(access.pake_secret("clips/b.mp4").is_none());
        let mut keys = Keys::default();
        assert!(access.grant("", &mut keys));
        assert!(access.may_browse(&keys));
        assert!(!access.grant("clips/b.mp4", &mut keys));
    }
}
