//! The thread that writes a download's chunks to its `.part` and hashes them, off the async
//! runtime, so that network, disk and hashing overlap.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{TransferError, local};

/// The thread that writes chunks to `.part` and hashes them, off the async runtime.
pub(super) struct Writer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Buffers the thread is done with, for reuse.
    spare: std::sync::Mutex<std::sync::mpsc::Receiver<Vec<u8>>>,
    /// The hash (if verifying) and the final size.
    handle: std::thread::JoinHandle<io::Result<(Option<blake3::Hash>, u64)>>,
    part: PathBuf,
}

impl Writer {
    pub(super) fn spawn(
        mut file: File,
        part: &Path,
        offset: u64,
        verify: bool,
        sync: bool,
        window: usize,
    ) -> Result<Writer, TransferError> {
        // Drop any bytes past the verified prefix, then append from there.
        file.set_len(offset).map_err(local(part))?;
        file.seek(SeekFrom::Start(offset)).map_err(local(part))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(window.max(1));
        let (spare_tx, spare_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("meshfs-writer".into())
            .spawn(move || {
                let mut hasher = verify.then(blake3::Hasher::new);
                if let Some(h) = hasher.as_mut() {
                    hash_prefix(&file, offset, h)?;
                }
                while let Some(buf) = rx.blocking_recv() {
                    file.write_all(&buf)?;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&buf);
                    }
                    let _ = spare_tx.send(buf);
                }
                if sync {
                    file.sync_data()?;
                }
                let size = file.metadata()?.len();
                Ok((hasher.map(|h| h.finalize()), size))
            })
            .map_err(local(part))?;
        Ok(Writer {
            tx,
            spare: std::sync::Mutex::new(spare_rx),
            handle,
            part: part.to_owned(),
        })
    }

    /// An empty buffer with room for `cap` bytes, reused when possible.
    pub(super) fn buffer(&self, cap: usize) -> Vec<u8> {
        let reused = self.spare.lock().ok().and_then(|rx| rx.try_recv().ok());
        let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(cap));
        buf.clear();
        buf
    }

    pub(super) async fn write(&self, buf: Vec<u8>) -> Result<(), TransferError> {
        if self.tx.send(buf).await.is_err() {
            // The thread stopped early: its error is reported by `finish`.
            return Err(TransferError::Local {
                path: self.part.clone(),
                source: io::Error::other("writer stopped"),
            });
        }
        Ok(())
    }

    /// Wait for every chunk to be written; the hash of the whole file if verifying, and its
    /// size.
    pub(super) fn finish(self) -> Result<(Option<blake3::Hash>, u64), TransferError> {
        drop(self.tx);
        let part = self.part;
        match self.handle.join() {
            Ok(res) => res.map_err(local(&part)),
            Err(_) => Err(TransferError::Local {
                path: part,
                source: io::Error::other("writer thread panicked"),
            }),
        }
    }
}

/// Hash the first `len` bytes of `file` (the part kept from an earlier run). Positional reads,
/// so the file's append position is left alone.
pub(super) fn hash_prefix(file: &File, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < len {
        let want = buf.len().min((len - pos) as usize);
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "partial file shrank",
            ));
        }
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}
