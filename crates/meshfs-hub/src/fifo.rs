//! Named pipes: creating one that is removed again, and opening them without ever blocking.
//!
//! A plain `open` of a FIFO blocks until the other side opens it too, which would let one silent
//! client freeze the hub. Everything here opens with `O_NONBLOCK` and waits in async code instead.
#![allow(unsafe_code)] // mkfifo(2) and non-blocking opens, which std does not wrap

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::unix::pipe;

/// A FIFO this process created; removed from the file system when dropped, so neither a normal
/// stop nor an error path leaves it behind.
#[derive(Debug)]
pub struct OwnedFifo {
    path: PathBuf,
}

impl OwnedFifo {
    /// Creates the FIFO `path` with permission `mode` (before umask). Fails if anything exists
    /// there: the path might be another hub's FIFO.
    pub fn create(path: &Path, mode: libc::mode_t) -> io::Result<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
        if unsafe { libc::mkfifo(c_path.as_ptr(), mode) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedFifo {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), "cannot remove FIFO: {e}");
        }
    }
}

/// Whether `path` names a FIFO (following symlinks).
pub fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens the read end of the FIFO `path` without blocking. Until a writer appears it reads
/// nothing (no end-of-file either); once every writer has gone it reads end-of-file.
pub fn open_reader(path: &Path) -> io::Result<pipe::Receiver> {
    pipe::OpenOptions::new().open_receiver(path)
}

/// Opens the write end of the FIFO `path` without blocking. Fails with `ENXIO` if nobody has it
/// open for reading, and with `InvalidInput` if it is not a FIFO: a client could otherwise make
/// the hub write into any file it can name.
pub fn open_writer(path: &Path) -> io::Result<pipe::Sender> {
    if !is_fifo(path) {
        return Err(if path.exists() {
            io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO")
        } else {
            io::Error::new(io::ErrorKind::NotFound, "no such FIFO")
        });
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // Checks again on the open file: the path may have been swapped since the check above.
    pipe::Sender::from_file(file)
}

/// [`open_writer`], waiting up to `timeout` for a reader to appear. The seed's clients open their
/// FIFO for reading only after sending their registration, so the hub usually gets there first.
pub async fn open_writer_waiting(path: &Path, timeout: Duration) -> io::Result<pipe::Sender> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match open_writer(path) {
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nobody opened it for reading within {timeout:?}"),
                    ));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn owned_fifo_is_removed_on_drop_and_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fifo = OwnedFifo::create(&path, 0o600).unwrap();
        assert!(is_fifo(&path));
        assert_eq!(
            OwnedFifo::create(&path, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        drop(fifo);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn writer_refuses_regular_files_and_waits_for_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"keep").unwrap();
        assert_eq!(
            open_writer(&file).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        assert_eq!(
            open_writer(&dir.path().join("none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );

        let path = dir.path().join("f");
        let _fifo = OwnedFifo::create(&path, 0o600).unwrap();
        assert_eq!(
            open_writer(&path).unwrap_err().raw_os_error(),
            Some(libc::ENXIO)
        );
        let err = open_writer_waiting(&path, Duration::from_millis(30))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let mut reader = open_reader(&path).unwrap();
        let mut writer = open_writer_waiting(&path, Duration::from_secs(5))
            .await
            .unwrap();
        writer.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        drop(writer);
        assert_eq!(
            reader.read(&mut buf).await.unwrap(),
            0,
            "end-of-file once the writer left"
        );
    }
}
