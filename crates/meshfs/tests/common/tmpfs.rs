//! A small tmpfs of a test's own (a real file system that can be filled), unmounted when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a folder, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount -o size=`, e.g. `1m`) at `at` (created); `None`, saying
    /// so, when this process may not mount. Panics if it fails although running as root.
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(at.to_owned()));
        }
        // SAFETY: a plain syscall.
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root, yet mounting a tmpfs failed"
        );
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
