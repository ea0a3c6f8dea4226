//! The `fuser::Filesystem` callbacks: each one answers inline what is known locally and
//! hands the rest to a task (see [`super`]). The work itself lives beside: listings in
//! [`super::listing`], reads in [`super::read`], handles in [`super::handles`].

use std::ffi::OsStr;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use meshfs_core::share::MAX_PATH_LEN;
use tokio::runtime::Handle;

use super::{MeshFs, component};
use crate::error::errno;
use crate::inodes::{self, Inode, InodeTable};
use crate::readahead::CHUNK;
use crate::requests;

/// Callbacks that would write, each answered `EROFS`: `fn name(argument types…) -> Reply;`
/// (the request and the reply are implied). fuser's defaults would answer `ENOSYS`, which
/// tells a program the operation does not exist rather than that the mount is read-only.
macro_rules! read_only {
    ($(fn $name:ident($($arg:ty),*) -> $reply:ty;)*) => {
        $(
            fn $name(&self, _req: &Request, $(_: $arg,)* reply: $reply) {
                reply.error(Errno::EROFS);
            }
        )*
    };
}

impl Filesystem for MeshFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // 1 MiB requests: the kernel's largest read is max_pages, derived from max_write.
        let _ = config.set_max_write(CHUNK as u32);
        // The kernel's own read-ahead window: 4 MiB keeps several 1 MiB reads in flight behind
        // the one a reader waits for (+15% sequential here). fuser derives max_pages from
        // max(max_write, max_readahead), but the kernel caps it at 256 pages
        // (`fs.fuse.max_pages_limit`), so reads stay at 1 MiB; larger ones would still be
        // served, chunk by chunk.
        let _ = config.set_max_readahead(4 * CHUNK as u32);
        // Let many reads (ours are async) be queued in the kernel before it throttles.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // Files opened past the page cache (see `super::page_cache`) may still be mapped
        // shared; without this (Linux < 6.6) every file goes through the page cache.
        if config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok()
        {
            self.shared.page_cache.allow_direct();
        } else {
            tracing::debug!("kernel lacks FUSE_DIRECT_IO_ALLOW_MMAP: every file is page-cached");
        }
        for cap in [
            // Size or mtime changed at getattr: drop the file's page cache (correct caching).
            InitFlags::FUSE_AUTO_INVAL_DATA,
            // Listings come with attributes: `ls -l` costs one `ls`, not one `stat` per entry.
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel lacks a FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let shared = &self.shared;
        let ttl = shared.ttl();
        let Some(name) = component(name) else {
            return reply.error(Errno::ENOENT);
        };
        match shared.inodes.get(parent.0) {
            None => reply.error(Errno::ENOENT),
            Some(Inode::Root) => match shared.nodes.find_shown(name) {
                Some(i) => {
                    let ino = InodeTable::node_root(i);
                    reply.entry(&ttl, &shared.attrs.dir(ino), Generation(0));
                }
                None => reply.error(Errno::ENOENT),
            },
            Some(Inode::Remote { node, path }) => {
                let child = inodes::join(&path, name);
                if child.len() > MAX_PATH_LEN {
                    return reply.error(Errno::ENAMETOOLONG);
                }
                // A fresh listing of the parent answers without a round trip, even "no such file".
                if let Some((entries, ticket)) = shared.cache.dirs.get(&parent.0) {
                    return match entries.iter().find(|e| e.name == name) {
                        Some(e) => {
                            let ino = shared.inodes.lookup(node, &child);
                            shared.remember(ino, e, &ticket);
                            reply.entry(&ttl, &shared.attrs.of(ino, e), Generation(0));
                        }
                        None => reply.error(Errno::ENOENT),
                    };
                }
                let shared = self.shared.clone();
                self.spawn(async move {
                    let pool = &shared.nodes.get(node).pool;
                    let ticket = shared.cache.ticket(node);
                    match requests::stat(pool, &child).await {
                        Ok(e) => {
                            let ino = shared.inodes.lookup(node, &child);
                            shared.remember(ino, &e, &ticket);
                            reply.entry(&ttl, &shared.attrs.of(ino, &e), Generation(0));
                        }
                        // Code 7 here is a FIFO or device the node never serves: listings
                        // hide those, so a lookup does not find them either.
                        Err(err) => reply.error(errno(&err, Errno::ENOENT)),
                    }
                });
            }
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.shared.ttl();
        match self.shared.inodes.get(ino.0) {
            None => reply.error(Errno::ENOENT),
            Some(Inode::Root) => reply.attr(&ttl, &self.shared.attrs.dir(ino.0)),
            Some(Inode::Remote { path, .. }) if path.is_empty() => {
                reply.attr(&ttl, &self.shared.attrs.dir(ino.0))
            }
            Some(Inode::Remote { node, path }) => {
                let shared = self.shared.clone();
                self.spawn(async move {
                    match shared.attributes(ino.0, node, &path).await {
                        Ok(e) => reply.attr(&ttl, &shared.attrs.of(ino.0, &e)),
                        Err(e) => reply.error(e),
                    }
                });
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        let (node, path) = match self.shared.inodes.get(ino.0) {
            None => return reply.error(Errno::ENOENT),
            Some(Inode::Root) => return reply.error(Errno::EISDIR),
            Some(Inode::Remote { path, .. }) if path.is_empty() => {
                return reply.error(Errno::EISDIR);
            }
            Some(Inode::Remote { node, path }) => (node, path),
        };
        // Attributes known (a listing gave them): open here, no hop to the runtime.
        if let Some(e) = self.shared.cache.attrs.get(&ino.0) {
            return match self.shared.open_file(&self.rt, ino.0, node, path, &e) {
                Ok((fh, flags)) => reply.opened(FileHandle(fh), flags),
                Err(e) => reply.error(e),
            };
        }
        let shared = self.shared.clone();
        self.spawn(async move {
            let opened = match shared.stat(ino.0, node, &path).await {
                Ok(e) => shared.open_file(&Handle::current(), ino.0, node, path, &e),
                Err(e) => Err(e),
            };
            match opened {
                Ok((fh, flags)) => reply.opened(FileHandle(fh), flags),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.shared.handles.file(fh.0) {
            Some(file) => self
                .shared
                .read(&self.rt, &self.lanes, file, offset, size, reply),
            None => reply.error(Errno::EBADF),
        }
    }

    fn flush(&self, _req: &Request, _: INodeNo, _: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let released = self.shared.handles.release_file(fh.0);
        reply.ok();
        if let Some(file) = released {
            self.lanes.release(file.id);
            if file.direct {
                self.shared.page_cache.closed(file.ino, &file.sizes);
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.shared.inodes.get(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        let fh = self.shared.handles.open_dir();
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(&self, _: &Request, ino: INodeNo, fh: FileHandle, at: u64, reply: ReplyDirectory) {
        self.shared.readdir(&self.rt, ino.0, fh.0, at, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.shared.readdir(&self.rt, ino.0, fh.0, offset, reply);
    }

    fn releasedir(&self, _: &Request, _: INodeNo, fh: FileHandle, _: OpenFlags, reply: ReplyEmpty) {
        self.shared.handles.release_dir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, CHUNK as u32, 255, CHUNK as u32);
    }

    read_only! {
        fn setattr(
            INodeNo, Option<u32>, Option<u32>, Option<u32>, Option<u64>, Option<TimeOrNow>,
            Option<TimeOrNow>, Option<SystemTime>, Option<FileHandle>, Option<SystemTime>,
            Option<SystemTime>, Option<SystemTime>, Option<BsdFileFlags>
        ) -> ReplyAttr;
        fn mknod(INodeNo, &OsStr, u32, u32, u32) -> ReplyEntry;
        fn mkdir(INodeNo, &OsStr, u32, u32) -> ReplyEntry;
        fn unlink(INodeNo, &OsStr) -> ReplyEmpty;
        fn rmdir(INodeNo, &OsStr) -> ReplyEmpty;
        fn symlink(INodeNo, &OsStr, &Path) -> ReplyEntry;
        fn rename(INodeNo, &OsStr, INodeNo, &OsStr, RenameFlags) -> ReplyEmpty;
        fn link(INodeNo, INodeNo, &OsStr) -> ReplyEntry;
        fn write(
            INodeNo, FileHandle, u64, &[u8], WriteFlags, OpenFlags, Option<LockOwner>
        ) -> ReplyWrite;
        fn create(INodeNo, &OsStr, u32, u32, i32) -> ReplyCreate;
        fn setxattr(INodeNo, &OsStr, &[u8], i32, u32) -> ReplyEmpty;
        fn removexattr(INodeNo, &OsStr) -> ReplyEmpty;
    }
}
