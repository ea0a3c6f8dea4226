//! `Share`: one folder served by a node, and the only code in meshfs that decides what a
//! path may reach.
//!
//! Every door (file server, FTP, HTTP, FUSE, peer `GET_FILE`) hands the path it received to
//! [`Share`] and gets back either metadata, a listing, an open [`ShareFile`] or a
//! [`ShareError`] that maps onto the file-server protocol's codes. Adapters never call
//! `std::fs` themselves.
//!
//! Confinement rules, checked on every call (never cached, so a symlink created after start is
//! judged when it is used):
//! - NUL bytes and `..` components are refused outright (code 2);
//! - a leading `/` is ignored and empty or `.` components are skipped, so `/a//b/./c` is `a/b/c`;
//! - the joined path is canonicalised (all symlinks resolved) and must still lie under the
//!   canonical root, otherwise it is refused (code 2);
//! - the resolved file is then opened with `O_NOFOLLOW | O_NONBLOCK`, so a last component swapped
//!   for a symlink between the check and the open fails instead of escaping, and a FIFO or device
//!   can never block the caller; anything that is not a regular file is refused (code 7).
//!
//! All methods block on the file system; async callers decide whether to run them inline (cheap
//! metadata calls) or on a blocking thread (listings, hashing).

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::proto::Code;

/// Longest path (in bytes) a request may name; Linux's own `PATH_MAX`.
pub const MAX_PATH_LEN: usize = 4096;

/// Why a share operation failed, in the vocabulary of the file-server protocol.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("no such file or directory")]
    NotFound,
    #[error("permission denied: {0}")]
    Denied(&'static str),
    #[error("not a regular file")]
    NotAFile,
    #[error("not a directory")]
    NotADir,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl ShareError {
    /// The protocol status code for this error (protocols.md §1).
    pub fn code(&self) -> Code {
        match self {
            ShareError::NotFound => Code::NotFound,
            ShareError::Denied(_) => Code::Denied,
            ShareError::NotAFile | ShareError::NotADir => Code::NotAFile,
            ShareError::Io(_) => Code::Internal,
        }
    }

    /// Classify an OS error met while resolving or opening a path.
    fn from_os(err: io::Error) -> ShareError {
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG) => {
                ShareError::NotFound
            }
            Some(libc::EACCES) | Some(libc::EPERM) => ShareError::Denied("not readable"),
            // O_NOFOLLOW on a symlink: it was swapped in after we resolved the path.
            Some(libc::ELOOP) => ShareError::Denied("symbolic link"),
            _ => ShareError::Io(err),
        }
    }
}

/// File or directory, as the protocol's `type:` and `f`/`d` fields name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Metadata of one entry of the share, as `stat` and `ls` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Last path component (empty for the share's root).
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl Entry {
    fn from_metadata(name: String, md: &Metadata) -> Option<Entry> {
        let kind = if md.is_file() {
            Kind::File
        } else if md.is_dir() {
            Kind::Dir
        } else {
            return None;
        };
        Some(Entry {
            name,
            kind,
            size: if kind == Kind::File { md.len() } else { 0 },
            mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
            mode: md.permissions().mode() & 0o7777,
        })
    }

    /// Modification time as a `SystemTime`.
    pub fn modified(&self) -> SystemTime {
        if self.mtime_ns >= 0 {
            UNIX_EPOCH + std::time::Duration::from_nanos(self.mtime_ns as u64)
        } else {
            UNIX_EPOCH - std::time::Duration::from_nanos(self.mtime_ns.unsigned_abs())
        }
    }

    /// `ls -l` style mode string, e.g. `-rw-r--r--` or `drwxr-xr-x`.
    pub fn mode_string(&self) -> String {
        let mut s = String::with_capacity(10);
        s.push(if self.kind == Kind::Dir { 'd' } else { '-' });
        for shift in [6, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        s
    }
}

/// A regular file of the share, opened for reading.
#[derive(Debug)]
pub struct ShareFile {
    file: File,
    /// The path relative to the share, normalised (`a/b/c`).
    path: String,
}

impl ShareFile {
    /// Read at `offset` without moving any cursor (safe to share between requests).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    /// Current length: re-read on every call, because files grow while cameras record.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// The normalised relative path this file was opened under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The underlying file, for zero-copy paths such as `sendfile`.
    pub fn as_file(&self) -> &File {
        &self.file
    }
}

/// Identity of a file's content for the hash cache: if none of these changed, neither did the
/// bytes (as far as a file system can tell us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl ContentId {
    fn of(md: &Metadata) -> ContentId {
        ContentId {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
            ctime_ns: md.ctime().saturating_mul(1_000_000_000) + md.ctime_nsec(),
        }
    }
}

/// How many recent BLAKE3 results the share remembers.
const HASH_CACHE_LEN: usize = 256;

/// One served folder. Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Share {
    inner: Arc<ShareInner>,
}

#[derive(Debug)]
struct ShareInner {
    /// Canonical absolute path of the root: every resolved path must start with it.
    root: PathBuf,
    /// Recently computed hashes, most recent last. Small and linear on purpose.
    hashes: Mutex<Vec<(ContentId, blake3::Hash)>>,
}

impl Share {
    /// Serve `dir`, which must exist and be a directory.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Share> {
        let root = fs::canonicalize(dir.as_ref())?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Share {
            inner: Arc::new(ShareInner {
                root,
                hashes: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The canonical root folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Normalise a requested path into its components, refusing what can never be valid.
    /// Returns the path relative to the root in the form `a/b/c` (empty for the root).
    pub fn normalize(path: &str) -> Result<String, ShareError> {
        if path.len() > MAX_PATH_LEN {
            return Err(ShareError::NotFound);
        }
        if path.contains('\0') {
            return Err(ShareError::Denied("NUL byte in path"));
        }
        let mut out = String::with_capacity(path.len());
        for comp in path.split('/') {
            match comp {
                "" | "." => {}
                ".." => return Err(ShareError::Denied("'..' is not allowed")),
                c => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(c);
                }
            }
        }
        Ok(out)
    }

    /// Resolve a requested path to an absolute path inside the share with every symlink
    /// followed, or refuse it. The path must exist.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ShareError> {
        let rel = Self::normalize(path)?;
        let root = &self.inner.root;
        let canonical = fs::canonicalize(root.join(&rel)).map_err(ShareError::from_os)?;
        if !canonical.starts_with(root) {
            return Err(ShareError::Denied("outside the share"));
        }
        Ok(canonical)
    }

    /// The path a requested path really names once every symlink is followed, relative to
    /// the root (`a/b/c`; empty for the root). Used to apply per-file rules to every name that
    /// leads to a file, links included.
    pub fn canonical_relative(&self, path: &str) -> Result<String, ShareError> {
        let abs = self.resolve(path)?;
        let rel = abs
            .strip_prefix(&self.inner.root)
            .map_err(|_| ShareError::Denied("outside the share"))?;
        rel.to_str().map(str::to_owned).ok_or(ShareError::NotFound)
    }

    /// Metadata of a file or directory.
    pub fn stat(&self, path: &str) -> Result<Entry, ShareError> {
        let abs = self.resolve(path)?;
        let md = fs::metadata(&abs).map_err(ShareError::from_os)?;
        let name = Self::normalize(path)?
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Entry::from_metadata(name, &md).ok_or(ShareError::NotAFile)
    }

    /// Entries of a directory, sorted by name. Entries that cannot be named on the wire (not
    /// UTF-8, or holding a line break), symlinks that leave the share and special files are
    /// left out: a listing only shows what can be opened.
    pub fn list(&self, dir: &str) -> Result<Vec<Entry>, ShareError> {
        let abs = self.resolve(dir)?;
        let md = fs::metadata(&abs).map_err(ShareError::from_os)?;
        if !md.is_dir() {
            return Err(ShareError::NotADir);
        }
        let mut entries = Vec::new();
        for item in fs::read_dir(&abs).map_err(ShareError::from_os)? {
            let item = item?;
            let Ok(name) = item.file_name().into_string() else {
                tracing::debug!(dir = %abs.display(), "skipping a name that is not UTF-8");
                continue;
            };
            if name.contains(['\n', '\r']) {
                continue;
            }
            let Ok(file_type) = item.file_type() else {
                continue;
            };
            let md = if file_type.is_symlink() {
                // Judge the link by where it leads, as `open` would.
                match fs::canonicalize(item.path()) {
                    Ok(target) if target.starts_with(&self.inner.root) => {
                        match fs::metadata(&target) {
                            Ok(md) => md,
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                }
            } else {
                match item.metadata() {
                    Ok(md) => md,
                    Err(_) => continue,
                }
            };
            if let Some(entry) = Entry::from_metadata(name, &md) {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Open a regular file for reading.
    pub fn open_file(&self, path: &str) -> Result<ShareFile, ShareError> {
        let abs = self.resolve(path)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&abs)
            .map_err(ShareError::from_os)?;
        let md = file.metadata()?;
        if !md.is_file() {
            return Err(ShareError::NotAFile);
        }
        Ok(ShareFile {
            file,
            path: Self::normalize(path)?,
        })
    }

    /// BLAKE3 of a whole file, streamed from disk. Results are remembered for files whose
    /// inode, size, mtime and ctime have not changed, so repeated downloads of a large video
    /// do not re-read it.
    pub fn hash(&self, path: &str) -> Result<blake3::Hash, ShareError> {
        let file = self.open_file(path)?;
        let id = ContentId::of(&file.metadata()?);
        if let Some(hash) = self.cached_hash(id) {
            return Ok(hash);
        }
        let mut hasher = blake3::Hasher::new();
        let mut reader = &file.file;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hash = hasher.finalize();
        // Only remember the result if the file did not change while we read it.
        if ContentId::of(&file.metadata()?) == id {
            let mut cache = self.inner.hashes.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= HASH_CACHE_LEN {
                cache.remove(0);
            }
            cache.push((id, hash));
        }
        Ok(hash)
    }

    fn cached_hash(&self, id: ContentId) -> Option<blake3::Hash> {
        let cache = self.inner.hashes.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().rev().find(|(k, _)| *k == id).map(|(_, h)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn share() -> (tempfile::TempDir, Share) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("share")).unwrap();
        fs::write(dir.path().join("share/a.txt"), b"hello").unwrap();
        fs::create_dir(dir.path().join("share/sub")).unwrap();
        fs::write(dir.path().join("share/sub/b.txt"), b"bee").unwrap();
        fs::write(dir.path().join("secret"), b"secret").unwrap();
        let share = Share::open(dir.path().join("share")).unwrap();
        (dir, share)
    }

    #[test]
    fn normalize_strips_and_refuses() {
        assert_eq!(Share::normalize("/a//b/./c").unwrap(), "a/b/c");
        assert_eq!(Share::normalize("").unwrap(), "");
        assert!(matches!(
            Share::normalize("a/../b"),
            Err(ShareError::Denied(_))
        ));
        assert!(matches!(
            Share::normalize("a\0b"),
            Err(ShareError::Denied(_))
        ));
    }

    #[test]
    fn symlinks_inside_are_followed_outside_refused() {
        let (dir, share) = share();
        symlink("sub/b.txt", dir.path().join("share/inside")).unwrap();
        symlink(dir.path().join("secret"), dir.path().join("share/outside")).unwrap();
        let mut buf = [0u8; 3];
        let f = share.open_file("inside").unwrap();
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), 3);
        assert_eq!(&buf, b"bee");
        assert!(matches!(
            share.open_file("outside"),
            Err(ShareError::Denied(_))
        ));
        let names: Vec<_> = share
            .list("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "inside", "sub"]);
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let (dir, share) = share();
        let fifo = dir.path().join("share/pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(share.open_file("pipe"), Err(ShareError::NotAFile)));
    }

    #[test]
    fn mode_string_and_hash_cache() {
        let (_dir, share) = share();
        let e = share.stat("sub").unwrap();
        assert_eq!(e.kind, Kind::Dir);
        assert!(e.mode_string().starts_with('d'));
        let h1 = share.hash("a.txt").unwrap();
        assert_eq!(h1, blake3::hash(b"hello"));
        assert_eq!(share.hash("a.txt").unwrap(), h1);
    }
}
