//! Confined writes into a share: upload, delete, make and remove folders, rename.
//!
//! `Share` is read-only on purpose; FTP is the first door that writes. These functions confine
//! paths exactly as `Share` does, by letting it do the deciding: the request path is normalised
//! with [`Share::normalize`] (so `..` and NUL are refused and a leading `/` means the share's
//! root), its *parent folder* is resolved with [`Share::resolve`] (every symlink followed; it
//! must exist and still lie inside the share), and the operation then acts on the last
//! component *inside that resolved folder* without following it: `unlink`, `rmdir`, `rename` and
//! `O_CREAT|O_EXCL` never follow a final symlink, so a link pointing out of the share is removed
//! or replaced itself, never what it points to.
//!
//! Uploads are atomic: bytes go to a hidden temporary file in the same folder, which is renamed
//! over the destination only once the whole upload arrived and reached the disk. A cut
//! upload leaves the old file (or nothing) and removes the temporary file.
//!
//! Not guarded: a local process swapping a parent folder for a symlink between the resolve and
//! the operation (the same window as `Share`'s own resolve-then-open for folders).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use meshfs_core::share::{Kind, Share, ShareError};
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader};

/// Buffer between the data connection and the file of an upload.
const UPLOAD_BUF: usize = 256 * 1024;

/// Prefix of temporary upload files (hidden, and recognisable by whoever cleans up).
pub const TEMP_PREFIX: &str = ".meshfs-upload-";

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

/// A path to be written: the resolved folder that will hold it and the name inside it.
#[derive(Debug)]
pub struct Target {
    /// Canonical folder inside the share.
    pub dir: PathBuf,
    /// Last component, never empty, `.` or `..`.
    pub name: String,
}

impl Target {
    /// Confine `path` (relative to the share, or absolute meaning from its root).
    pub fn resolve(share: &Share, path: &str) -> Result<Target, WriteError> {
        let rel = Share::normalize(path)?;
        let (parent, name) = match rel.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", rel.as_str()),
        };
        // The root itself has no name and cannot be replaced, removed or renamed. Names that a
        // listing could not show (line breaks) are not created either.
        if name.is_empty() || name.contains(['\n', '\r']) {
            return Err(WriteError::BadName);
        }
        if share.stat(parent)?.kind != Kind::Dir {
            return Err(ShareError::NotADir.into());
        }
        let dir = share.resolve(parent)?;
        Ok(Target {
            dir,
            name: name.to_owned(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// Replace or create `path` with the bytes of `input`, atomically. Returns the bytes written.
pub async fn upload<R>(share: &Share, path: &str, input: R) -> Result<u64, WriteError>
where
    R: AsyncRead + Unpin,
{
    let target = Target::resolve(share, path)?;
    if target.path().is_dir() {
        return Err(ShareError::NotAFile.into());
    }
    let temp = TempFile::create(&target.dir)?;
    let mut file = tokio::fs::File::from_std(temp.file.try_clone()?);
    let mut input = BufReader::with_capacity(UPLOAD_BUF, input);
    let written = tokio::io::copy_buf(&mut input, &mut file).await?;
    file.flush().await?;
    file.sync_data().await?;
    drop(file);
    temp.commit(&target.path())?;
    Ok(written)
}

/// Delete a file (or a symlink itself).
pub fn delete(share: &Share, path: &str) -> Result<(), WriteError> {
    let target = Target::resolve(share, path)?;
    fs::remove_file(target.path()).map_err(os_error)
}

/// Create a folder.
pub fn make_dir(share: &Share, path: &str) -> Result<(), WriteError> {
    let target = Target::resolve(share, path)?;
    fs::create_dir(target.path()).map_err(os_error)
}

/// Remove an empty folder.
pub fn remove_dir(share: &Share, path: &str) -> Result<(), WriteError> {
    let target = Target::resolve(share, path)?;
    fs::remove_dir(target.path()).map_err(os_error)
}

/// Rename within the share.
pub fn rename(share: &Share, from: &str, to: &str) -> Result<(), WriteError> {
    let from = Target::resolve(share, from)?;
    let to = Target::resolve(share, to)?;
    fs::rename(from.path(), to.path()).map_err(os_error)
}

fn os_error(e: io::Error) -> WriteError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ShareError::NotFound.into(),
        Some(libc::EACCES) | Some(libc::EPERM) => ShareError::Denied("not writable").into(),
        Some(libc::EISDIR) => ShareError::NotAFile.into(),
        Some(libc::ENOTDIR) => ShareError::NotADir.into(),
        _ => WriteError::Io(e),
    }
}

/// A temporary upload file, removed unless committed (also when the upload task is dropped
/// mid-transfer).
struct TempFile {
    path: PathBuf,
    file: fs::File,
    committed: bool,
}

impl TempFile {
    fn create(dir: &Path) -> Result<TempFile, WriteError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(os_error(e)),
            }
        }
    }

    fn commit(mut self, dest: &Path) -> Result<(), WriteError> {
        fs::rename(&self.path, dest).map_err(os_error)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
}
