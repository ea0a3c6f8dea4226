//! The file system under a share: its size and free space (`fstatvfs`), and [`DiskStatus`],
//! the one flag every door reads to say "disk full" (`hello` answers `disk=full`) while the
//! node goes on serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dir::Dir;
use crate::sys;

/// Size and free space of a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub total: u64,
    /// What an unprivileged writer can still use (`f_bavail`).
    pub available: u64,
}

impl DiskUsage {
    /// Of the file system holding `dir`.
    pub fn of(dir: &Dir) -> std::io::Result<DiskUsage> {
        let st = sys::fstatvfs(dir.fd())?;
        let unit = st.f_frsize as u64;
        Ok(DiskUsage {
            total: (st.f_blocks as u64).saturating_mul(unit),
            available: (st.f_bavail as u64).saturating_mul(unit),
        })
    }

    /// Bytes in use (as `df` counts them: what is not available).
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    /// Full: less than 1 MiB or 1 % left (whichever is smaller), so a recorder's next write
    /// may fail.
    pub fn is_full(&self) -> bool {
        self.available < (1u64 << 20).min(self.total / 100)
    }
}

/// Whether the share's disk is full, shared between the retention task that measures it and
/// the doors that report it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DiskStatus {
    full: Arc<AtomicBool>,
}

impl DiskStatus {
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Record a measurement; returns whether the state changed (to log it once).
    pub fn set_full(&self, full: bool) -> bool {
        self.full.swap(full, Ordering::Relaxed) != full
    }

    /// The `hello` word (`disk=full`), when there is one to say.
    pub fn hello_word(&self) -> Option<&'static str> {
        self.is_full().then_some("disk=full")
    }
}
