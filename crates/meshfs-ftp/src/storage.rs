//! libunftp's storage back-end over a [`Share`]: reads, listings and metadata through `Share`,
//! writes through [`crate::write`], and only for users allowed to write.

use std::fmt::Debug;
use std::io::SeekFrom;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use meshfs_core::access::{Access, Keys, ReadError};
use meshfs_core::metrics::{Door, metrics};
use meshfs_core::rate::Limiter;
use meshfs_core::share::{Entry, Kind, Share, ShareError};
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use unftp_core::storage::{
    Error, ErrorKind, FEATURE_RESTART, Fileinfo, Metadata, Permissions, Result, StorageBackend,
};

use crate::busy::{Busy, BusyGuard};
use crate::notes::{ANONYMOUS_WRITE, Notes, PASSWORD_REQUIRED};
use crate::users::FtpUser;
use crate::write::{self, WriteError};

/// Read-ahead of the reader handed to libunftp (`get`).
const DOWNLOAD_BUF: usize = 256 * 1024;

/// Bytes per read of a download (`get_into`), two of them in flight per transfer.
const PIPELINE_CHUNK: usize = 1 << 20;

/// Read up to `buf.len()` bytes at `offset` on the blocking pool; returns the buffer and count.
fn read_chunk(
    file: Arc<std::fs::File>,
    offset: u64,
    mut buf: Vec<u8>,
) -> tokio::task::JoinHandle<std::io::Result<(Vec<u8>, usize)>> {
    tokio::task::spawn_blocking(move || {
        let n = loop {
            match file.read_at(&mut buf, offset) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        Ok((buf, n))
    })
}

/// One session's view of the share.
#[derive(Debug, Clone)]
pub(crate) struct ShareStorage {
    pub(crate) share: Share,
    /// The node's share and file passwords (seed 004). Anonymous FTP users prove none, so they
    /// see a protected share not at all and protected files not read; named users of the users
    /// file were let in by the node's operator and are not subject to them.
    pub(crate) access: Access,
    pub(crate) busy: Busy,
    /// The node's and this client's upload limits (`RETR`).
    pub(crate) limiter: Limiter,
    /// This session's notes: a refusal for want of a login is told as such (`530`) by the relay.
    pub(crate) notes: Notes,
}

/// Metadata of a share entry, as libunftp wants it.
#[derive(Debug, Clone)]
pub(crate) struct Meta(Entry);

impl Metadata for Meta {
    fn len(&self) -> u64 {
        self.0.size
    }
    fn is_dir(&self) -> bool {
        self.0.kind == Kind::Dir
    }
    fn is_file(&self) -> bool {
        self.0.kind == Kind::File
    }
    /// Symlinks inside the share are shown as what they lead to, as on every door.
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> Result<SystemTime> {
        Ok(self.0.modified())
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    fn permissions(&self) -> Permissions {
        Permissions(self.0.mode)
    }
}

/// A path as libunftp hands it over (the session's cwd joined with the argument), as text.
fn text(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::from(ErrorKind::FileNameNotAllowedError))
}

fn share_error(e: ShareError) -> Error {
    let kind = match &e {
        ShareError::NotFound | ShareError::NotAFile => ErrorKind::PermanentFileNotAvailable,
        ShareError::NotADir => ErrorKind::PermanentDirectoryNotAvailable,
        ShareError::Denied(_) => ErrorKind::PermissionDenied,
        ShareError::Io(_) => ErrorKind::LocalError,
    };
    Error::new(kind, e)
}

fn write_error(e: WriteError) -> Error {
    match e {
        WriteError::Share(e) => share_error(e),
        WriteError::BadName => Error::from(ErrorKind::FileNameNotAllowedError),
        WriteError::Io(e) => Error::from(e),
    }
}

/// An anonymous user meets a password of the node: `530` (see [`Notes`]).
fn protected(notes: &Notes) -> Error {
    notes.refuse(PASSWORD_REQUIRED);
    Error::new(ErrorKind::PermissionDenied, "protected by a password")
}

impl ShareStorage {
    /// Only named users change the share; anonymous users get `530` (the relay refuses their
    /// uploads even before this, so no upload's bytes cross for nothing).
    fn require_write(&self, user: &FtpUser) -> Result<()> {
        if user.can_write {
            return Ok(());
        }
        self.notes.refuse(ANONYMOUS_WRITE);
        Err(Error::new(
            ErrorKind::PermissionDenied,
            "anonymous users may only read",
        ))
    }

    /// May `user` list and stat?
    fn check_browse(&self, user: &FtpUser) -> Result<()> {
        if user.can_write || self.access.may_browse(&Keys::default()) {
            Ok(())
        } else {
            Err(protected(&self.notes))
        }
    }

    /// Open `path` for a download by `user`: counted as a running transfer (the guard), opened
    /// through the share (confinement, regular files only) and, for users subject to the
    /// passwords, checked against the very file opened; then duplicated, to stream from.
    async fn open_download(
        &self,
        user: &FtpUser,
        path: &Path,
    ) -> Result<(std::fs::File, BusyGuard)> {
        let path = text(path)?.to_owned();
        let busy = self.busy.start();
        let trusted = user.can_write;
        let (access, notes) = (self.access.clone(), self.notes.clone());
        let file = self
            .blocking(move |s| {
                let f = if trusted {
                    s.open_file(&path).map_err(share_error)?
                } else {
                    access
                        .open_file(s, &path, &Keys::default())
                        .map_err(|e| match e {
                            ReadError::Locked => protected(&notes),
                            ReadError::Share(e) => share_error(e),
                        })?
                };
                f.as_file().try_clone().map_err(Error::from)
            })
            .await?;
        Ok((file, busy))
    }

    /// Run a blocking share call off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Share) -> std::result::Result<T, Error> + Send + 'static,
    {
        let share = self.share.clone();
        tokio::task::spawn_blocking(move || f(&share))
            .await
            .map_err(|e| Error::new(ErrorKind::LocalError, e))?
    }
}

/// A download's reader; counts as a running transfer until dropped.
struct Download {
    file: tokio::fs::File,
    _busy: BusyGuard,
}

impl AsyncRead for Download {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

#[async_trait]
impl StorageBackend<FtpUser> for ShareStorage {
    type Metadata = Meta;

    fn name(&self) -> &str {
        "meshfs share"
    }

    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> Result<Meta> {
        self.check_browse(user)?;
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| s.stat(&path).map(Meta).map_err(share_error))
            .await
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> Result<Vec<Fileinfo<PathBuf, Meta>>> {
        self.check_browse(user)?;
        metrics().door(Door::Ftp).request();
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| {
            let entries = s.list(&path).map_err(share_error)?;
            Ok(entries
                .into_iter()
                .map(|e| Fileinfo {
                    path: PathBuf::from(&e.name),
                    metadata: Meta(e),
                })
                .collect())
        })
        .await
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        let (file, busy) = self.open_download(user, path.as_ref()).await?;
        let mut file = tokio::fs::File::from_std(file);
        file.set_max_buf_size(DOWNLOAD_BUF);
        if start_pos > 0 {
            file.seek(SeekFrom::Start(start_pos)).await?;
        }
        Ok(Box::new(Download { file, _busy: busy }))
    }

    /// Downloads read 1 MiB at a time on the blocking pool, the next read running while the
    /// previous chunk is written to the data connection (measured in `bench/ftp.sh`); under
    /// an upload limit each chunk goes in pieces, each charged before it is written. (`get`,
    /// the plain reader, serves only `SITE MD5`, which is off: it sends no content.)
    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let (file, _busy) = self.open_download(user, path.as_ref()).await?;
        let counted = metrics().door(Door::Ftp);
        counted.request();
        let file = Arc::new(file);
        let mut offset = start_pos;
        let mut spare = vec![0u8; PIPELINE_CHUNK];
        let mut next = read_chunk(file.clone(), offset, vec![0u8; PIPELINE_CHUNK]);
        let mut sent = 0u64;
        loop {
            let (buf, n) = next
                .await
                .map_err(|e| Error::new(ErrorKind::LocalError, e))??;
            if n == 0 {
                return Ok(sent);
            }
            offset += n as u64;
            next = read_chunk(file.clone(), offset, spare);
            for piece in self.limiter.pieces(&buf[..n]) {
                self.limiter.take(piece.len() as u64).await;
                output.write_all(piece).await?;
            }
            counted.bytes_sent_total.add(n as u64);
            sent += n as u64;
            spare = buf;
        }
    }

    async fn put<P: AsRef<Path> + Send + Debug, R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        user: &FtpUser,
        input: R,
        path: P,
        start_pos: u64,
    ) -> Result<u64> {
        self.require_write(user)?;
        metrics().door(Door::Ftp).request();
        if start_pos != 0 {
            // An atomic upload replaces the whole file; resuming one would need the old bytes.
            return Err(Error::new(
                ErrorKind::CommandNotImplemented,
                "uploads cannot be resumed: send the whole file",
            ));
        }
        let path = text(path.as_ref())?.to_owned();
        let _busy = self.busy.start();
        let n = write::upload(&self.share, &path, input)
            .await
            .map_err(write_error)?;
        // Debug level: libunftp wraps this call in very verbose spans of its own.
        tracing::debug!(user = %user, path, bytes = n, "FTP upload");
        Ok(n)
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, user: &FtpUser, path: P) -> Result<()> {
        self.require_write(user)?;
        metrics().door(Door::Ftp).request();
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| write::delete(s, &path).map_err(write_error))
            .await
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, user: &FtpUser, path: P) -> Result<()> {
        self.require_write(user)?;
        metrics().door(Door::Ftp).request();
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| write::make_dir(s, &path).map_err(write_error))
            .await
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &FtpUser,
        from: P,
        to: P,
    ) -> Result<()> {
        self.require_write(user)?;
        metrics().door(Door::Ftp).request();
        let from = text(from.as_ref())?.to_owned();
        let to = text(to.as_ref())?.to_owned();
        self.blocking(move |s| write::rename(s, &from, &to).map_err(write_error))
            .await
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, user: &FtpUser, path: P) -> Result<()> {
        self.require_write(user)?;
        metrics().door(Door::Ftp).request();
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| write::remove_dir(s, &path).map_err(write_error))
            .await
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, user: &FtpUser, path: P) -> Result<()> {
        self.check_browse(user)?;
        let path = text(path.as_ref())?.to_owned();
        self.blocking(move |s| match s.stat(&path).map_err(share_error)?.kind {
            Kind::Dir => Ok(()),
            Kind::File => Err(Error::from(ErrorKind::PermanentDirectoryNotAvailable)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    //! FTP downloads against a parent folder swapped for a symlink (out of the share, or onto
    //! a protected folder), before the request and between the share's resolve and the read.

    use super::*;
    use meshfs_core::share::testing::{fixture, swap_pub};
    use std::os::unix::fs::symlink;
    use tokio::io::AsyncReadExt;

    fn storage(share: &Share) -> ShareStorage {
        let access = Access::open();
        access.protect_file("priv/clip.mp4", "pw").unwrap();
        ShareStorage {
            share: share.clone(),
            access,
            busy: Busy::default(),
            limiter: Limiter::unlimited(),
            notes: Notes::default(),
        }
    }

    fn anonymous() -> FtpUser {
        FtpUser {
            name: "anonymous".into(),
            can_write: false,
        }
    }

    async fn download(s: &ShareStorage, path: &str) -> Result<Vec<u8>> {
        let mut reader = s.get(&anonymous(), Path::new(path), 0).await?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        let mut via_get_into = Vec::new();
        s.get_into(&anonymous(), Path::new(path), 0, &mut via_get_into)
            .await?;
        assert_eq!(out, via_get_into);
        Ok(out)
    }

    #[tokio::test]
    async fn download_with_a_parent_swapped_before_the_request_fails_closed() {
        let (dir, root) = fixture();
        for share in [
            Share::open(&root).unwrap(),
            Share::open_walking(&root).unwrap(),
        ] {
            let s = storage(&share);
            assert_eq!(download(&s, "pub/clip.mp4").await.unwrap(), b"public");
            swap_pub(&root, &dir.path().join("outside"));
            let e = download(&s, "pub/clip.mp4").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
            std::fs::remove_file(root.join("pub")).unwrap();
            symlink("priv", root.join("pub")).unwrap();
            let e = download(&s, "pub/clip.mp4").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
            std::fs::remove_file(root.join("pub")).unwrap();
            std::fs::rename(root.join("pub.old"), root.join("pub")).unwrap();
        }
    }

    /// The swap happens on the `k`-th resolution of the download: a door that resolved the
    /// path twice (checked, then opened) is caught between the two by one of `k = 1, 2`.
    #[tokio::test]
    async fn download_with_a_parent_swapped_after_resolving_reads_what_was_resolved() {
        for to_protected in [false, true] {
            for k in [1, 2] {
                let (dir, root) = fixture();
                for share in [
                    Share::open(&root).unwrap(),
                    Share::open_walking(&root).unwrap(),
                ] {
                    let s = storage(&share);
                    let target = if to_protected {
                        PathBuf::from("priv")
                    } else {
                        dir.path().join("outside")
                    };
                    let (r, calls) = (root.clone(), std::sync::atomic::AtomicUsize::new(0));
                    share.set_resolve_hook(Some(Arc::new(move |_: &str| {
                        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == k {
                            swap_pub(&r, &target);
                        }
                    })));
                    let got = match s.get(&anonymous(), Path::new("pub/clip.mp4"), 0).await {
                        Ok(mut reader) => {
                            let mut out = Vec::new();
                            reader.read_to_end(&mut out).await.unwrap();
                            out
                        }
                        Err(_) => Vec::new(),
                    };
                    let case = format!("to protected: {to_protected}, swap at {k}");
                    assert!(got != b"escape" && got != b"secret", "{case}: leaked");
                    // One resolution: the file resolved is the one read.
                    assert_eq!(got, b"public", "{case}");
                    share.set_resolve_hook(None);
                    if root.join("pub").is_symlink() {
                        std::fs::remove_file(root.join("pub")).unwrap();
                        std::fs::rename(root.join("pub.old"), root.join("pub")).unwrap();
                    }
                }
            }
        }
    }
}
