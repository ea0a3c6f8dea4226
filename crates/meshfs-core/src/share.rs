//! `Share`: one folder served by a node, and the only code in meshfs that decides what a
//! path may reach.
//!
//! Every door (file server, FTP, HTTP, FUSE, peer `GET_FILE`, cluster replication) hands the
//! path it received to [`Share`] and gets back either metadata, a listing, an open
//! [`ShareFile`], a [`Dir`] to change, or a [`ShareError`] that maps onto the file-server
//! protocol's codes. Adapters never call `std::fs` on shared paths.
//!
//! Confinement rules, checked on every call (never cached, so a symlink created after start is
//! judged when it is used):
//! - NUL bytes and `..` components are refused outright (code 2);
//! - a leading `/` is ignored and empty or `.` components are skipped, so `/a//b/./c` is `a/b/c`;
//! - the path is resolved *once*, relative to the root folder held open, into an open
//!   descriptor ([`resolve`]): symlinks are followed while they stay inside the share, and any
//!   step that would leave it is refused (code 2). What is then read, listed, checked against a
//!   password or changed is that descriptor, never the path again, so nothing swapped in
//!   between a check and a use (a parent folder replaced by a symlink, say) can escape;
//! - files are opened `O_NONBLOCK`, so a FIFO or device can never block the caller; anything
//!   that is not a regular file is refused (code 7);
//! - changes ([`Share::create_dir`], [`Share::remove_file`], [`Share::rename`],
//!   [`Share::new_file`]…) resolve the parent folder beneath the root and act on the last
//!   component inside it without following it (see [`crate::dir`]).
//!
//! All methods block on the file system; async callers decide whether to run them inline (cheap
//! metadata calls) or on a blocking thread (listings, hashing).

mod flight;
mod resolve;
pub mod skipped;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::blocks::{self, BlockHasher, BlockHashes};
use crate::dir::{Dir, TempFile};
use crate::proto::Code;
use crate::sys;
use resolve::{Resolved, Resolver};
use skipped::{Reason, Skipped};

/// Longest path (in bytes) a request may name; Linux's own `PATH_MAX`.
pub const MAX_PATH_LEN: usize = 4096;

/// `name` inside the share-relative folder `dir` (`""` is the root).
pub fn join_path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

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
            Some(libc::EXDEV) => ShareError::Denied("outside the share"),
            _ => ShareError::Io(err),
        }
    }

    /// Classify an OS error met while changing the share.
    fn from_write(err: io::Error) -> ShareError {
        match err.raw_os_error() {
            Some(libc::ENOENT) => ShareError::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => ShareError::Denied("not writable"),
            Some(libc::EISDIR) => ShareError::NotAFile,
            Some(libc::ENOTDIR) => ShareError::NotADir,
            Some(libc::EINVAL) if err.kind() == io::ErrorKind::InvalidInput => {
                ShareError::Denied("not a file name")
            }
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

/// A file's modification time in nanoseconds since the epoch, as listings and retention
/// compare it (`time_t` and the nanoseconds are 32-bit on 32-bit ARM, hence the widening).
#[allow(clippy::useless_conversion)]
pub(crate) fn mtime_ns(st: &libc::stat64) -> i64 {
    i64::from(st.st_mtime).saturating_mul(1_000_000_000) + i64::from(st.st_mtime_nsec)
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
    fn from_stat(name: String, st: &libc::stat64) -> Option<Entry> {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            _ => return None,
        };
        Some(Entry {
            name,
            kind,
            size: if kind == Kind::File {
                st.st_size as u64
            } else {
                0
            },
            mtime_ns: mtime_ns(st),
            mode: st.st_mode & 0o7777,
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
    /// Where it really lies, when the resolution already knew (see [`Share::canonical_of`]).
    canonical: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Most bytes of block lists ([`BlockHashes`]) the share remembers: the lists of 128 GiB of
/// files (32 bytes per MiB), whatever their number.
const BLOCK_CACHE_BYTES: usize = 4 << 20;

/// Called after every resolution beneath the root, before its result is used (tests only:
/// they swap folders for symlinks there, to prove nothing is resolved twice).
#[cfg(any(test, feature = "testing"))]
pub type ResolveHook = Arc<dyn Fn(&str) + Send + Sync>;

/// One served folder. Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Share {
    inner: Arc<ShareInner>,
}

struct ShareInner {
    /// The root folder held open, and how paths are resolved beneath it.
    resolver: Resolver,
    /// Recently computed hashes, most recent last. Small and linear on purpose.
    hashes: Mutex<Vec<(ContentId, blake3::Hash)>>,
    /// Recently computed block lists, most recent last, at most [`BLOCK_CACHE_BYTES`] in all.
    blocks: Mutex<VecDeque<(ContentId, Arc<BlockHashes>)>>,
    /// Block lists being computed, by version and length: a request for one under way waits
    /// for it instead of reading the file again ([`flight`]).
    hashing: flight::Flights<(ContentId, u64), Option<Arc<BlockHashes>>>,
    /// Entries listings leave out, logged once each.
    skipped: Skipped,
    #[cfg(any(test, feature = "testing"))]
    hook: Mutex<Option<ResolveHook>>,
}

impl std::fmt::Debug for ShareInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("root", &self.resolver.root())
            .finish_non_exhaustive()
    }
}

/// A new file being written into the share: a hidden temporary file in the target's folder,
/// renamed over the target by [`NewFile::persist`], removed if dropped before.
#[derive(Debug)]
pub struct NewFile {
    temp: TempFile,
    name: String,
}

impl NewFile {
    /// The temporary file, to write to.
    pub fn file(&self) -> &File {
        self.temp.file()
    }

    /// `fsync`, then rename over the target, atomically.
    pub fn persist(self) -> Result<(), ShareError> {
        self.temp
            .persist(&self.name)
            .map_err(ShareError::from_write)
    }
}

impl Share {
    /// Serve `dir`, which must exist and be a directory.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Share> {
        Self::open_with(dir.as_ref(), true)
    }

    /// Serve `dir` resolving every path by the component walk, even where `openat2` exists
    /// (the fallback, tested on kernels that have `openat2`).
    pub fn open_walking(dir: impl AsRef<Path>) -> io::Result<Share> {
        Self::open_with(dir.as_ref(), false)
    }

    fn open_with(dir: &Path, openat2: bool) -> io::Result<Share> {
        let root = fs::canonicalize(dir)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Share {
            inner: Arc::new(ShareInner {
                resolver: Resolver::new(root, openat2)?,
                hashes: Mutex::new(Vec::new()),
                blocks: Mutex::new(VecDeque::new()),
                hashing: flight::Flights::default(),
                skipped: Skipped::default(),
                #[cfg(any(test, feature = "testing"))]
                hook: Mutex::new(None),
            }),
        })
    }

    /// The canonical root folder.
    pub fn root(&self) -> &Path {
        self.inner.resolver.root()
    }

    /// Whether paths are resolved with `openat2` (else by the walk).
    pub fn uses_openat2(&self) -> bool {
        self.inner.resolver.uses_openat2()
    }

    /// Run `hook` after every resolution, with the share-relative path resolved.
    #[cfg(any(test, feature = "testing"))]
    pub fn set_resolve_hook(&self, hook: Option<ResolveHook>) {
        *self.inner.hook.lock().unwrap_or_else(|e| e.into_inner()) = hook;
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

    /// Resolve the normalised `rel` beneath the root and open it with `flags`: the one place
    /// a path becomes a descriptor.
    fn open_beneath(&self, rel: &str, flags: libc::c_int) -> Result<Resolved, ShareError> {
        let resolved = self.inner.resolver.open(rel, flags)?;
        #[cfg(any(test, feature = "testing"))]
        {
            let hook = self
                .inner
                .hook
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(hook) = hook {
                hook(rel);
            }
        }
        Ok(resolved)
    }

    /// Resolve a requested path to an absolute path inside the share with every symlink
    /// followed, or refuse it. The path must exist. Only for naming (a set of folders seen,
    /// a message): reaching it again by this path would resolve it a second time.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ShareError> {
        let rel = self.canonical_relative(path)?;
        Ok(self.root().join(rel))
    }

    /// The path a requested path really names once every symlink is followed, relative to
    /// the root (`a/b/c`; empty for the root). Used to apply per-file rules to every name that
    /// leads to a file, links included.
    pub fn canonical_relative(&self, path: &str) -> Result<String, ShareError> {
        let rel = Self::normalize(path)?;
        let resolved = self.open_beneath(&rel, libc::O_PATH)?;
        self.inner.resolver.canonical(&resolved)
    }

    /// Where an open file of this share really lies, relative to the root: the name its
    /// per-file rules are keyed by. Refused when that cannot be told (the file was moved out
    /// of the share or deleted since it was opened).
    pub fn canonical_of(&self, file: &ShareFile) -> Result<String, ShareError> {
        match &file.canonical {
            Some(c) => Ok(c.clone()),
            None => self.inner.resolver.canonical_of(file.file.as_fd()),
        }
    }

    /// Metadata of a file or directory.
    pub fn stat(&self, path: &str) -> Result<Entry, ShareError> {
        let rel = Self::normalize(path)?;
        let resolved = self.open_beneath(&rel, libc::O_PATH)?;
        let st = sys::fstatat(resolved.fd.as_fd(), c"", libc::AT_EMPTY_PATH)
            .map_err(ShareError::from_os)?;
        let name = rel.rsplit('/').next().unwrap_or_default().to_owned();
        Entry::from_stat(name, &st).ok_or(ShareError::NotAFile)
    }

    /// Entries of a directory, sorted by name. Entries that cannot be named on the wire (not
    /// UTF-8, or holding a line break), symlinks that leave the share and special files are
    /// left out: a listing only shows what can be opened.
    pub fn list(&self, dir: &str) -> Result<Vec<Entry>, ShareError> {
        let rel = Self::normalize(dir)?;
        let resolved = self.open_dir_fd(&rel)?;
        let dir_fd = resolved.fd.try_clone()?;
        let mut entries = Vec::new();
        for item in sys::read_dir(dir_fd).map_err(ShareError::from_os)? {
            // What cannot be served is left out, and said once per path (see `skipped`).
            let skip = |name: &[u8], why| self.inner.skipped.note(&rel, name, why);
            let name = match String::from_utf8(item) {
                Ok(name) => name,
                Err(e) => {
                    skip(e.as_bytes(), Reason::NotUtf8);
                    continue;
                }
            };
            if name.contains(['\n', '\r']) {
                skip(name.as_bytes(), Reason::LineBreak);
                continue;
            }
            let Ok(cname) = sys::cstr(OsStr::new(&name)) else {
                continue;
            };
            let Ok(mut st) = sys::fstatat(resolved.fd.as_fd(), &cname, libc::AT_SYMLINK_NOFOLLOW)
            else {
                // Gone since it was read: nothing to say.
                continue;
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                // Judge the link by where it leads, as `open` would: beneath the root.
                let link = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let target = self.inner.resolver.open(&link, libc::O_PATH).and_then(|r| {
                    sys::fstatat(r.fd.as_fd(), c"", libc::AT_EMPTY_PATH)
                        .map_err(ShareError::from_os)
                });
                match target {
                    Ok(t) => st = t,
                    Err(_) => {
                        skip(name.as_bytes(), Reason::LeadsOut);
                        continue;
                    }
                }
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFREG || kind == libc::S_IFDIR {
                entries.extend(Entry::from_stat(name, &st));
            } else {
                skip(name.as_bytes(), Reason::NotAFile);
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Open a regular file for reading.
    pub fn open_file(&self, path: &str) -> Result<ShareFile, ShareError> {
        let rel = Self::normalize(path)?;
        let resolved = self.open_beneath(&rel, libc::O_RDONLY | libc::O_NONBLOCK)?;
        let file = File::from(resolved.fd);
        let md = file.metadata()?;
        if !md.is_file() {
            return Err(ShareError::NotAFile);
        }
        Ok(ShareFile {
            file,
            path: rel,
            canonical: resolved.canonical,
        })
    }

    /// BLAKE3 of a whole file, streamed from disk. Results are remembered for files whose
    /// inode, size, mtime and ctime have not changed, so repeated downloads of a large video
    /// do not re-read it.
    pub fn hash(&self, path: &str) -> Result<blake3::Hash, ShareError> {
        let file = self.open_file(path)?;
        self.hash_file(&file)
    }

    /// BLAKE3 of a file already opened (and checked) through this share: its block list's
    /// root, so that `hash` and `blocks` of one version share one read ([`Share::block_hashes`]).
    pub fn hash_file(&self, file: &ShareFile) -> Result<blake3::Hash, ShareError> {
        let id = ContentId::of(&file.metadata()?);
        if let Some(hash) = self.cached_hash(id) {
            return Ok(hash);
        }
        if blocks::fits(id.size)
            && let Some(list) = self.block_hashes(file, id.size)?
        {
            return Ok(list.root());
        }
        // Too large to list by block, or shorter than a moment ago: read it to its end.
        crate::metrics::metrics().hash_reads_total.inc();
        let hash = hash_first(file, u64::MAX)?.0;
        self.remember_hash(file, id, hash)?;
        Ok(hash)
    }

    /// BLAKE3 of the first `len` bytes of `file`: what a client that took a snapshot of a
    /// file still being written (a recording) compares its copy with. Never a byte past
    /// `len`, even if the file grows meanwhile. `None` when the file holds fewer bytes (it
    /// shrank or was replaced). Computed as the root of the block list, shared like it.
    pub fn hash_prefix(
        &self,
        file: &ShareFile,
        len: u64,
    ) -> Result<Option<blake3::Hash>, ShareError> {
        let id = ContentId::of(&file.metadata()?);
        let whole = id.size == len;
        if let Some(hash) = self.cached_hash(id).filter(|_| whole) {
            return Ok(Some(hash));
        }
        if blocks::fits(len) {
            return Ok(self.block_hashes(file, len)?.map(|list| list.root()));
        }
        crate::metrics::metrics().hash_reads_total.inc();
        let (hash, read) = hash_first(file, len)?;
        if read < len {
            return Ok(None);
        }
        if whole {
            self.remember_hash(file, id, hash)?;
        }
        Ok(Some(hash))
    }

    /// The chaining values of the 1 MiB blocks of `file`'s first `len` bytes (`blocks`,
    /// protocols.md §1), read once; `None` when the file holds fewer bytes. The list of a
    /// whole file is remembered per version (device, inode, size, times), so a second request
    /// reads nothing, and its root, the file's BLAKE3, answers a later `hash` too. Requests
    /// that arrive while the same version and length are being read wait for that read
    /// (single flight): a client's retry, or a second downloader, never starts another.
    pub fn block_hashes(
        &self,
        file: &ShareFile,
        len: u64,
    ) -> Result<Option<Arc<BlockHashes>>, ShareError> {
        let id = ContentId::of(&file.metadata()?);
        let whole = id.size == len;
        if whole && let Some(list) = self.cached_blocks(id) {
            return Ok(Some(list));
        }
        if id.size < len {
            // Shorter than asked: nothing to read (the reply says so).
            return Ok(None);
        }
        let mut hasher = BlockHasher::new(len).map_err(io::Error::other)?;
        self.inner.hashing.run((id, len), || {
            // A read that ended just before this one was to begin left its list here.
            if whole && let Some(list) = self.cached_blocks(id) {
                return Ok(Some(list));
            }
            crate::metrics::metrics().hash_reads_total.inc();
            let read = read_first(file, len, |piece| hasher.update(piece))?;
            let Some(list) = hasher.finish().filter(|_| read == len) else {
                return Ok(None);
            };
            let list = Arc::new(list);
            if whole {
                self.remember_hash(file, id, list.root())?;
                if ContentId::of(&file.metadata()?) == id {
                    self.remember_blocks(id, list.clone());
                }
            }
            Ok(Some(list))
        })
    }

    fn cached_blocks(&self, id: ContentId) -> Option<Arc<BlockHashes>> {
        let cache = self.inner.blocks.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .rev()
            .find(|(k, _)| *k == id)
            .map(|(_, l)| l.clone())
    }

    fn remember_blocks(&self, id: ContentId, list: Arc<BlockHashes>) {
        if list.as_bytes().len() > BLOCK_CACHE_BYTES {
            return;
        }
        let mut cache = self.inner.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: usize = cache.iter().map(|(_, l)| l.as_bytes().len()).sum();
        total += list.as_bytes().len();
        while total > BLOCK_CACHE_BYTES
            && let Some((_, old)) = cache.pop_front()
        {
            total -= old.as_bytes().len();
        }
        cache.push_back((id, list));
    }

    /// Cache `hash` as the content of `id`, unless the file changed while it was read.
    fn remember_hash(
        &self,
        file: &ShareFile,
        id: ContentId,
        hash: blake3::Hash,
    ) -> Result<(), ShareError> {
        if ContentId::of(&file.metadata()?) == id {
            let mut cache = self.inner.hashes.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= HASH_CACHE_LEN {
                cache.remove(0);
            }
            cache.push((id, hash));
        }
        Ok(())
    }

    fn cached_hash(&self, id: ContentId) -> Option<blake3::Hash> {
        let cache = self.inner.hashes.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().rev().find(|(k, _)| *k == id).map(|(_, h)| *h)
    }

    /// The folder that holds `path`, opened beneath the root, and `path`'s last component —
    /// what every change acts on. The root itself has no name and cannot be replaced, removed
    /// or renamed; names a listing could not show (line breaks) are refused too.
    pub fn parent_dir(&self, path: &str) -> Result<(Dir, String), ShareError> {
        let (parent, name) = Self::split_target(path)?;
        Ok((self.open_dir(&parent)?, name))
    }

    /// Like [`Share::parent_dir`], creating missing parent folders (confined, one at a time).
    pub fn parent_dir_creating(&self, path: &str) -> Result<(Dir, String), ShareError> {
        let (parent, name) = Self::split_target(path)?;
        Ok((self.create_dir_all(&parent)?, name))
    }

    fn split_target(path: &str) -> Result<(String, String), ShareError> {
        let rel = Self::normalize(path)?;
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
        if name.is_empty() {
            return Err(ShareError::Denied("the share's root"));
        }
        if name.contains(['\n', '\r']) {
            return Err(ShareError::Denied("line break in a name"));
        }
        Ok((parent.to_owned(), name.to_owned()))
    }

    /// Open the folder `rel` (normalised) beneath the root: resolved to an `O_PATH`
    /// descriptor first, so nothing but a folder is ever really opened (no device, no FIFO).
    fn open_dir_fd(&self, rel: &str) -> Result<Resolved, ShareError> {
        let resolved = self.open_beneath(rel, libc::O_PATH)?;
        let st = sys::fstatat(resolved.fd.as_fd(), c"", libc::AT_EMPTY_PATH)
            .map_err(ShareError::from_os)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ShareError::NotADir);
        }
        let fd = sys::openat(
            resolved.fd.as_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(ShareError::from_os)?;
        Ok(Resolved {
            fd,
            canonical: resolved.canonical,
        })
    }

    fn open_dir(&self, rel: &str) -> Result<Dir, ShareError> {
        let resolved = self.open_dir_fd(rel)?;
        let shown = match &resolved.canonical {
            Some(c) => self.root().join(c),
            None => self.root().join(rel),
        };
        Ok(Dir::from_fd(resolved.fd, shown))
    }

    /// Open the folder `dir` of the share, creating it and any missing parents.
    pub fn create_dir_all(&self, dir: &str) -> Result<Dir, ShareError> {
        let rel = Self::normalize(dir)?;
        match self.open_dir(&rel) {
            Ok(d) => return Ok(d),
            Err(ShareError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let (parent, name) = Self::split_target(&rel)?;
        let parent = self.create_dir_all(&parent)?;
        match parent.create_dir(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ShareError::from_write(e)),
        }
        // Never through a link: a link swapped in for the new folder fails here.
        parent.open_dir(&name).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => ShareError::NotADir,
            _ => ShareError::from_write(e),
        })
    }

    /// Create the folder `path` (its parent must exist).
    pub fn create_dir(&self, path: &str) -> Result<(), ShareError> {
        let (dir, name) = self.parent_dir(path)?;
        dir.create_dir(&name).map_err(ShareError::from_write)
    }

    /// Remove the file `path` (a symlink itself, never what it leads to).
    pub fn remove_file(&self, path: &str) -> Result<(), ShareError> {
        let (dir, name) = self.parent_dir(path)?;
        dir.remove_file(&name).map_err(ShareError::from_write)
    }

    /// Remove the empty folder `path`.
    pub fn remove_dir(&self, path: &str) -> Result<(), ShareError> {
        let (dir, name) = self.parent_dir(path)?;
        dir.remove_dir(&name).map_err(ShareError::from_write)
    }

    /// Rename `from` to `to`, both inside the share, replacing what `to` named.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), ShareError> {
        let (from_dir, from_name) = self.parent_dir(from)?;
        let (to_dir, to_name) = self.parent_dir(to)?;
        from_dir
            .rename(&from_name, &to_dir, &to_name)
            .map_err(ShareError::from_write)
    }

    /// Start writing a new version of the file `path`: a hidden temporary file in its folder
    /// that [`NewFile::persist`] renames over it. A folder (or a link to one) at `path` is
    /// refused; a link to a file is replaced, never written through.
    pub fn new_file(&self, path: &str) -> Result<NewFile, ShareError> {
        let (dir, name) = self.parent_dir(path)?;
        if let Ok(st) = dir.stat(&name, true)
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
        {
            return Err(ShareError::NotAFile);
        }
        let temp = dir.temp_file().map_err(ShareError::from_write)?;
        Ok(NewFile { temp, name })
    }
}

/// BLAKE3 of `file` up to `limit` bytes (or its end), and how many bytes that was.
fn hash_first(file: &ShareFile, limit: u64) -> io::Result<(blake3::Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let read = read_first(file, limit, |piece| {
        hasher.update(piece);
    })?;
    Ok((hasher.finalize(), read))
}

/// Read `file`'s first `limit` bytes (fewer if it ends first) once, in order, handing each
/// piece to `each`; how many were read.
fn read_first(file: &ShareFile, limit: u64, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < limit {
        let want = buf
            .len()
            .min((limit - pos).try_into().unwrap_or(usize::MAX));
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        each(&buf[..n]);
        pos += n as u64;
    }
    Ok(pos)
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

    /// The same share opened both ways: `openat2` (where the kernel has it) and the walk.
    fn both(dir: &Path) -> [Share; 2] {
        let walking = Share::open_walking(dir.join("share")).unwrap();
        assert!(!walking.uses_openat2());
        [Share::open(dir.join("share")).unwrap(), walking]
    }

    fn read_all(f: &ShareFile) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let n = f.read_at(&mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn symlinks_inside_are_followed_outside_refused() {
        let (dir, _) = share();
        let root = dir.path().join("share");
        symlink("sub/b.txt", root.join("inside")).unwrap();
        symlink(dir.path().join("secret"), root.join("outside")).unwrap();
        symlink(root.join("sub/b.txt"), root.join("absolute_inside")).unwrap();
        symlink("../secret", root.join("dotdot_out")).unwrap();
        symlink("sub/../a.txt", root.join("dotdot_in")).unwrap();
        // Out through `..` and back in by the root's own name: refused (it passes outside).
        symlink("../share/a.txt", root.join("out_and_in")).unwrap();
        symlink("sub", root.join("subdir")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
        for share in both(dir.path()) {
            let walk = !share.uses_openat2();
            for ok in ["inside", "absolute_inside", "subdir/b.txt", "dotdot_in"] {
                let f = share
                    .open_file(ok)
                    .unwrap_or_else(|e| panic!("{ok} ({walk}): {e}"));
                assert!(!read_all(&f).is_empty());
            }
            assert_eq!(read_all(&share.open_file("inside").unwrap()), b"bee");
            assert_eq!(read_all(&share.open_file("dotdot_in").unwrap()), b"hello");
            for bad in ["outside", "dotdot_out", "out_and_in", "loop", "magic"] {
                assert!(
                    matches!(share.open_file(bad), Err(ShareError::Denied(_))),
                    "{bad} (walk: {walk}): {:?}",
                    share.open_file(bad)
                );
            }
            assert!(matches!(
                share.open_file("missing"),
                Err(ShareError::NotFound)
            ));
            assert!(matches!(
                share.open_file("a.txt/x"),
                Err(ShareError::NotFound)
            ));
            assert!(matches!(share.open_file("sub"), Err(ShareError::NotAFile)));
            assert!(matches!(share.list("a.txt"), Err(ShareError::NotADir)));
            let names: Vec<_> = share
                .list("")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert_eq!(
                names,
                [
                    "a.txt",
                    "absolute_inside",
                    "dotdot_in",
                    "inside",
                    "sub",
                    "subdir"
                ]
            );
            assert_eq!(share.canonical_relative("inside").unwrap(), "sub/b.txt");
            assert_eq!(share.canonical_relative("subdir").unwrap(), "sub");
            assert_eq!(share.canonical_relative("").unwrap(), "");
            let f = share.open_file("absolute_inside").unwrap();
            assert_eq!(share.canonical_of(&f).unwrap(), "sub/b.txt");
            assert_eq!(share.stat("subdir").unwrap().kind, Kind::Dir);
            assert_eq!(share.stat("inside").unwrap().size, 3);
        }
    }

    /// A parent folder swapped for a symlink out of the share right after a path was
    /// resolved: what was resolved is what is used, never the path again.
    #[test]
    fn a_parent_swapped_after_resolving_never_escapes() {
        let (dir, _) = share();
        let root = dir.path().join("share");
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        fs::write(dir.path().join("elsewhere/b.txt"), b"out").unwrap();
        for share in both(dir.path()) {
            let (root2, outside) = (root.clone(), dir.path().join("elsewhere"));
            let swap = move || {
                if root2.join("sub").is_dir() && !root2.join("sub").is_symlink() {
                    fs::rename(root2.join("sub"), root2.join("sub.old")).unwrap();
                    symlink(&outside, root2.join("sub")).unwrap();
                }
            };
            share.set_resolve_hook(Some(Arc::new(move |_: &str| swap())));
            // Resolved before the swap: the file inside, whatever the path names now.
            let f = share.open_file("sub/b.txt").unwrap();
            assert_eq!(read_all(&f), b"bee");
            // Once swapped, the path leads out and is refused.
            assert!(matches!(
                share.open_file("sub/b.txt"),
                Err(ShareError::Denied(_))
            ));
            // A write resolved before a swap lands in the folder that was judged.
            share.set_resolve_hook(None);
            fs::remove_file(root.join("sub")).unwrap();
            fs::rename(root.join("sub.old"), root.join("sub")).unwrap();
            let (root2, outside) = (root.clone(), dir.path().join("elsewhere"));
            share.set_resolve_hook(Some(Arc::new(move |_: &str| {
                if !root2.join("sub").is_symlink() {
                    fs::rename(root2.join("sub"), root2.join("sub.old")).unwrap();
                    symlink(&outside, root2.join("sub")).unwrap();
                }
            })));
            let new = share.new_file("sub/new.txt").unwrap();
            new.persist().unwrap();
            assert!(root.join("sub.old/new.txt").exists());
            assert!(!dir.path().join("elsewhere/new.txt").exists());
            assert!(matches!(
                share.create_dir("sub/x"),
                Err(ShareError::Denied(_))
            ));
            share.set_resolve_hook(None);
            fs::remove_file(root.join("sub")).unwrap();
            fs::rename(root.join("sub.old"), root.join("sub")).unwrap();
            fs::remove_file(root.join("sub/new.txt")).unwrap();
        }
    }

    #[test]
    fn confined_changes() {
        let (dir, _) = share();
        let root = dir.path().join("share");
        symlink(dir.path(), root.join("up")).unwrap();
        symlink(dir.path().join("secret"), root.join("secretlink")).unwrap();
        for share in both(dir.path()) {
            share.create_dir("new").unwrap();
            assert!(share.create_dir("new").is_err());
            share.rename("new", "sub/renamed").unwrap();
            assert!(root.join("sub/renamed").is_dir());
            share.remove_dir("sub/renamed").unwrap();
            assert!(matches!(
                share.remove_dir("sub/renamed"),
                Err(ShareError::NotFound)
            ));
            assert!(matches!(
                share.create_dir("up/x"),
                Err(ShareError::Denied(_))
            ));
            assert!(matches!(
                share.remove_file("up/secret"),
                Err(ShareError::Denied(_))
            ));
            assert!(matches!(share.create_dir(""), Err(ShareError::Denied(_))));
            assert!(matches!(
                share.create_dir("a\nb"),
                Err(ShareError::Denied(_))
            ));
            let d = share.create_dir_all("x/y/z").unwrap();
            assert!(d.path().ends_with("share/x/y/z"));
            assert!(share.create_dir_all("up/evil").is_err());
            assert!(!dir.path().join("evil").exists());
            let mut f = share
                .new_file("x/y/z/f")
                .unwrap()
                .file()
                .try_clone()
                .unwrap();
            std::io::Write::write_all(&mut f, b"gone").unwrap();
            assert!(!root.join("x/y/z/f").exists(), "dropped unpersisted");
            assert_eq!(fs::read_dir(root.join("x/y/z")).unwrap().count(), 0);
            assert!(matches!(share.new_file("sub"), Err(ShareError::NotAFile)));
            fs::remove_dir_all(root.join("x")).unwrap();
        }
        let share = Share::open(&root).unwrap();
        // A link is removed itself, never what it leads to.
        share.remove_file("secretlink").unwrap();
        assert!(dir.path().join("secret").exists());
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let (_dir, share) = share();
        sys::mkfifoat(share.inner.resolver.root_fd(), c"pipe", 0o600).unwrap();
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

    #[test]
    fn block_lists_are_remembered_per_file_version() {
        let (dir, share) = share();
        let file = share.open_file("a.txt").unwrap();
        let first = share.block_hashes(&file, 5).unwrap().unwrap();
        assert_eq!(first.root(), blake3::hash(b"hello"));
        let again = share.block_hashes(&file, 5).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second request reads nothing"
        );
        assert!(
            share.block_hashes(&file, 6).unwrap().is_none(),
            "fewer bytes"
        );
        fs::write(dir.path().join("share/a.txt"), b"HELLO").unwrap();
        let file = share.open_file("a.txt").unwrap();
        let changed = share.block_hashes(&file, 5).unwrap().unwrap();
        assert_eq!(
            changed.root(),
            blake3::hash(b"HELLO"),
            "a new version is read"
        );
        assert_eq!(share.hash("a.txt").unwrap(), blake3::hash(b"HELLO"));
    }
}
