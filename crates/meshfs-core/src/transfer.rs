//! `Transfer`: download a remote file to disk so that a crash at any byte loses nothing.
//!
//! On disk, a download in progress is two files beside the destination:
//! - `DEST.part`: the bytes received so far, always a prefix of the remote file;
//! - `DEST.part.resume` ([`record`]): a small record naming the source and the remote size and
//!   mtime it was started against, written atomically (temporary file, then rename).
//!
//! Run again after a crash (even `kill -9`), the download continues at the end of `DEST.part`
//! if the record still matches the remote file, or the remote file only grew (a recording),
//! after comparing the last [`TAIL_CHECK`] bytes with the remote; otherwise it starts over.
//!
//! A file still being written is copied as it was when the download started: its length
//! then is the snapshot taken, and the node's `hash-prefix` of that length is what the copy
//! must match. With [`DownloadOptions::follow`] the download keeps fetching as the file grows
//! until the node reports it `closed` ([`follow`]).
//!
//! Verification: the node's `blocks` list of the snapshot (the chaining value of every 1 MiB
//! block, [`crate::blocks`]) is asked on a connection of its own as the bytes start to flow,
//! and the writer ([`writer`]) hashes what it writes block by block (the prefix kept from an
//! earlier run re-hashed from disk): each block is compared with the list as soon as both are
//! here. A block that differs stops the download at once and the `.part` is cut back to the
//! verified blocks before it ([`TransferError::BadBlock`]), so a lying or corrupt node is
//! caught at its first bad block. When every block matches, the file's BLAKE3 is the list's
//! root, and only then is `DEST.part` renamed to `DEST`. A followed file (its length known
//! only at the end) and a node older than `blocks` are checked by the whole file's BLAKE3 at
//! the end instead. When the bytes kept from an earlier run turn out not to match (the
//! remote rewritten in place, the `.part` damaged), the download starts over once by itself.
//! A dropped connection is retried with back-off, resuming ([`DownloadOptions::retries`]).
//!
//! Nothing is left behind that holds nothing: a download that fails before its first byte
//! (an unreadable file, say) removes its empty `.part` and record.
//!
//! Every file is reached by name inside the destination's folder held open ([`Dir`]), never
//! through a symlink, so a download into a share ([`download_into`] with a folder the share
//! resolved) stays in the folder that was judged; [`download`] opens the folder of a path of
//! the user's choosing.

mod follow;
mod multi;
mod record;
mod schedule;
mod writer;

pub use multi::{LANES, Source, SourceReport, SourceState, Sources, download_from};

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::blocks::{BlockHashes, block_range};
use crate::client::{Client, ClientError, Credentials};
use crate::dir::{self, Dir};
use crate::proto::Code;
use crate::remote::RemotePath;
use crate::share::Kind;
use follow::{Change, Watch};
use record::{BlockRecord, ResumeRecord};
use writer::{Check, Digest, Writer};

/// How many bytes at the end of an existing `.part` are compared with the remote before
/// resuming (a crash can leave a torn last write).
pub const TAIL_CHECK: u64 = 64 << 10;

/// While following, how long to wait for an event before looking at the file anyway.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// First wait before retrying a dropped connection; doubled each time up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Tuning and safety knobs of a download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Compare the BLAKE3 of the result with the node's (default on).
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
    /// A bandwidth cap shared with other downloads (replication's `--max-replication-rate`:
    /// every pull from every peer): each chunk received is charged to it before the next is
    /// asked for.
    pub limiter: crate::rate::Limiter,
    /// Longest wait for the node at any step; a node that stalls longer fails the download
    /// (the `.part` is kept for a resume). While following, also how long the file may stay
    /// unchanged and unclosed before the download ends with what it has.
    pub io_timeout: Duration,
    /// What to prove to the node on each connection the download opens.
    pub credentials: Credentials,
    /// Keep fetching as the file grows until the node reports it `closed`, instead of
    /// copying the length it had at the start.
    pub follow: bool,
    /// Refuse to replace an existing destination (`get` without `--force`; replication of a
    /// file missing here, which a local writer may create meanwhile): checked at the start and
    /// atomically at the final rename (`RENAME_NOREPLACE`; on a file system without it, a look
    /// just before the rename). Off by default: replication replaces files on purpose.
    pub no_clobber: bool,
    /// Times a dropped connection is retried (with back-off, resuming) before giving up.
    pub retries: u32,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            verify: true,
            sync: false,
            chunk: 4 << 20,
            window: 4,
            rate_limit: None,
            limiter: crate::rate::Limiter::unlimited(),
            io_timeout: crate::client::IO_TIMEOUT,
            credentials: Credentials::none(),
            follow: false,
            no_clobber: false,
            retries: 0,
        }
    }
}

/// Told about a download's progress (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    /// The remote size as known so far, and how much of it was already on disk from an
    /// earlier attempt. Called again when a followed file grows, or after a retry.
    fn start(&self, _total: u64, _already: u64) {}
    /// `n` more bytes arrived.
    fn advance(&self, _n: u64) {}
    /// The connection dropped (`error`); retry number `attempt` of `max` starts after `delay`.
    fn retry(&self, _error: &TransferError, _attempt: u32, _max: u32, _delay: Duration) {}
    /// A source of a multi-source download started, was not used, was lost or dropped.
    fn source(&self, _report: &SourceReport) {}
}

impl Progress for () {}

/// Why an earlier `.part` was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// The remote file is another version than the one the `.part` was started against.
    RemoteChanged,
    /// The bytes kept did not match the remote's (its tail, or the final hash): the remote was
    /// rewritten in place keeping its size and time, or the `.part` was damaged.
    PartMismatch,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::RemoteChanged => "the remote file changed since the last attempt",
            Restart::PartMismatch => {
                "the bytes kept from the last attempt did not match the remote file (rewritten \
                 in place, or the partial file damaged)"
            }
        })
    }
}

/// What a finished download copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The whole file, which did not change during the download.
    Complete,
    /// The file grew during the download (it is still being written): a verified copy of
    /// the length it had when the download started. `now` is its length at the end.
    Snapshot { now: u64 },
    /// Followed until the node reported the file closed by its writer.
    Closed,
    /// Followed until the file stayed unchanged, and not closed, for this long.
    Idle(Duration),
}

/// What a finished download did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Final size of the file.
    pub size: u64,
    /// Bytes that crossed the network in this run (those of an attempt that had to start over
    /// included), but for [`Outcome::duplicate`].
    pub received: u64,
    /// Bytes of blocks a multi-source download received twice (at the end, two sources
    /// racing for one block): the copy that came second, not used.
    pub duplicate: u64,
    /// Bytes reused from an earlier, interrupted run.
    pub resumed_from: u64,
    /// Set when an earlier `.part` had to be thrown away, and why.
    pub restarted: Option<Restart>,
    /// Dropped connections retried.
    pub retries: u32,
    pub ending: Ending,
    pub elapsed: Duration,
    /// The sources of a multi-source download ([`download_from`]) and what each brought;
    /// empty for a download from one node.
    pub sources: Vec<SourceReport>,
    /// The BLAKE3 (hex) of the file saved, which the node named and the copy was checked
    /// against; `None` without verification. Which version landed, known without reading the
    /// file again (replication compares it with the version it decided about).
    pub hash: Option<String>,
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
    #[error("{0} already exists: not replaced (use --force to replace it)")]
    Exists(PathBuf),
    #[error(
        "{0} shrank or was replaced during the transfer (fewer bytes than when it started); \
         the partial file is kept, run again to start over"
    )]
    Shrank(String),
    #[error(
        "{0} was deleted on the node while being followed; the bytes received are kept in the \
         partial file"
    )]
    Deleted(String),
    #[error("no source to download from")]
    NoSource,
    #[error(
        "no source left with {remaining} blocks to fetch ({sources}); the verified blocks are \
         kept in the partial file: run again, with other sources (--from) if these are gone"
    )]
    NoSourceLeft { remaining: u64, sources: String },
    #[error(
        "{node} sent block {block} (bytes {start}-{last}) of {path} unlike its own BLAKE3 of \
         it: the file changed on the node during the transfer, or the node's copy or the \
         connection is corrupt; the {start} verified bytes before it are kept in the partial \
         file (run again to resume)",
        last = .end - 1
    )]
    BadBlock {
        node: String,
        path: String,
        block: u64,
        start: u64,
        end: u64,
        /// Bytes of the copy that came from an earlier run (a bad block among them: worth one
        /// more try from the start).
        resumed_from: u64,
        /// Bytes this attempt received.
        received: u64,
    },
    #[error(
        "BLAKE3 mismatch (local {local}, remote {remote}): the remote file was rewritten \
         during the transfer; the partial file was removed, run again to start over"
    )]
    HashMismatch {
        local: String,
        remote: String,
        /// Bytes of the copy that came from an earlier run (then worth one more try).
        resumed_from: u64,
        /// Bytes this attempt received, now thrown away.
        received: u64,
    },
    #[error(
        "{path}: the file written (BLAKE3 {local}) does not match the BLAKE3 its blocks were \
         checked against ({blocks}): a block changed on this disk after it was checked (another \
         program writing the partial file, or the disk); the partial file was removed, run \
         again to start over"
    )]
    DiskMismatch {
        path: PathBuf,
        local: String,
        blocks: String,
    },
}

impl TransferError {
    /// True when the connection failed, not the request: a new connection may succeed.
    pub fn is_connection(&self) -> bool {
        matches!(self, TransferError::Remote(e) if e.is_connection())
    }

    /// When the failure proves the bytes kept from an earlier run wrong (the whole file's
    /// hash differs, or a block that begins among them), the bytes this attempt received.
    fn wasted_on_wrong_kept_bytes(&self) -> Option<u64> {
        match *self {
            TransferError::HashMismatch {
                resumed_from,
                received,
                ..
            } if resumed_from > 0 => Some(received),
            TransferError::BadBlock {
                start,
                resumed_from,
                received,
                ..
            } if start < resumed_from => Some(received),
            _ => None,
        }
    }
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
/// resolved beneath its root: [`crate::Share::parent_dir_creating`]).
///
/// Retries a dropped connection up to [`DownloadOptions::retries`] times, resuming; starts
/// over once by itself when the bytes kept from an earlier run prove wrong. A failure is
/// counted in [`transfer_errors_total`](crate::metrics::Metrics::transfer_errors_total).
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
    let (mut retries, mut delay, mut resume, mut restarted) = (0, MIN_BACKOFF, true, None);
    // Bytes received by attempts whose copy proved wrong: they crossed the network too.
    let mut wasted = 0;
    loop {
        let res = attempt(src, dir, name, opts, progress, resume).await;
        if res.is_err() {
            discard_if_empty(dir, name);
        }
        match res {
            Ok(mut outcome) => {
                outcome.restarted = restarted.or(outcome.restarted);
                outcome.received += wasted;
                outcome.retries = retries;
                outcome.elapsed = started.elapsed();
                return Ok(outcome);
            }
            // The bytes kept from an earlier run were wrong (the whole file's hash, or a block
            // that begins among them): the new ones may be right, start over once.
            Err(e) if e.wasted_on_wrong_kept_bytes().is_some() => {
                wasted += e.wasted_on_wrong_kept_bytes().unwrap_or(0);
                tracing::info!(%src, "the bytes kept from the last attempt did not match: starting over");
                (resume, restarted) = (false, Some(Restart::PartMismatch));
            }
            Err(e) if e.is_connection() && retries < opts.retries => {
                retries += 1;
                // The attempt that failed wrote a fresh `.part`: continuing it is safe.
                resume = true;
                progress.retry(&e, retries, opts.retries, delay);
                tracing::info!(%src, error = %e, attempt = retries, "connection lost: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A failed download that holds no byte leaves nothing behind (an unreadable file, a node
/// that died before sending anything).
fn discard_if_empty(dir: &Dir, name: &str) {
    let part = part_name(name);
    if dir
        .stat(&part, false)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0)
    {
        discard_partial(dir, name);
    }
}

/// One connection's try at the download: continue the `.part` if `resume` allows and it
/// still matches, fetch the rest, verify, rename into place.
async fn attempt(
    src: &RemotePath,
    dir: &Dir,
    name: &str,
    opts: &DownloadOptions,
    progress: &dyn Progress,
    resume: bool,
) -> Result<Outcome, TransferError> {
    if opts.no_clobber && dir.exists(name).map_err(local(&dir.display_path(name)))? {
        return Err(TransferError::Exists(dir.display_path(name)));
    }
    // Subscribe before the first look at the file, so its `closed` cannot slip by.
    let mut watch = match opts.follow {
        true => Some(Watch::start(src, &opts.credentials).await?),
        false => None,
    };
    let mut client = Client::connect_with(&src.addr, &opts.credentials).await?;
    client.set_timeout(opts.io_timeout);
    let entry = client.stat(&src.path).await?;
    if entry.kind == Kind::Dir {
        return Err(TransferError::IsDir(src.to_string()));
    }
    // Opened before anything is created here: a file the node will not serve leaves nothing.
    client.open(&src.path).await?;
    // The bytes flow on this connection: its TLS records are opened here from now on, in large
    // reads and in place (`tls::records`: the client's core is what limits a verified get).
    let mut client = client.hand_over_records().await?;
    let snapshot = entry.size;
    // Ask for the block list at once, on its own connection, so the node computes it while
    // the bytes flow. A followed file's length is only known at the end.
    let expected = Arc::new(OnceLock::new());
    let (check, mut remote) = match opts.verify {
        false => (Check::Off, None),
        // A followed file's hash is asked at the end, of its final length; a file too large
        // for a block list has its hash asked now, so the node reads it while the bytes flow.
        true if opts.follow => (Check::Whole, None),
        true if crate::blocks::BlockHasher::new(snapshot).is_err() => {
            (Check::Whole, Some(spawn_remote_hash(src, opts, snapshot)))
        }
        true => (
            Check::Blocks {
                size: snapshot,
                expected: expected.clone(),
            },
            Some(spawn_block_list(src, opts, snapshot, expected)),
        ),
    };

    let part_file = part_name(name);
    let record_file = record_name(name);
    let part = dir.display_path(&part_file);
    let record = ResumeRecord {
        source: src.to_string(),
        size: entry.size,
        mtime_ns: entry.mtime_ns,
    };
    let mut offset = 0;
    let mut restarted = None;
    let on_disk = dir
        .stat(&part_file, false)
        .ok()
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .map(|st| st.st_size as u64);
    if let Some(mut len) = on_disk {
        let earlier = match ResumeRecord::load(dir, &record_file) {
            Some(earlier) => Some(earlier),
            None => match BlockRecord::load(dir, &record_file) {
                // A multi-source `.part` (verified blocks anywhere, say before `--follow` or
                // a node without `blocks`) goes on from its verified blocks at the start, the
                // rest cut off; the tail check and the final hash prove them.
                Some(blocks) if blocks.size <= entry.size => {
                    let first_missing = blocks.done.iter().take_while(|&&d| d).count() as u64;
                    keep_blocks_before(dir, &part_file, first_missing)?;
                    len = len.min(first_missing * crate::blocks::BLOCK_LEN);
                    Some(record.clone())
                }
                _ => None,
            },
        };
        if !earlier.as_ref().is_some_and(|e| record.continues(e)) || len > entry.size {
            restarted = Some(Restart::RemoteChanged);
        } else if !resume || !tail_matches(&mut client, &src.path, dir, &part_file, len).await? {
            restarted = Some(Restart::PartMismatch);
        } else {
            offset = len;
        }
        if let Some(why) = restarted {
            tracing::info!(part = %part.display(), "{why}: starting over");
        }
    }
    let file = if offset == 0 {
        dir.create_fresh(&part_file).map_err(local(&part))?
    } else {
        dir.open_file(&part_file, libc::O_RDWR)
            .map_err(local(&part))?
    };
    // The record now names the version this `.part` continues.
    record
        .store(dir, &record_file)
        .map_err(local(&dir.display_path(&record_file)))?;
    progress.start(entry.size, offset);

    let writer = Writer::spawn(file, &part, offset, check, opts.sync, opts.window)?;
    let mut pace = Pace::new(opts.rate_limit, opts.limiter.clone());
    let mut fetch = Fetch {
        client: &mut client,
        path: &src.path,
        opts,
        writer: &writer,
        progress,
        pace: &mut pace,
    };
    let mut received = fetch.range(offset, snapshot).await;
    let mut ending = Ending::Complete;
    if let (Ok(got), Some(watch)) = (&received, watch.as_mut()) {
        received = fetch.follow(watch, snapshot).await.map(|(more, end)| {
            ending = end;
            got + more
        });
    }
    // A failed write (disk full, say) or a bad block is the root cause of a stopped stream:
    // report it first.
    let (digest, size) = writer.finish()?;
    let bad_block = |block| {
        keep_blocks_before(dir, &part_file, block)?;
        let (start, end) = block_range(snapshot, block);
        Err(TransferError::BadBlock {
            node: src.addr.clone(),
            path: src.path.clone(),
            block,
            start,
            end,
            resumed_from: offset,
            received: pace.received,
        })
    };
    if let Digest::Mismatch(block) = digest {
        return bad_block(block);
    }
    let received = received?;

    // Ours: the BLAKE3 of what was written, and its block list when it was hashed by block.
    let ours = match digest {
        Digest::Off => None,
        Digest::Mismatch(_) => unreachable!("a bad block ended the download above"),
        // Fewer bytes than the snapshot were hashed, though every one arrived: never kept.
        Digest::Incomplete => return Err(TransferError::Shrank(src.path.clone())),
        Digest::Whole(hash) => Some((hash, None)),
        Digest::Blocks(list) => Some((list.root(), Some(list))),
    };
    let verified = match ours {
        None => None,
        Some((hash, list)) => {
            let task = remote
                .take()
                .unwrap_or_else(|| spawn_remote_hash(src, opts, size));
            let theirs = match joined(task, &part).await? {
                Expected::Hash(theirs) => theirs,
                Expected::Blocks(expected) => {
                    // The blocks the writer had no list for yet: 32 bytes compared per block.
                    let differs = list
                        .as_ref()
                        .and_then(|ours| expected.first_difference(ours.as_bytes(), 0));
                    if let Some(block) = differs {
                        return bad_block(block);
                    }
                    expected.root().to_hex().to_string()
                }
            };
            Some((hash, theirs))
        }
    };
    let hash = verified.as_ref().map(|(_, theirs)| theirs.clone());
    put_in_place(dir, name, opts, verified, offset, received)?;
    if ending == Ending::Complete {
        // Did the file grow (or change) while it was copied? Then what was saved is a
        // snapshot, and the user is told so.
        let now = client.stat(&src.path).await?;
        if (now.size, now.mtime_ns) != (entry.size, entry.mtime_ns) {
            ending = Ending::Snapshot { now: now.size };
        }
    }
    let _ = client.quit().await;
    Ok(Outcome {
        size,
        received,
        duplicate: 0,
        resumed_from: offset,
        restarted,
        retries: 0,
        ending,
        elapsed: Duration::ZERO,
        sources: Vec::new(),
        hash,
    })
}

/// The end of every download: the BLAKE3 of what was written must be the node's
/// (`verified`: both, when verifying), else the partial file is removed; then `.part` becomes
/// `name` (unless it must not be replaced and appeared meanwhile) and its record goes.
fn put_in_place(
    dir: &Dir,
    name: &str,
    opts: &DownloadOptions,
    verified: Option<(blake3::Hash, String)>,
    resumed_from: u64,
    received: u64,
) -> Result<(), TransferError> {
    if let Some((local, remote)) = verified
        && local.to_hex().as_str() != remote
    {
        discard_partial(dir, name);
        return Err(TransferError::HashMismatch {
            local: local.to_hex().to_string(),
            remote,
            resumed_from,
            received,
        });
    }
    // Without `no_clobber` the copy replaces what is there; with it, a file that appeared
    // during the download is kept (and said), never replaced.
    let renamed = if opts.no_clobber {
        dir.rename_new(&part_name(name), dir, name)
    } else {
        dir.rename(&part_name(name), dir, name)
    };
    match renamed {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(TransferError::Exists(dir.display_path(name)));
        }
        other => other.map_err(local(&dir.display_path(name)))?,
    }
    let _ = dir.remove_file(&record_name(name));
    Ok(())
}

/// What the node says the bytes of a download must be.
enum Expected {
    /// The chaining values of the snapshot's blocks (its root: the snapshot's BLAKE3).
    Blocks(BlockHashes),
    /// The BLAKE3 of the file's first bytes, in hex (a followed file, or a node older than
    /// `blocks`).
    Hash(String),
}

type ExpectedTask = tokio::task::JoinHandle<Result<Expected, ClientError>>;

/// The node's block list of the first `len` bytes of `src`, asked on a connection of its
/// own; handed to the writer (`expected`) as soon as it is here. A node older than `blocks`
/// is asked for its hash of those bytes instead.
fn spawn_block_list(
    src: &RemotePath,
    opts: &DownloadOptions,
    len: u64,
    expected: Arc<OnceLock<BlockHashes>>,
) -> ExpectedTask {
    let (src, opts) = (src.clone(), opts.clone());
    tokio::spawn(async move {
        let mut client = hashing_client(&src, &opts).await?;
        match client.blocks(&src.path, len).await {
            Ok(list) => {
                let _ = expected.set(list.clone());
                Ok(Expected::Blocks(list))
            }
            Err(e) if is_unknown_command(&e) => prefix_hash(&mut client, &src.path, len)
                .await
                .map(Expected::Hash),
            Err(e) => Err(e),
        }
    })
}

/// The node's BLAKE3 of the first `len` bytes of `src`, asked on a connection of its own.
fn spawn_remote_hash(src: &RemotePath, opts: &DownloadOptions, len: u64) -> ExpectedTask {
    let (src, opts) = (src.clone(), opts.clone());
    tokio::spawn(async move {
        let mut client = hashing_client(&src, &opts).await?;
        prefix_hash(&mut client, &src.path, len)
            .await
            .map(Expected::Hash)
    })
}

/// A connection to ask the node for hashes on: hashing a large file takes the node a while,
/// so it is allowed at least the default timeout.
async fn hashing_client(src: &RemotePath, opts: &DownloadOptions) -> Result<Client, ClientError> {
    let mut client = Client::connect_with(&src.addr, &opts.credentials).await?;
    client.set_timeout(opts.io_timeout.max(crate::client::IO_TIMEOUT));
    Ok(client)
}

/// What the task fetching [`Expected`] brought.
async fn joined(task: ExpectedTask, part: &Path) -> Result<Expected, TransferError> {
    let expected = task
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .map_err(local(part))??;
    Ok(expected)
}

/// Cut `.part` back to the blocks before `block` (all verified): nothing past a bad block is
/// kept, and a run again resumes there.
fn keep_blocks_before(dir: &Dir, part_file: &str, block: u64) -> Result<(), TransferError> {
    let keep = block * crate::blocks::BLOCK_LEN;
    dir.open_file(part_file, libc::O_WRONLY)
        .and_then(|f| {
            if f.metadata()?.len() > keep {
                f.set_len(keep)?;
            }
            Ok(())
        })
        .map_err(local(&dir.display_path(part_file)))
}

/// A node's answer that it does not know the request (one older than it).
fn is_unknown_command(e: &ClientError) -> bool {
    matches!(e, ClientError::Remote { code, message }
        if Code::from_u8(*code) == Some(Code::BadRequest) && message.contains("unknown command"))
}

/// The node's BLAKE3 of the first `len` bytes of `path`. A node older than `hash-prefix` is
/// asked for the whole file's hash instead.
async fn prefix_hash(client: &mut Client, path: &str, len: u64) -> Result<String, ClientError> {
    match client.hash_prefix(path, len).await {
        Err(e) if is_unknown_command(&e) => client.hash(path).await,
        other => other,
    }
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

/// Keeps the received bytes under the rate limit, across every range of one attempt.
struct Pace {
    rate: Option<u64>,
    started: Instant,
    received: u64,
    shared: crate::rate::Limiter,
}

impl Pace {
    fn new(rate: Option<u64>, shared: crate::rate::Limiter) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
            received: 0,
            shared,
        }
    }

    async fn account(&mut self, n: u64) {
        self.shared.take(n).await;
        self.received += n;
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.received as f64 / rate.max(1) as f64);
            tokio::time::sleep_until((self.started + due).into()).await;
        }
    }
}

/// The open remote file and where its bytes go.
struct Fetch<'a> {
    client: &'a mut Client,
    path: &'a str,
    opts: &'a DownloadOptions,
    writer: &'a Writer,
    progress: &'a dyn Progress,
    pace: &'a mut Pace,
}

impl Fetch<'_> {
    /// Pipeline `read` requests for the bytes `from..to` of the open file (positioned at
    /// `from`), handing them to the writer. Asks for no byte past `to`: a file still being
    /// written is copied as it was. Fails if the file ends before `to`.
    async fn range(&mut self, from: u64, to: u64) -> Result<u64, TransferError> {
        if from > 0 {
            self.client.seek(from).await?;
        }
        // Under a rate limit, ask for small chunks one at a time so the pace is smooth.
        let limit = match (self.opts.rate_limit, self.opts.limiter.rate()) {
            (Some(own), Some(shared)) => Some(own.min(shared)),
            (own, shared) => own.or(shared),
        };
        let (chunk, window) = match limit {
            Some(rate) => ((rate / 8).clamp(4096, self.opts.chunk), 1),
            None => (self.opts.chunk, self.opts.window.max(1)),
        };
        // Sizes asked and not yet answered; `asked` is where the next request starts.
        let mut in_flight = VecDeque::with_capacity(window);
        let (mut asked, mut pos) = (from, from);
        while pos < to {
            while asked < to && in_flight.len() < window {
                let n = chunk.min(to - asked);
                self.client.send(&format!("read {n}"));
                in_flight.push_back(n);
                asked += n;
            }
            let want = in_flight.pop_front().unwrap_or(chunk);
            let n = self.client.data_header(want).await?;
            // A short reply moves every later request back by what it lacked.
            asked -= want - n;
            if n == 0 {
                // The end of the file came before `to`: drain the replies still coming.
                while let Some(want) = in_flight.pop_front() {
                    let n = self.client.data_header(want).await?;
                    let mut sink = Vec::new();
                    self.client.payload_into(n, &mut sink).await?;
                }
                return Err(TransferError::Shrank(self.path.to_owned()));
            }
            let mut buf = self.writer.buffer(chunk as usize);
            self.client.payload_into(n, &mut buf).await?;
            pos += n;
            self.progress.advance(n);
            self.writer.write(buf).await?;
            self.pace.account(n).await;
        }
        Ok(pos - from)
    }

    /// Keep fetching from `pos` as the file grows, until the node reports it closed or it
    /// stays unchanged for [`DownloadOptions::io_timeout`]. The bytes received, and how it
    /// ended.
    async fn follow(
        &mut self,
        watch: &mut Watch,
        mut pos: u64,
    ) -> Result<(u64, Ending), TransferError> {
        let start = pos;
        let idle_limit = self.opts.io_timeout;
        let mut last_growth = Instant::now();
        loop {
            let change = watch.next(FOLLOW_POLL).await?;
            if change == Some(Change::Deleted) {
                return Err(TransferError::Deleted(self.path.to_owned()));
            }
            let size = self.client.stat(self.path).await?.size;
            if size < pos {
                return Err(TransferError::Shrank(self.path.to_owned()));
            }
            if size > pos {
                self.progress.start(size, pos);
                pos += self.range(pos, size).await?;
                last_growth = Instant::now();
            }
            if change == Some(Change::Closed) {
                return Ok((pos - start, Ending::Closed));
            }
            if last_growth.elapsed() >= idle_limit {
                return Ok((pos - start, Ending::Idle(idle_limit)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(part_path(Path::new("/x/a.mp4")), Path::new("/x/a.mp4.part"));
        assert_eq!(record_name("a"), "a.part.resume");
        assert!(is_leftover("a.part") && is_leftover("a.part.resume"));
        assert!(is_leftover(".meshfs-tmp-1-2") && !is_leftover("a.mp4"));
    }
}
