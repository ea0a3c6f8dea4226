//! Whether an open file is read through the kernel's page cache or past it
//! (`FOPEN_DIRECT_IO`).
//!
//! Through the page cache, every byte of a read is copied twice on the reader's machine after
//! the mount has it: by the kernel from our `/dev/fuse` reply into the page cache
//! (`fuse_copy_folio`, 17 % of the mount's core on a 1 GiB `dd`), and by the reader's `read`
//! out of it; and each page is allocated and later evicted. With `FOPEN_DIRECT_IO` the
//! reader's `read` becomes our read request and the reply is copied once, straight into the
//! reader's buffer: a cold `dd bs=1M` of 1 GiB went from 1,096 to 1,459 MB/s and from 1.83 to
//! 1.38 CPU s/GiB of the machine (bench/README.md, "Mount, round five").
//!
//! What it costs: the kernel no longer turns small reads into 1 MiB ones, so each `read` of
//! the program is a round trip to the mount (4 KiB reads: 161 against 850 MB/s, 16 KiB: 671
//! against 931; the two break even between 32 and 64 KiB), and nothing is kept for the next
//! read of the same bytes. So only
//! large files go past the page cache (at least [`super::FsConfig::direct_io_min`] bytes:
//! recordings, read through once, where caching buys least and costs most), and a file whose
//! reader was seen reading it in small pieces ([`ReadSizes::small_pieces`]) is read through
//! the page cache from its next open on. Files below the size keep today's behaviour,
//! including `FOPEN_KEEP_CACHE` for an unchanged file. A shared `mmap` of a file opened past
//! the page cache needs `FUSE_DIRECT_IO_ALLOW_MMAP` (Linux 6.6): without it (older kernels)
//! every file goes through the page cache. A file growing while it is read is served as
//! before: a read past the size the kernel knows reaches the mount either way.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Reads smaller than this are cheaper through the page cache (measured break-even).
pub(super) const SMALL_READ: u32 = 64 << 10;
/// Reads seen before a handle's read sizes say anything.
const ENOUGH_READS: u32 = 64;

/// The mount's choice of page cache or not, per open.
#[derive(Debug)]
pub(super) struct PageCache {
    /// Smallest file read past the page cache.
    direct_min: u64,
    /// The kernel lets a file opened past the page cache be mapped shared (set at `init`).
    direct_allowed: AtomicBool,
    /// Inodes whose reader read them in small pieces: opened through the page cache.
    small_readers: Mutex<HashSet<u64>>,
}

impl PageCache {
    pub(super) fn new(direct_min: u64) -> PageCache {
        PageCache {
            direct_min,
            direct_allowed: AtomicBool::new(false),
            small_readers: Mutex::default(),
        }
    }

    /// The kernel granted `FUSE_DIRECT_IO_ALLOW_MMAP`.
    pub(super) fn allow_direct(&self) {
        self.direct_allowed.store(true, Ordering::Relaxed);
    }

    /// Whether inode `ino`, `size` bytes long, is opened past the page cache.
    pub(super) fn direct(&self, ino: u64, size: u64) -> bool {
        self.direct_allowed.load(Ordering::Relaxed)
            && size >= self.direct_min
            && !self
                .small_readers
                .lock()
                .expect("readers lock")
                .contains(&ino)
    }

    /// A handle of `ino` opened past the page cache was closed after reads of `sizes`.
    pub(super) fn closed(&self, ino: u64, sizes: &ReadSizes) {
        if sizes.small_pieces() {
            tracing::debug!(
                ino,
                "read in small pieces: opened through the page cache from now on"
            );
            self.small_readers.lock().expect("readers lock").insert(ino);
        }
    }

    /// The kernel holds `ino` no more.
    pub(super) fn forget(&self, ino: u64) {
        self.small_readers
            .lock()
            .expect("readers lock")
            .remove(&ino);
    }
}

/// How one open handle is read: how many reads, how many small.
#[derive(Debug, Default)]
pub(super) struct ReadSizes {
    reads: AtomicU32,
    small: AtomicU32,
}

impl ReadSizes {
    /// A read of `size` bytes arrived.
    pub(super) fn record(&self, size: u32) {
        let add = |n: &AtomicU32| {
            let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        };
        add(&self.reads);
        if size < SMALL_READ {
            add(&self.small);
        }
    }

    /// Enough reads, and at least half of them small.
    pub(super) fn small_pieces(&self) -> bool {
        let reads = self.reads.load(Ordering::Relaxed);
        reads >= ENOUGH_READS
            && 2 * u64::from(self.small.load(Ordering::Relaxed)) >= u64::from(reads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_go_past_the_page_cache_once_the_kernel_allows_it() {
        let pc = PageCache::new(16 << 20);
        assert!(
            !pc.direct(1, 1 << 30),
            "not before init says the kernel allows it"
        );
        pc.allow_direct();
        assert!(pc.direct(1, 16 << 20));
        assert!(!pc.direct(2, (16 << 20) - 1));
    }

    #[test]
    fn a_file_read_in_small_pieces_goes_through_the_page_cache_until_forgotten() {
        let pc = PageCache::new(0);
        pc.allow_direct();
        let big = ReadSizes::default();
        for _ in 0..100 {
            big.record(1 << 20);
        }
        pc.closed(1, &big);
        assert!(pc.direct(1, 1));
        let few = ReadSizes::default();
        for _ in 0..ENOUGH_READS - 1 {
            few.record(4096);
        }
        pc.closed(1, &few);
        assert!(pc.direct(1, 1), "too few reads to judge");
        let small = ReadSizes::default();
        for i in 0..ENOUGH_READS {
            small.record(if i % 2 == 0 { 4096 } else { SMALL_READ });
        }
        pc.closed(1, &small);
        assert!(!pc.direct(1, 1));
        assert!(pc.direct(2, 1), "another file keeps its own");
        pc.forget(1);
        assert!(pc.direct(1, 1));
    }
}
