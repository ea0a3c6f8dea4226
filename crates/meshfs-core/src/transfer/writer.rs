//! The thread that writes a download's chunks to its `.part` and hashes them, off the async
//! runtime, so that network, disk and hashing overlap.
//!
//! A copy of known length is hashed block by block ([`crate::blocks`]): each 1 MiB block's
//! chaining value is compared with the node's list as soon as both are here, so a node (or a
//! relay) that sends a wrong byte is caught at that block and the writer stops there, instead
//! of after the whole file. The list of what was written is also the file's BLAKE3 (its
//! entries merged), so the end of the download hashes nothing again.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::blocks::{BlockHasher, BlockHashes};

use super::{TransferError, local};

/// How the writer checks the bytes it writes.
pub(super) enum Check {
    /// Not at all (`--no-verify`).
    Off,
    /// The BLAKE3 of the whole file, compared at the end: a followed file, whose length is
    /// known only then, or one too large for a block list.
    Whole,
    /// Block by block over the first `size` bytes (the snapshot), each compared with the
    /// node's list once it is `expected` (set by whoever fetches it, at any time).
    Blocks {
        size: u64,
        expected: Arc<OnceLock<BlockHashes>>,
    },
}

/// What the writer computed over the whole `.part` (the bytes kept from an earlier run
/// included).
pub(super) enum Digest {
    Off,
    Whole(blake3::Hash),
    /// The block list of what was written.
    Blocks(BlockHashes),
    /// Fewer bytes than the snapshot came to be hashed by block (the download failed: its
    /// own error says why).
    Incomplete,
    /// Block `k` differs from the node's list: the writer stopped there, and the `.part` holds
    /// bytes of that block and maybe later ones that must not be kept.
    Mismatch(u64),
}

/// The thread's running hash.
enum Hashing {
    Off,
    Whole(Box<blake3::Hasher>),
    Blocks {
        hasher: Box<BlockHasher>,
        expected: Arc<OnceLock<BlockHashes>>,
        /// Blocks already compared with the list (all equal).
        checked: u64,
    },
}

impl Hashing {
    fn new(check: Check) -> Result<Hashing, crate::blocks::BlockError> {
        Ok(match check {
            Check::Off => Hashing::Off,
            Check::Whole => Hashing::Whole(Box::default()),
            Check::Blocks { size, expected } => Hashing::Blocks {
                hasher: Box::new(BlockHasher::new(size)?),
                expected,
                checked: 0,
            },
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hashing::Off => {}
            Hashing::Whole(h) => {
                h.update(data);
            }
            Hashing::Blocks { hasher, .. } => hasher.update(data),
        }
    }

    /// Compare the blocks finished since the last call with the node's list, if it is here
    /// yet: the first that differs.
    fn mismatch(&mut self) -> Option<u64> {
        let Hashing::Blocks {
            hasher,
            expected,
            checked,
        } = self
        else {
            return None;
        };
        let list = expected.get()?;
        let done = hasher.finished();
        let bad = list.first_difference(done, *checked);
        *checked = (done.len() / crate::blocks::ENTRY_LEN) as u64;
        bad
    }

    fn finish(self) -> Digest {
        match self {
            Hashing::Off => Digest::Off,
            Hashing::Whole(h) => Digest::Whole(h.finalize()),
            Hashing::Blocks { hasher, .. } => {
                hasher.finish().map_or(Digest::Incomplete, Digest::Blocks)
            }
        }
    }
}

/// The thread that writes chunks to `.part` and hashes them, off the async runtime.
pub(super) struct Writer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Buffers the thread is done with, for reuse.
    spare: std::sync::Mutex<std::sync::mpsc::Receiver<Vec<u8>>>,
    /// What was computed, and the final size.
    handle: std::thread::JoinHandle<io::Result<(Digest, u64)>>,
    part: PathBuf,
}

impl Writer {
    /// Write after the first `offset` bytes of `file` (kept from an earlier run: they are
    /// hashed from disk first, and checked like the rest).
    pub(super) fn spawn(
        mut file: File,
        part: &Path,
        offset: u64,
        check: Check,
        sync: bool,
        window: usize,
    ) -> Result<Writer, TransferError> {
        // Drop any bytes past the verified prefix, then append from there. Only when there are
        // some: on ext4 a truncation to size 0 marks the file to have all its data flushed at
        // `close` (`auto_da_alloc`, for programs that rewrite a file in place), which held a
        // 1 GiB download 0.36 s in `close` while its core idled.
        if file.metadata().map_err(local(part))?.len() != offset {
            file.set_len(offset).map_err(local(part))?;
        }
        file.seek(SeekFrom::Start(offset)).map_err(local(part))?;
        let mut hashing = Hashing::new(check)
            .map_err(io::Error::other)
            .map_err(local(part))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(window.max(1));
        let (spare_tx, spare_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("meshfs-writer".into())
            .spawn(move || {
                read_prefix(&file, offset, |piece| hashing.update(piece))?;
                while let Some(buf) = rx.blocking_recv() {
                    file.write_all(&buf)?;
                    hashing.update(&buf);
                    if let Some(k) = hashing.mismatch() {
                        // Stop taking chunks: the download ends with this block's error.
                        return Ok((Digest::Mismatch(k), file.metadata()?.len()));
                    }
                    let _ = spare_tx.send(buf);
                }
                if sync {
                    file.sync_data()?;
                }
                let size = file.metadata()?.len();
                Ok((hashing.finish(), size))
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
            // The thread stopped early: its error (or the bad block) is reported by `finish`.
            return Err(TransferError::Local {
                path: self.part.clone(),
                source: io::Error::other("writer stopped"),
            });
        }
        Ok(())
    }

    /// Wait for every chunk to be written; what was computed over the file, and its size.
    pub(super) fn finish(self) -> Result<(Digest, u64), TransferError> {
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

/// Hash the first `len` bytes of `file` (the part kept from an earlier run).
pub(super) fn hash_prefix(file: &File, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    read_prefix(file, len, |piece| {
        hasher.update(piece);
    })
}

/// Hand the first `len` bytes of `file` to `each`, in order, 1 MiB at a time. Positional
/// reads, so the file's append position is left alone.
fn read_prefix(file: &File, len: u64, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
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
        each(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}
