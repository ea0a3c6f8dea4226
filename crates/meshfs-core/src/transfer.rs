//! `Transfer`: download a remote file to disk so that a crash at any byte loses nothing.
//!
//! On disk, a download in progress is two files beside the destination:
//! - `DEST.part`: the bytes received so far, always a prefix of the remote file;
//! - `DEST.part.resume`: a small record naming the source and the remote size and mtime it was
//!   started against, written atomically (temporary file, then rename).
//!
//! Run again after a crash (even `kill -9`), the download continues at the end of `DEST.part`
//! if the record still matches the remote file, after comparing only the last
//! [`TAIL_CHECK`] bytes with the remote; otherwise it starts over. At the end the BLAKE3 of what
//! was written (the prefix re-hashed from disk, the rest hashed as it streams) must match the
//! node's `hash`, and only then is `DEST.part` renamed to `DEST`.
//!
//! Every file is reached by name inside the destination's folder held open ([`Dir`]), never
//! through a symlink, so a download into a share ([`download_into`] with a folder the share
//! resolved) stays in the folder that was judged; [`download`] opens the folder of a path of
//! the user's choosing. The record is written with the one temporary-file writer
//! ([`TempFile`]).
//!
//! Network, disk and hashing overlap: the network side pipelines `read` requests, and a
//! dedicated writer thread writes and hashes the chunks while the next ones arrive.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError};
use crate::dir::{self, Dir, TempFile};
use crate::remote::RemotePath;
use crate::share::Kind;

/// How many bytes at the end of an existing `.part` are compared with the remote before
/// resuming (a crash can leave a torn last write).
pub const TAIL_CHECK: u64 = 64 << 10;

/// Tuning and safety knobs of a download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Compare the BLAKE3 of the result with the node's `hash` (default on).
    pub verify: bool,
    /// `fsync` the file before the final rename (default off, like `cp` and `curl`).
    pub sync: bool,
    /// Bytes asked per `read` request.
    pub chunk: u64,
    /// `read` requests kept in flight on the connection.
    pub window: usize,
    /// Bandwidth cap in bytes per second (`None`: as fast as the link goes). Shares a slow
    /// link with video streams.
    pub rate_limit: Option<u64>,
    /// Longest wait for the node at any step; a node that stalls longer fails the download
    /// (the `.part` is kept for a resume).
    pub io_timeout: Duration,
    /// What to prove to the node on each connection the download opens.
    pub credentials: crate::client::Credentials,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            verify: true,
            sync: false,
            chunk: 4 << 20,
            window: 4,
            rate_limit: None,
            io_timeout: crate::client::IO_TIMEOUT,
            credentials: crate::client::Credentials::none(),
        }
    }
}

/// Told about a download's progress (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    /// The remote size, and how much of it was already on disk from an earlier attempt.
    fn start(&self, _total: u64, _already: u64) {}
    /// `n` more bytes arrived.
    fn advance(&self, _n: u64) {}
}

impl Progress for () {}

/// What a finished download did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Final size of the file.
    pub size: u64,
    /// Bytes that crossed the network in this run.
    pub received: u64,
    /// Bytes reused from an earlier, interrupted run.
    pub resumed_from: u64,
    /// True when an earlier `.part` had to be thrown away (remote changed, or its tail differed).
    pub restarted: bool,
    pub elapsed: Duration,
}

/// Why a download failed. The `.part` file is kept whenever resuming can help.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Remote(#[from] ClientError),
    #[error("{path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is a directory, not a file")]
    IsDir(String),
    #[error(
        "BLAKE3 mismatch (local {local}, remote {remote}): the remote file changed during the \
         transfer; the partial file was removed, run again to start over"
    )]
    HashMismatch { local: String, remote: String },
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> TransferError + '_ {
    move |source| TransferError::Local {
        path: path.to_owned(),
        source,
    }
}

/// `DEST.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// `NAME.part`: the bytes received so far.
pub fn part_name(name: &str) -> String {
    format!("{name}.part")
}

/// `NAME.part.resume`: what the `.part` was started against.
pub fn record_name(name: &str) -> String {
    format!("{name}.part.resume")
}

/// True for the name of a download's by-product (a `.part`, its record, or a temporary file
/// of the record's atomic write): not content, never worth propagating.
pub fn is_leftover(name: &str) -> bool {
    name.ends_with(".part") || name.ends_with(".part.resume") || dir::is_temp_name(name)
}

/// Remove what an interrupted download of `name` left in `dir` (its `.part` and record).
pub fn discard_partial(dir: &Dir, name: &str) {
    let _ = dir.remove_file(&part_name(name));
    let _ = dir.remove_file(&record_name(name));
}

/// Longest record read back (it holds a URL, a size and a time).
const MAX_RECORD: u64 = 16 << 10;

/// Identity of the remote file a `.part` was started against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResumeRecord {
    source: String,
    size: u64,
    mtime_ns: i64,
}

impl ResumeRecord {
    fn encode(&self) -> String {
        format!(
            "meshfs-resume 1\nsource {}\nsize {}\nmtime_ns {}\n",
            self.source, self.size, self.mtime_ns
        )
    }

    fn decode(text: &str) -> Option<ResumeRecord> {
        let mut lines = text.lines();
        if lines.next()? != "meshfs-resume 1" {
            return None;
        }
        let source = lines.next()?.strip_prefix("source ")?.to_owned();
        let size = lines.next()?.strip_prefix("size ")?.parse().ok()?;
        let mtime_ns = lines.next()?.strip_prefix("mtime_ns ")?.parse().ok()?;
        Some(ResumeRecord {
            source,
            size,
            mtime_ns,
        })
    }

    fn load(dir: &Dir, name: &str) -> Option<ResumeRecord> {
        let file = dir
            .open_file(name, libc::O_RDONLY | libc::O_NONBLOCK)
            .ok()?;
        let mut text = String::new();
        file.take(MAX_RECORD).read_to_string(&mut text).ok()?;
        Self::decode(&text)
    }

    /// Write atomically: a crash leaves either the old record or the new one.
    fn store(&self, dir: &Dir, name: &str) -> io::Result<()> {
        TempFile::write_all_to(dir, name, self.encode().as_bytes())
    }
}

/// Download `src` to `dest` (a path of the user's choosing), resuming an earlier attempt
/// when possible.
pub async fn download(
    src: &RemotePath,
    dest: &Path,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Outcome, TransferError> {
    let (dir, name) = Dir::open_parent(dest).map_err(local(dest))?;
    download_into(src, &dir, &name, opts, progress).await
}

/// Download `src` to `name` inside the open folder `dir` (a share hands out folders it
/// resolved beneath its root: [`crate::Share::parent_dir_creating`]). A failure is counted in
/// [`transfer_errors_total`](crate::metrics::Metrics::transfer_errors_total).
pub async fn download_into(
    src: &RemotePath,
    dir: &Dir,
    name: &str,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Outcome, TransferError> {
    let result = download_uncounted(src, dir, name, opts, progress).await;
    if result.is_err() {
        crate::metrics::metrics().transfer_errors_total.inc();
    }
    result
}

async fn download_uncounted(
    src: &RemotePath,
    dir: &Dir,
    name: &str,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Outcome, TransferError> {
    let started = Instant::now();
    let mut client = Client::connect_with(&src.addr, &opts.credentials).await?;
    client.set_timeout(opts.io_timeout);
    let entry = client.stat(&src.path).await?;
    if entry.kind == Kind::Dir {
        return Err(TransferError::IsDir(src.to_string()));
    }
    // Ask for the hash at once, on its own connection, so the node computes it while the
    // bytes flow.
    let remote_hash = opts.verify.then(|| {
        let src = src.clone();
        let timeout = opts.io_timeout;
        let credentials = opts.credentials.clone();
        tokio::spawn(async move {
            let mut client = Client::connect_with(&src.addr, &credentials).await?;
            // Hashing a large file takes the node a while: allow for it.
            client.set_timeout(timeout.max(crate::client::IO_TIMEOUT));
            client.hash(&src.path).await
        })
    });

    let part_file = part_name(name);
    let record_file = record_name(name);
    let part = dir.display_path(&part_file);
    let record = ResumeRecord {
        source: src.to_string(),
        size: entry.size,
        mtime_ns: entry.mtime_ns,
    };
    let (mut offset, mut restarted) = (0, false);
    let on_disk = dir
        .stat(&part_file, false)
        .ok()
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .map(|st| st.st_size as u64);
    if let Some(len) = on_disk {
        if ResumeRecord::load(dir, &record_file).as_ref() == Some(&record)
            && len <= entry.size
            && tail_matches(&mut client, &src.path, dir, &part_file, len).await?
        {
            offset = len;
        } else {
            restarted = true;
            tracing::info!(part = %part.display(), "remote file changed or partial file damaged: starting over");
        }
    }
    let file = if offset == 0 {
        let file = dir
            .open_file(&part_file, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)
            .map_err(local(&part))?;
        record
            .store(dir, &record_file)
            .map_err(local(&dir.display_path(&record_file)))?;
        file
    } else {
        dir.open_file(&part_file, libc::O_RDWR)
            .map_err(local(&part))?
    };
    progress.start(entry.size, offset);

    let writer = Writer::spawn(file, &part, offset, opts.verify, opts.sync, opts.window)?;
    let received = stream_to(&mut client, &src.path, offset, opts, &writer, progress).await;
    // A failed write (disk full, say) is the root cause of a stopped stream: report it first.
    let (local_hash, size) = writer.finish()?;
    let received = received?;

    if let Some(task) = remote_hash {
        let remote = task
            .await
            .map_err(|e| io::Error::other(e.to_string()))
            .map_err(local(&part))??;
        let local_hex = local_hash
            .map(|h| h.to_hex().to_string())
            .unwrap_or_default();
        if local_hex != remote {
            discard_partial(dir, name);
            return Err(TransferError::HashMismatch {
                local: local_hex,
                remote,
            });
        }
    }
    dir.rename(&part_file, dir, name)
        .map_err(local(&dir.display_path(name)))?;
    let _ = dir.remove_file(&record_file);
    let _ = client.quit().await;
    Ok(Outcome {
        size,
        received,
        resumed_from: offset,
        restarted,
        elapsed: started.elapsed(),
    })
}

/// Compare the last bytes of `part` (of length `len`) with the same range of the remote file.
async fn tail_matches(
    client: &mut Client,
    path: &str,
    dir: &Dir,
    part: &str,
    len: u64,
) -> Result<bool, TransferError> {
    let k = len.min(TAIL_CHECK);
    if k == 0 {
        return Ok(true);
    }
    let mut mine = vec![0u8; k as usize];
    dir.open_file(part, libc::O_RDONLY)
        .and_then(|f| f.read_exact_at(&mut mine, len - k))
        .map_err(local(&dir.display_path(part)))?;
    let mut theirs = Vec::with_capacity(k as usize);
    client.pread(path, len - k, k, &mut theirs).await?;
    Ok(mine == theirs)
}

/// Pipeline `read` requests from `offset` to the end of the file, handing chunks to `writer`.
async fn stream_to(
    client: &mut Client,
    path: &str,
    offset: u64,
    opts: &DownloadOptions,
    writer: &Writer,
    progress: &dyn Progress,
) -> Result<u64, TransferError> {
    client.open(path).await?;
    if offset > 0 {
        client.seek(offset).await?;
    }
    // Under a rate limit, ask for small chunks one at a time so the pace is smooth.
    let (chunk, window) = match opts.rate_limit {
        Some(rate) => ((rate / 8).clamp(4096, opts.chunk), 1),
        None => (opts.chunk, opts.window.max(1)),
    };
    let started = Instant::now();
    let (mut in_flight, mut eof, mut received) = (0usize, false, 0u64);
    while !eof || in_flight > 0 {
        while !eof && in_flight < window {
            client.send(&format!("read {chunk}"));
            in_flight += 1;
        }
        let n = client.data_header(chunk).await?;
        in_flight -= 1;
        if n == 0 {
            eof = true;
            continue;
        }
        let mut buf = writer.buffer(chunk as usize);
        client.payload_into(n, &mut buf).await?;
        received += n;
        progress.advance(n);
        writer.write(buf).await?;
        if let Some(rate) = opts.rate_limit {
            let due = Duration::from_secs_f64(received as f64 / rate.max(1) as f64);
            tokio::time::sleep_until((started + due).into()).await;
        }
    }
    client.close().await?;
    Ok(received)
}

/// The thread that writes chunks to `.part` and hashes them, off the async runtime.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Buffers the thread is done with, for reuse.
    spare: std::sync::Mutex<std::sync::mpsc::Receiver<Vec<u8>>>,
    /// The hash (if verifying) and the final size.
    handle: std::thread::JoinHandle<io::Result<(Option<blake3::Hash>, u64)>>,
    part: PathBuf,
}

impl Writer {
    fn spawn(
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
    fn buffer(&self, cap: usize) -> Vec<u8> {
        let reused = self.spare.lock().ok().and_then(|rx| rx.try_recv().ok());
        let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(cap));
        buf.clear();
        buf
    }

    async fn write(&self, buf: Vec<u8>) -> Result<(), TransferError> {
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
    fn finish(self) -> Result<(Option<blake3::Hash>, u64), TransferError> {
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
fn hash_prefix(file: &File, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = ResumeRecord {
            source: "meshfs://h:1/a b".into(),
            size: 5,
            mtime_ns: -3,
        };
        assert_eq!(ResumeRecord::decode(&r.encode()), Some(r));
        assert_eq!(ResumeRecord::decode("junk"), None);
    }

    #[test]
    fn part_names() {
        assert_eq!(part_path(Path::new("/x/a.mp4")), Path::new("/x/a.mp4.part"));
        assert_eq!(record_name("a"), "a.part.resume");
        assert!(is_leftover("a.part") && is_leftover("a.part.resume"));
        assert!(is_leftover(".meshfs-tmp-1-2") && !is_leftover("a.mp4"));
    }
}
