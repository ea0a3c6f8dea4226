//! `Dir`: an open folder, and every change meshfs makes to a folder — create, remove, rename,
//! and the one temporary-file-then-rename writer ([`TempFile`]) — as operations on a *name
//! inside that open folder*.
//!
//! Acting on names relative to a held descriptor means the folder cannot be swapped under us
//! between the moment it was judged and the moment it is changed: a share hands out `Dir`s it
//! resolved beneath its root ([`crate::Share::parent_dir`]), and whatever happens to the path
//! afterwards, the operation lands in that very folder. The last component is never followed
//! (`O_NOFOLLOW`, `unlinkat`, `renameat`, `mkdirat` and `O_EXCL` act on the link itself), so a
//! symlink in the folder is replaced or removed, never written through.
//!
//! Downloads to a path of the user's choosing (outside any share) open the folder with
//! [`Dir::open`] and use the same writer, so meshfs has one atomic-write implementation.

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys;

/// Prefix of every temporary file meshfs creates (hidden, and recognisable by whoever cleans
/// up or replicates: see [`is_temp_name`]).
pub const TEMP_PREFIX: &str = ".meshfs-tmp-";

/// True for the name of a [`TempFile`] (never worth propagating or listing as content).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// An open folder. Cheap to clone (the descriptor is shared).
#[derive(Debug, Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    /// Where the folder was when opened, for messages only: never used to reach it.
    path: PathBuf,
}

/// Refuse names that are not a single component: a `Dir` operation never crosses folders.
fn name_cstr(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    sys::cstr(OsStr::new(name))
}

/// `O_CREAT` mode of new files (umask applies).
const FILE_MODE: libc::mode_t = 0o644;
/// Mode of new folders (umask applies).
const DIR_MODE: libc::mode_t = 0o755;

impl Dir {
    /// Open the folder at `path` (a path of the user's choosing: symlinks are followed).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = sys::cstr(path.as_os_str())?;
        let fd = sys::openat(sys::cwd(), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(Dir::from_fd(fd, path.to_owned()))
    }

    /// The folder holding `path`, and `path`'s last component (a path of the user's choosing).
    pub fn open_parent(path: &Path) -> io::Result<(Dir, String)> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} has no file name", path.display()),
                )
            })?
            .to_owned();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Ok((Dir::open(parent)?, name))
    }

    /// Wrap a descriptor opened `O_RDONLY | O_DIRECTORY`.
    pub(crate) fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd: Arc::new(fd),
            path,
        }
    }

    /// Where the folder was when opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()` joined with `name` (for messages).
    pub fn display_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Metadata of the folder itself.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file_view(|f| f.metadata())
    }

    fn file_view<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let file = File::from(self.fd.try_clone()?);
        f(&file)
    }

    /// Open `name` with `flags` (`O_NOFOLLOW` is always added: a link is never opened through).
    pub fn open_file(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let c = name_cstr(name)?;
        let fd = sys::openat(self.fd(), &c, flags | libc::O_NOFOLLOW, FILE_MODE)?;
        Ok(File::from(fd))
    }

    /// A new, empty `name` for reading and writing, whatever was there removed first. Not the
    /// old file truncated: ext4 flushes a file truncated to 0 at its `close`
    /// (`auto_da_alloc`), which a download writing it would then wait for (0.36 s per GiB
    /// seen with `strace -T`).
    pub fn create_fresh(&self, name: &str) -> io::Result<File> {
        match self.remove_file(name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.open_file(name, libc::O_RDWR | libc::O_CREAT)
    }

    /// Metadata of `name`; `follow` says whether a symlink is judged by its target (which may
    /// lie anywhere: only ever used to refuse, never to reach).
    pub fn stat(&self, name: &str, follow: bool) -> io::Result<libc::stat64> {
        let c = name_cstr(name)?;
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        sys::fstatat(self.fd(), &c, flags)
    }

    /// Does `name` exist (as anything, a dangling link included)?
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match self.stat(name, false) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create the folder `name`.
    pub fn create_dir(&self, name: &str) -> io::Result<()> {
        sys::mkdirat(self.fd(), &name_cstr(name)?, DIR_MODE)
    }

    /// Open the folder `name` (never through a link).
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let c = name_cstr(name)?;
        let fd = sys::openat(
            self.fd(),
            &c,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(Dir::from_fd(fd, self.path.join(name)))
    }

    /// Remove the file (or symlink itself) `name`.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        sys::unlinkat(self.fd(), &name_cstr(name)?, 0)
    }

    /// Remove the empty folder `name`.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        sys::unlinkat(self.fd(), &name_cstr(name)?, libc::AT_REMOVEDIR)
    }

    /// Give the file `from` a second name `to` in this folder (a hard link; fails if `to`
    /// exists): what replacing `from` next leaves in place, so `from` is never missing.
    pub fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        sys::linkat(self.fd(), &name_cstr(from)?, &name_cstr(to)?)
    }

    /// Rename `from` (in this folder) to `to` in `to_dir`, replacing what was there.
    pub fn rename(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        sys::renameat(
            self.fd(),
            &name_cstr(from)?,
            to_dir.fd(),
            &name_cstr(to)?,
            sys::Replace::Yes,
        )
    }

    /// Rename `from` (in this folder) to `to` in `to_dir` unless `to` exists
    /// (`io::ErrorKind::AlreadyExists`), atomically. On a file system without
    /// `RENAME_NOREPLACE` (`EINVAL`), a look and then a plain rename.
    pub fn rename_new(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        let (from_c, to_c) = (name_cstr(from)?, name_cstr(to)?);
        match sys::renameat(self.fd(), &from_c, to_dir.fd(), &to_c, sys::Replace::No) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if to_dir.exists(to)? {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                sys::renameat(self.fd(), &from_c, to_dir.fd(), &to_c, sys::Replace::Yes)
            }
            other => other,
        }
    }

    /// Make the folder's entries (a rename into it, say) durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file_view(|f| f.sync_all())
    }

    /// A new, empty, hidden temporary file in this folder.
    pub fn temp_file(&self) -> io::Result<TempFile> {
        TempFile::create(self.clone())
    }
}

/// A temporary file created with `O_EXCL` in a [`Dir`], written by the caller, then
/// [`persist`](TempFile::persist)ed under its final name with one `renameat`: readers see the
/// old file or the complete new one, never a part. Removed when dropped unpersisted (a failed
/// or cut write leaves nothing behind).
#[derive(Debug)]
pub struct TempFile {
    dir: Dir,
    name: String,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dir: Dir) -> io::Result<TempFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
            match dir.open_file(&name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL) {
                Ok(file) => {
                    return Ok(TempFile {
                        dir,
                        name,
                        file,
                        persisted: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The open temporary file, to write to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its current name in its folder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `fsync` the bytes, then rename over `name` in the same folder, atomically.
    pub fn persist(mut self, name: &str) -> io::Result<()> {
        self.file.sync_all()?;
        self.dir.rename(&self.name, &self.dir, name)?;
        self.persisted = true;
        Ok(())
    }

    /// Write `bytes` as the whole content of `name` in `dir`, atomically.
    pub fn write_all_to(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let temp = dir.temp_file()?;
        (&temp.file).write_all(bytes)?;
        temp.persist(name)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_is_a_new_empty_one_never_through_a_link() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("a.part"), b"old bytes").unwrap();
        let old = std::fs::metadata(tmp.path().join("a.part")).unwrap().ino();
        // Another name for the old file keeps it (and its bytes) alive: not truncated.
        std::fs::hard_link(tmp.path().join("a.part"), tmp.path().join("kept")).unwrap();
        let f = dir.create_fresh("a.part").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert_ne!(
            f.metadata().unwrap().ino(),
            old,
            "a new file, not the old one truncated"
        );
        assert_eq!(
            std::fs::read(tmp.path().join("kept")).unwrap(),
            b"old bytes"
        );
        // A link in its place is removed, never written through.
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("b.part")).unwrap();
        dir.create_fresh("b.part").unwrap();
        assert!(
            std::fs::symlink_metadata(tmp.path().join("b.part"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::metadata(outside.path()).unwrap().len(), 0);
        assert!(
            dir.create_fresh("new.part").is_ok(),
            "nothing to remove is fine"
        );
    }

    #[test]
    fn temp_files_persist_or_vanish() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        TempFile::write_all_to(&dir, "a", b"one").unwrap();
        TempFile::write_all_to(&dir, "a", b"two").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("a")).unwrap(), b"two");
        let t = dir.temp_file().unwrap();
        assert!(is_temp_name(t.name()));
        drop(t);
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn rename_new_never_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("copy"), b"downloaded").unwrap();
        std::fs::write(tmp.path().join("clip"), b"recorded meanwhile").unwrap();
        let e = dir.rename_new("copy", &dir, "clip").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read(tmp.path().join("clip")).unwrap(),
            b"recorded meanwhile"
        );
        dir.rename_new("copy", &dir, "other").unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("other")).unwrap(),
            b"downloaded"
        );
    }

    #[test]
    fn names_never_cross_folders_nor_follow_links() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("target"), b"t").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("target"), tmp.path().join("link")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        for bad in ["", ".", "..", "a/b", "/abs"] {
            assert!(dir.create_dir(bad).is_err(), "{bad:?}");
        }
        assert!(dir.open_file("link", libc::O_RDONLY).is_err());
        dir.remove_file("link").unwrap();
        assert!(tmp.path().join("target").exists());
        dir.create_dir("d").unwrap();
        dir.rename("d", &dir, "e").unwrap();
        dir.remove_dir("e").unwrap();
        assert!(!dir.exists("e").unwrap());
    }
}
