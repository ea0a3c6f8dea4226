//! Confined writes into a share: upload, delete, make and remove folders, rename.
//!
//! `Share` decides everything: the request path is normalised (so `..` and NUL are refused
//! and a leading `/` means the share's root), its *parent folder* is resolved once beneath the
//! share's root into an open folder, and the operation acts on the last component inside that
//! very folder without following it (`unlinkat`, `renameat`, `mkdirat`, `O_EXCL`): a link
//! pointing out of the share is removed or replaced itself, never what it points to, and a
//! parent folder swapped for a symlink after the resolve changes nothing.
//!
//! Uploads are atomic: bytes go to a hidden temporary file in the same folder
//! ([`meshfs_core::dir::TempFile`]), which is renamed over the destination only once the whole
//! upload arrived and reached the disk. A cut upload leaves the old file (or nothing) and
//! removes the temporary file.

use std::io;

use meshfs_core::share::{Share, ShareError};
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader};

/// Buffer between the data connection and the file of an upload.
const UPLOAD_BUF: usize = 256 * 1024;

/// Why a write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Share(#[from] ShareError),
    #[error("file name not allowed")]
    BadName,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The share's refusal of a name (the root, a line break, not one component) is FTP's
/// "file name not allowed".
fn refusal(e: ShareError) -> WriteError {
    match e {
        ShareError::Denied("the share's root")
        | ShareError::Denied("line break in a name")
        | ShareError::Denied("not a file name") => WriteError::BadName,
        e => WriteError::Share(e),
    }
}

/// Replace or create `path` with the bytes of `input`, atomically. Returns the bytes written.
pub async fn upload<R>(share: &Share, path: &str, input: R) -> Result<u64, WriteError>
where
    R: AsyncRead + Unpin,
{
    let new = share.new_file(path).map_err(refusal)?;
    let mut file = tokio::fs::File::from_std(new.file().try_clone()?);
    let mut input = BufReader::with_capacity(UPLOAD_BUF, input);
    let written = tokio::io::copy_buf(&mut input, &mut file).await?;
    file.flush().await?;
    drop(file);
    // `persist` syncs, then renames; run it off the async threads.
    tokio::task::spawn_blocking(move || new.persist())
        .await
        .map_err(io::Error::other)?
        .map_err(refusal)?;
    Ok(written)
}

/// Delete a file (or a symlink itself).
pub fn delete(share: &Share, path: &str) -> Result<(), WriteError> {
    share.remove_file(path).map_err(refusal)
}

/// Create a folder.
pub fn make_dir(share: &Share, path: &str) -> Result<(), WriteError> {
    share.create_dir(path).map_err(refusal)
}

/// Remove an empty folder.
pub fn remove_dir(share: &Share, path: &str) -> Result<(), WriteError> {
    share.remove_dir(path).map_err(refusal)
}

/// Rename within the share.
pub fn rename(share: &Share, from: &str, to: &str) -> Result<(), WriteError> {
    share.rename(from, to).map_err(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfs_core::dir::TEMP_PREFIX;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    fn setup() -> (tempfile::TempDir, Share) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("share/sub")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), b"secret").unwrap();
        symlink(dir.path().join("outside"), dir.path().join("share/out")).unwrap();
        symlink(
            dir.path().join("outside/secret"),
            dir.path().join("share/secretlink"),
        )
        .unwrap();
        let share = Share::open(dir.path().join("share")).unwrap();
        (dir, share)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[tokio::test]
    async fn upload_lands_whole_and_replaces() {
        let (dir, share) = setup();
        let n = upload(&share, "/sub/a.txt", &b"first"[..]).await.unwrap();
        assert_eq!(n, 5);
        upload(&share, "sub/a.txt", &b"second"[..]).await.unwrap();
        assert_eq!(
            fs::read(dir.path().join("share/sub/a.txt")).unwrap(),
            b"second"
        );
        assert!(leftovers(&dir.path().join("share/sub")).is_empty());
    }

    #[tokio::test]
    async fn cut_upload_keeps_the_old_file_and_no_temp() {
        let (dir, share) = setup();
        fs::write(dir.path().join("share/keep"), b"old").unwrap();
        let (client, server) = tokio::io::duplex(64);
        let task = tokio::spawn({
            let share = share.clone();
            async move { upload(&share, "keep", server).await }
        });
        let mut client = client;
        client.write_all(b"partial new bytes").await.unwrap();
        // Wait until the temporary file exists, then cut the upload by aborting the task
        // (what happens when the server drops a session).
        let share_dir = dir.path().join("share");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while leftovers(&share_dir).is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        drop(client);
        assert_eq!(fs::read(share_dir.join("keep")).unwrap(), b"old");
        assert!(leftovers(&share_dir).is_empty());
    }

    #[tokio::test]
    async fn escapes_are_refused() {
        let (dir, share) = setup();
        for path in ["../x", "sub/../../x", "out/x", "/out/new", "a\0b", "/", ""] {
            assert!(
                upload(&share, path, &b"x"[..]).await.is_err(),
                "upload {path:?}"
            );
            assert!(make_dir(&share, path).is_err(), "mkdir {path:?}");
        }
        assert!(delete(&share, "out/secret").is_err());
        assert!(rename(&share, "out/secret", "stolen").is_err());
        assert!(rename(&share, "sub", "../moved").is_err());
        // Deleting a link that leads outside removes the link, never its target.
        delete(&share, "secretlink").unwrap();
        assert_eq!(
            fs::read(dir.path().join("outside/secret")).unwrap(),
            b"secret"
        );
        // Uploading over a link replaces the link, never writes through it.
        upload(&share, "out", &b"x"[..]).await.unwrap_err(); // a folder (through the link)
        symlink(
            dir.path().join("outside/secret"),
            dir.path().join("share/again"),
        )
        .unwrap();
        upload(&share, "again", &b"mine"[..]).await.unwrap();
        assert_eq!(
            fs::read(dir.path().join("outside/secret")).unwrap(),
            b"secret"
        );
        assert_eq!(fs::read(dir.path().join("share/again")).unwrap(), b"mine");
        assert!(leftovers(&dir.path().join("outside")).is_empty());
    }

    #[test]
    fn folders() {
        let (dir, share) = setup();
        make_dir(&share, "new").unwrap();
        assert!(make_dir(&share, "new").is_err());
        rename(&share, "new", "sub/renamed").unwrap();
        assert!(dir.path().join("share/sub/renamed").is_dir());
        remove_dir(&share, "sub/renamed").unwrap();
        assert!(remove_dir(&share, "sub/missing").is_err());
        assert!(matches!(
            delete(&share, "sub"),
            Err(WriteError::Share(ShareError::NotAFile)) | Err(WriteError::Io(_))
        ));
    }

    /// Uploads, folders, deletes and renames against a parent folder swapped for a symlink
    /// out of the share: before the request they are refused; after the share resolved the
    /// parent, they act in the folder that was resolved, never outside.
    #[tokio::test]
    async fn parent_swapped_for_a_symlink_never_leads_a_write_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("pub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), b"keep").unwrap();
        let swap = {
            let (root, outside) = (root.clone(), outside.clone());
            move || {
                if !root.join("pub").is_symlink() {
                    fs::rename(root.join("pub"), root.join("pub.old")).unwrap();
                    symlink(&outside, root.join("pub")).unwrap();
                }
            }
        };
        let restore = || {
            fs::remove_file(root.join("pub")).unwrap();
            fs::rename(root.join("pub.old"), root.join("pub")).unwrap();
        };
        let untouched = || {
            let names: Vec<_> = fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["victim"]);
            assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
        };
        for share in [
            Share::open(&root).unwrap(),
            Share::open_walking(&root).unwrap(),
        ] {
            swap();
            assert!(upload(&share, "pub/new", &b"x"[..]).await.is_err());
            assert!(make_dir(&share, "pub/d").is_err());
            assert!(delete(&share, "pub/victim").is_err());
            assert!(rename(&share, "pub/victim", "stolen").is_err());
            untouched();
            restore();

            let hook_swap = swap.clone();
            share.set_resolve_hook(Some(std::sync::Arc::new(move |_: &str| hook_swap())));
            upload(&share, "pub/new", &b"mine"[..]).await.unwrap();
            assert_eq!(fs::read(root.join("pub.old/new")).unwrap(), b"mine");
            untouched();
            restore();
            delete(&share, "pub/victim").unwrap_err(); // resolved inside: no such file there
            untouched();
            restore();
            make_dir(&share, "pub/d").unwrap();
            assert!(root.join("pub.old/d").is_dir());
            untouched();
            restore();
            share.set_resolve_hook(None);
            fs::remove_file(root.join("pub/new")).unwrap();
            fs::remove_dir(root.join("pub/d")).unwrap();
        }
    }
}
