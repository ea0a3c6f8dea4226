//! The fixture every door's confinement tests share (feature `testing`): a share with a
//! public and a protected folder beside a folder outside it, and the swap of the public
//! folder for a symlink that the tests make between a resolution and its use.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// `<tmp>/share/{pub,priv}/clip.mp4` (`public`, `secret`) beside `<tmp>/outside/clip.mp4`
/// (`escape`). Returns the temporary folder (removed on drop) and the share's root.
pub fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path().join("share");
    for (folder, text) in [
        (root.join("pub"), "public"),
        (root.join("priv"), "secret"),
        (dir.path().join("outside"), "escape"),
    ] {
        std::fs::create_dir_all(&folder).expect("a fixture folder");
        std::fs::write(folder.join("clip.mp4"), text).expect("a fixture file");
    }
    (dir, root)
}

/// Replace `root/pub` by a symlink to `target` (the real folder moves to `pub.old`); a second
/// call does nothing, so a hook may call it on every resolution.
pub fn swap_pub(root: &Path, target: &Path) {
    if !root.join("pub").is_symlink() {
        std::fs::rename(root.join("pub"), root.join("pub.old")).expect("move pub aside");
        symlink(target, root.join("pub")).expect("a symlink in its place");
    }
}

/// Undo [`swap_pub`].
pub fn restore_pub(root: &Path) {
    std::fs::remove_file(root.join("pub")).expect("remove the symlink");
    std::fs::rename(root.join("pub.old"), root.join("pub")).expect("put pub back");
}
