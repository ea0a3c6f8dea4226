//! What the kernel is told about a folder or a file: the mounting user owns everything (the
//! nodes' owners mean nothing here), nothing is writable, and the synthetic folders (the root,
//! each node's folder) carry the mount's start time.

use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};
use meshfs_core::{Entry, Kind};

use crate::readahead::CHUNK;

/// The facts every attribute shares: who owns the mount and when it started.
#[derive(Debug)]
pub(super) struct Attrs {
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
}

impl Attrs {
    /// Owned by the mounting user, started now.
    #[allow(unsafe_code)] // getuid(2)/getgid(2), which std does not wrap
    pub(super) fn now() -> Attrs {
        // SAFETY: plain getters without failure modes.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Attrs {
            uid,
            gid,
            mounted_at: SystemTime::now(),
        }
    }

    /// A synthetic folder: the mount root or a node's folder.
    pub(super) fn dir(&self, ino: u64) -> FileAttr {
        self.with(ino, FileType::Directory, 0, self.mounted_at, 0o555, 2)
    }

    /// What a node said about one of its files or folders.
    pub(super) fn of(&self, ino: u64, e: &Entry) -> FileAttr {
        let (kind, nlink) = match e.kind {
            Kind::File => (FileType::RegularFile, 1),
            Kind::Dir => (FileType::Directory, 2),
        };
        // Read-only mount: show the node's read and execute bits, never write.
        let perm = (e.mode & 0o555) as u16;
        let mut attr = self.with(ino, kind, e.size, e.modified(), perm, nlink);
        attr.blocks = e.size.div_ceil(512);
        attr
    }

    /// The root listing's entry for a node folder.
    pub(super) fn node_entry(&self, name: &str) -> Entry {
        let mtime_ns = self
            .mounted_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Entry {
            name: name.to_owned(),
            kind: Kind::Dir,
            size: 0,
            mtime_ns,
            mode: 0o555,
        }
    }

    fn with(
        &self,
        ino: u64,
        kind: FileType,
        size: u64,
        time: SystemTime,
        perm: u16,
        nlink: u32,
    ) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            // A large block size makes `cp`, `cat` and players read in big requests.
            blksize: CHUNK as u32,
            flags: 0,
        }
    }
}
