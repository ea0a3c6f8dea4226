//! Multi-source download: the 1 MiB blocks of one file version fetched from every node that
//! holds it, in parallel, each block checked as it arrives ([`crate::blocks`]).
//!
//! - **Identity.** The first source's BLAKE3 of the file (its first `size` bytes: its block
//!   list merged, so that node reads the file once) names the version (the next one's if it
//!   cannot be reached). Another source is only asked `stat` (it must hold at least `size`
//!   bytes), never its hash: that would make it read the whole file before its first block,
//!   minutes for a big recording on a Pi. Its first block proves it instead: one that does
//!   not match that block's value means it holds another version, and it is left out.
//! - **Work stealing.** Each source runs [`LANES`] requests at once, each taking the lowest
//!   block no one fetches when it finishes one ([`Schedule`]), so a fast source takes more
//!   blocks; at the end an idle source also asks for a block a slower one still holds, and the
//!   first verified copy wins.
//! - **Sources come and go.** A source whose connection fails gives its block back to the
//!   queue and the others finish (it is "lost"); one whose block does not match its value,
//!   after blocks of it that did, is "dropped" at once, named with the block and its bytes;
//!   neither a dropped source nor one of another version is asked again in this run. Sources
//!   found during the download (a node announced on the group) are used, in later attempts
//!   of the run too.
//! - **Duplicates.** At the end a block may come twice (two sources race for it): the second
//!   copy is counted apart ([`Outcome::duplicate`]), and every byte received, first copy or
//!   not, is charged to the rate limits.
//! - **Crash safety.** Blocks are written where they belong in `DEST.part` (sized to the file
//!   at the start); the record ([`BlockRecord`]) lists the verified blocks, with the file's
//!   BLAKE3 and size but no source, so a resume may use any sources. A resume checks every
//!   block the record names again from disk (a crash may have lost a write the record
//!   already named). Before the rename the whole file is hashed once more from disk. Between
//!   attempts, every write still under way is waited for (a lane's write finishing after its
//!   task was aborted would land in the next attempt's `.part`).

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::record::BlockRecord;
use super::schedule::Schedule;
use super::{
    DownloadOptions, Ending, Outcome, Pace, Progress, Restart, TransferError, local, part_name,
    put_in_place, record_name,
};
use crate::blocks::{BlockHashes, block_range};
use crate::client::{ClientError, Credentials};
use crate::dir::Dir;
use crate::pool::{Pool, PoolConfig};
use crate::proto::Code;
use crate::remote::RemotePath;

/// Requests each source has in flight (each on a connection of its own).
pub const LANES: usize = 4;

/// Least time between two writes of the resume record (a crash loses at most this much).
const RECORD_EVERY: Duration = Duration::from_millis(250);

/// A node to fetch from, and what to prove to it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: RemotePath,
    pub credentials: Credentials,
}

/// What became of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Fetching, or done: every block it sent was verified.
    Used,
    /// Sent block `block` (bytes `start..end`) that did not match the file's BLAKE3.
    Dropped { block: u64, start: u64, end: u64 },
    /// Failed after the blocks it brought (connection lost, timed out, file changed).
    Lost(String),
    /// Never used: it holds another version of the file (why it is known: its size, or its
    /// first block not matching).
    OtherVersion(String),
    /// Never used: not reachable, no such file, …
    NotUsed(String),
}

/// One source of a multi-source download, and its share of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// The node, as `host:port`.
    pub source: String,
    /// Bytes of verified blocks it brought first (its share of the file).
    pub bytes: u64,
    pub state: SourceState,
}

impl std::fmt::Display for SourceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.source;
        match &self.state {
            SourceState::Used => write!(f, "using {s}"),
            SourceState::Dropped { block, start, end } => write!(
                f,
                "dropped {s}: block {block} (bytes {start}-{}) does not match the file's BLAKE3",
                end - 1
            ),
            SourceState::Lost(why) => write!(f, "lost {s} after {} bytes: {why}", self.bytes),
            SourceState::OtherVersion(why) => write!(
                f,
                "not using {s}: it holds another version of the file ({why})"
            ),
            SourceState::NotUsed(why) => write!(f, "not using {s}: {why}"),
        }
    }
}

/// What a download from several sources starts with, besides the options.
pub struct Sources {
    /// The first is the one whose BLAKE3 names the version.
    pub known: Vec<Source>,
    /// Sources found while the download runs (`None`: no more will come).
    pub more: Option<mpsc::UnboundedReceiver<Source>>,
}

/// Download `sources` to `dest`: from all of them at once when the first node serves
/// `blocks` and there is more than one source (or a multi-source `.part` to continue);
/// otherwise exactly as [`super::download`] does (the sequential path, also for `--follow`).
pub async fn download_from(
    mut sources: Sources,
    dest: &Path,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Outcome, TransferError> {
    let (dir, name) = Dir::open_parent(dest).map_err(local(dest))?;
    let Some(first) = sources.known.first().cloned() else {
        return Err(TransferError::NoSource);
    };
    let single = |source: &Source| DownloadOptions {
        credentials: source.credentials.clone(),
        ..opts.clone()
    };
    let multi = !opts.follow
        && (sources.known.len() > 1
            || sources.more.is_some()
            || BlockRecord::load(&dir, &record_name(&name)).is_some());
    if !multi {
        return super::download_into(&first.path, &dir, &name, &single(&first), progress).await;
    }
    let mut run = Run::default();
    let started = Instant::now();
    let (mut retries, mut delay) = (0, super::MIN_BACKOFF);
    let result = loop {
        match attempt(&mut run, &mut sources, &dir, &name, opts, progress).await {
            Ok(Tried::Done(mut outcome)) => {
                outcome.retries = retries;
                outcome.elapsed = started.elapsed();
                break Ok(outcome);
            }
            Ok(Tried::Single(source, why)) => {
                tracing::info!(node = %source.path.addr, "{why}: downloading from it alone");
                return super::download_into(&source.path, &dir, &name, &single(&source), progress)
                    .await;
            }
            Err(e) if e.is_connection() && retries < opts.retries => {
                retries += 1;
                progress.retry(&e, retries, opts.retries, delay);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(super::MAX_BACKOFF);
            }
            Err(e) => break Err(e),
        }
    };
    if result.is_err() {
        super::discard_if_empty(&dir, &name);
        crate::metrics::metrics().transfer_errors_total.inc();
    }
    result
}

/// How an attempt ended, when it did not fail.
enum Tried {
    Done(Outcome),
    /// The source that names the version cannot list its blocks (why): it alone is used.
    Single(Source, &'static str),
}

/// What lasts across attempts of one run.
#[derive(Default)]
struct Run {
    /// Sources that sent a bad block or hold another version: never asked again, and
    /// reported at the end.
    left_out: Vec<SourceReport>,
    /// Bytes received by the attempts of this run so far ([`Outcome::received`]).
    received: u64,
    /// The same for [`Outcome::duplicate`].
    duplicate: u64,
}

impl Run {
    fn is_left_out(&self, addr: &str) -> bool {
        self.left_out.iter().any(|r| r.source == addr)
    }
}

/// The pool a download uses for one source: a connection per lane, the download's timeout.
fn pool_for(source: &Source, opts: &DownloadOptions) -> Pool {
    let config = PoolConfig {
        request_timeout: opts.io_timeout,
        max_connections: LANES,
        max_idle: LANES,
        ..PoolConfig::default()
    };
    Pool::with_credentials(source.path.addr.clone(), config, source.credentials.clone())
}

/// One try with every source at hand (those found by an earlier attempt too).
async fn attempt(
    run: &mut Run,
    sources: &mut Sources,
    dir: &Dir,
    name: &str,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Tried, TransferError> {
    if opts.no_clobber && dir.exists(name).map_err(local(&dir.display_path(name)))? {
        return Err(TransferError::Exists(dir.display_path(name)));
    }
    let (i, version) = identify(&sources.known, run, opts).await?;
    let first = sources.known[i].clone();
    let Version {
        pool,
        entry,
        hash,
        list,
    } = match version {
        Named::Version(v) => v,
        Named::Single(why) => return Ok(Tried::Single(first, why)),
    };
    let path = first.path.path.clone();
    let size = entry.size;
    let list = Arc::new(list);

    let part_file = part_name(name);
    let record_file = record_name(name);
    let part = dir.display_path(&part_file);
    let (file, done, restarted) = open_part(dir, &part_file, &record_file, &list, &hash).await?;
    let resumed_from = bytes_of(&list, &done);
    let mut record = BlockRecord {
        blake3: hash.clone(),
        size,
        done,
    };
    record
        .store(dir, &record_file)
        .map_err(local(&dir.display_path(&record_file)))?;
    progress.start(size, resumed_from);

    let (tx, mut events) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        path: path.clone(),
        list: list.clone(),
        file: Arc::new(file),
        schedule: Mutex::new(Schedule::new(record.done.clone())),
        wake: Notify::new(),
        sources: Mutex::new(Vec::new()),
        received: AtomicU64::new(0),
        duplicate: AtomicU64::new(0),
        writes: Arc::new(tokio::sync::RwLock::new(())),
        pace: tokio::sync::Mutex::new(Pace::new(opts.rate_limit, opts.limiter.clone())),
        events: tx,
        last_connection_error: Mutex::new(None),
    });
    let mut tasks = JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    seen.insert(first.path.addr.clone());
    shared.start_lanes(&mut tasks, &first.path.addr, pool, true);
    for source in sources.known.iter().cloned() {
        consider(&mut tasks, &mut seen, run, source, size, opts);
    }

    let mut last_store = Instant::now();
    let mut local_error = None;
    while shared.remaining() > 0 && local_error.is_none() {
        // Nothing runs and no source may come: what is left cannot be fetched.
        if tasks.is_empty() && sources.more.is_none() {
            break;
        }
        tokio::select! {
            Some(event) = events.recv() => match event {
                Event::Block(n) => {
                    progress.advance(n);
                    if last_store.elapsed() >= RECORD_EVERY {
                        record.done = shared.schedule().done().to_vec();
                        // An error ends the loop like any local one: the lanes are stopped and
                        // their writes waited for below.
                        match record.store(dir, &record_file) {
                            Ok(()) => last_store = Instant::now(),
                            Err(e) => local_error = Some(e),
                        }
                    }
                }
                Event::Source(report) => progress.source(&report),
                Event::LocalError(e) => local_error = Some(e),
            },
            Some(source) = next_source(&mut sources.more) => {
                // Kept for the next attempt, if one is needed.
                if !sources.known.iter().any(|s| s.path.addr == source.path.addr) {
                    sources.known.push(source.clone());
                }
                consider(&mut tasks, &mut seen, run, source, size, opts);
            }
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => match ended {
                Ok(Checked::Accepted(addr, pool)) => shared.start_lanes(&mut tasks, &addr, pool, false),
                Ok(Checked::Refused(report)) => progress.source(&report),
                _ => {}
            },
            // Every source is gone: wait as long as for a stalled node for one to appear.
            () = tokio::time::sleep(opts.io_timeout), if tasks.is_empty() => break,
        }
    }
    tasks.abort_all();
    // Every lane is gone: reports and the schedule are final.
    while tasks.join_next().await.is_some() {}
    // A lane aborted while its block was being written left that write running on its
    // blocking thread: it ends before anything else touches `.part` (the final hash, or the
    // next attempt's `.part`, which may be this one truncated).
    drop(shared.writes.write().await);
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Block(n) => progress.advance(n),
            Event::Source(report) => progress.source(&report),
            Event::LocalError(e) => local_error = local_error.or(Some(e)),
        }
    }
    record.done = shared.schedule().done().to_vec();
    let _ = record.store(dir, &record_file);
    // Counted now, whatever ends the attempt: a retry's bytes crossed the network too.
    let received = shared.received.load(Ordering::Relaxed);
    let duplicate = shared.duplicate.load(Ordering::Relaxed);
    run.received += received;
    run.duplicate += duplicate;
    let reports = shared.reports();
    for report in &reports {
        if matches!(
            report.state,
            SourceState::Dropped { .. } | SourceState::OtherVersion(_)
        ) && !run.is_left_out(&report.source)
        {
            run.left_out.push(report.clone());
        }
    }
    if let Some(e) = local_error {
        return Err(TransferError::Local {
            path: part,
            source: e,
        });
    }
    let remaining = shared.remaining();
    if remaining > 0 {
        if let Some(e) = shared
            .last_connection_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(TransferError::Remote(e));
        }
        return Err(TransferError::NoSourceLeft {
            remaining,
            sources: reports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }

    let file = shared.file.clone();
    let sync = opts.sync;
    let verify = opts.verify;
    let local_hash =
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<blake3::Hash>> {
            if sync {
                file.sync_data()?;
            }
            if !verify {
                return Ok(None);
            }
            let mut hasher = blake3::Hasher::new();
            super::writer::hash_prefix(&file, size, &mut hasher)?;
            Ok(Some(hasher.finalize()))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(local(&part))?;
    if let Some(local) = local_hash
        && local.to_hex().as_str() != hash
    {
        // Every block matched as it arrived: what changed is the copy on disk.
        super::discard_partial(dir, name);
        return Err(TransferError::DiskMismatch {
            path: part,
            local: local.to_hex().to_string(),
            blocks: hash,
        });
    }
    put_in_place(dir, name, opts, None, resumed_from, received)?;
    let mut ending = Ending::Complete;
    let first_pool = pool_for(&first, opts);
    if let Ok(now) = first_pool.stat(&path).await
        && (now.size, now.mtime_ns) != (entry.size, entry.mtime_ns)
    {
        ending = Ending::Snapshot { now: now.size };
    }
    // Sources left out by an earlier attempt of this run are named too.
    let earlier: Vec<SourceReport> = run
        .left_out
        .iter()
        .filter(|d| !reports.iter().any(|r| r.source == d.source))
        .cloned()
        .collect();
    let mut sources_report = reports;
    sources_report.extend(earlier);
    Ok(Tried::Done(Outcome {
        size,
        received: run.received,
        duplicate: run.duplicate,
        resumed_from,
        restarted,
        retries: 0,
        ending,
        elapsed: Duration::ZERO,
        sources: sources_report,
        hash: verify.then_some(hash),
    }))
}

/// What the source that names the version says of it.
struct Version {
    pool: Pool,
    entry: crate::share::Entry,
    /// Its BLAKE3 of the file's `entry.size` bytes: its block list merged.
    hash: String,
    list: BlockHashes,
}

/// What the first source that answers says of the version.
enum Named {
    Version(Version),
    /// It cannot list the file's blocks (why): the download is its alone.
    Single(&'static str),
}

/// The first source that answers names the version the others are judged against; one that
/// cannot be reached is passed over (so a retry after the first node died goes on with the
/// others), and so is one an earlier attempt left out (it sent a bad block). With its index.
async fn identify(
    known: &[Source],
    run: &Run,
    opts: &DownloadOptions,
) -> Result<(usize, Named), TransferError> {
    let candidates: Vec<usize> = (0..known.len())
        .filter(|&i| !run.is_left_out(&known[i].path.addr))
        .collect();
    for (n, &i) in candidates.iter().enumerate() {
        let source = &known[i];
        match version_of(source, opts).await {
            Err(e) if e.is_connection() && n + 1 < candidates.len() => {
                tracing::info!(node = %source.path.addr, error = %e, "not reached: the next source names the version");
            }
            other => return other.map(|v| (i, v)),
        }
    }
    Err(TransferError::NoSource)
}

async fn version_of(source: &Source, opts: &DownloadOptions) -> Result<Named, TransferError> {
    let path = source.path.path.clone();
    let pool = pool_for(source, opts);
    let entry = pool.stat(&path).await?;
    if entry.kind == crate::share::Kind::Dir {
        return Err(TransferError::IsDir(source.path.to_string()));
    }
    let size = entry.size;
    if !crate::blocks::fits(size) {
        return Ok(Named::Single("the file is too large to check by block"));
    }
    // Waited for as long as the node may need to read the file (`Client::blocks`).
    let list = match pool.run(async move |c| c.blocks(&path, size).await).await {
        Err(ClientError::Remote { code, message })
            if Code::from_u8(code) == Some(Code::BadRequest) && message == "unknown command" =>
        {
            return Ok(Named::Single("the node does not serve `blocks`"));
        }
        other => other?,
    };
    // The list merged is the node's BLAKE3 of the file: asking its `hash` too would only cost
    // the node another read, and prove nothing more.
    let hash = list.root().to_hex().to_string();
    Ok(Named::Version(Version {
        pool,
        entry,
        hash,
        list,
    }))
}

/// The next source found while downloading, or never when none can come.
async fn next_source(more: &mut Option<mpsc::UnboundedReceiver<Source>>) -> Option<Source> {
    match more {
        Some(rx) => match rx.recv().await {
            Some(source) => Some(source),
            None => {
                *more = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Look at a candidate source (unless already known or left out) on a task of its own: it
/// must hold a file of at least `size` bytes (a recording may have grown since). Whether it
/// is the same version, its first block tells ([`Shared::lane`]).
fn consider(
    tasks: &mut JoinSet<Checked>,
    seen: &mut HashSet<String>,
    run: &Run,
    source: Source,
    size: u64,
    opts: &DownloadOptions,
) {
    let addr = source.path.addr.clone();
    if run.is_left_out(&addr) || !seen.insert(addr.clone()) {
        return;
    }
    let pool = pool_for(&source, opts);
    let path = source.path.path.clone();
    tasks.spawn(async move {
        let state = match pool.stat(&path).await {
            Ok(entry) if entry.kind == crate::share::Kind::Dir => {
                SourceState::NotUsed("a folder there, not a file".to_owned())
            }
            Ok(entry) if entry.size < size => SourceState::OtherVersion(format!(
                "{} bytes, fewer than the {size} downloaded",
                entry.size
            )),
            Ok(_) => return Checked::Accepted(addr, pool),
            Err(e) => SourceState::NotUsed(e.to_string()),
        };
        Checked::Refused(SourceReport {
            source: addr,
            bytes: 0,
            state,
        })
    });
}

/// How a task of the download ended.
enum Checked {
    /// A candidate holds the same version: its lanes start.
    Accepted(String, Pool),
    Refused(SourceReport),
    /// A lane ended (its source is lost or dropped, or nothing is left).
    LaneEnded,
}

/// What lanes tell the download's own task (which alone may touch the progress and the
/// record).
enum Event {
    /// A block of `n` bytes was verified and written (the first copy of it).
    Block(u64),
    Source(SourceReport),
    /// Writing `.part` failed: the whole download stops.
    LocalError(std::io::Error),
}

/// What every lane of one attempt shares.
struct Shared {
    path: String,
    list: Arc<BlockHashes>,
    file: Arc<File>,
    schedule: Mutex<Schedule>,
    /// Woken whenever a block is done or given back: idle lanes look for work again.
    wake: Notify,
    /// One report per source started, by lane id.
    sources: Mutex<Vec<Started>>,
    /// Payload bytes received by every lane (bad blocks too), but for [`Shared::duplicate`].
    received: AtomicU64,
    /// Bytes of blocks that came a second time (a race at the end, lost by this copy).
    duplicate: AtomicU64,
    /// Held (shared) by every block write, on its blocking thread: taken whole once the
    /// lanes are aborted, it waits for the writes they left running.
    writes: Arc<tokio::sync::RwLock<()>>,
    pace: tokio::sync::Mutex<Pace>,
    events: mpsc::UnboundedSender<Event>,
    /// Kept so that a run whose every source lost its connection is retried like one.
    last_connection_error: Mutex<Option<ClientError>>,
}

/// A source whose lanes started.
struct Started {
    report: SourceReport,
    /// One of its blocks matched: a bad block after that is a fault of the source, not
    /// another version.
    verified: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        lock(&self.schedule)
    }

    fn remaining(&self) -> u64 {
        self.schedule().remaining()
    }

    fn reports(&self) -> Vec<SourceReport> {
        lock(&self.sources)
            .iter()
            .map(|s| s.report.clone())
            .collect()
    }

    /// Start the lanes of the source at `addr`. A bad block from the source that named the
    /// version (`names_version`) is a fault of that source, even its first one: its blocks
    /// are the list it gave itself, so it is dropped, never taken for "another version".
    fn start_lanes(
        self: &Arc<Self>,
        tasks: &mut JoinSet<Checked>,
        addr: &str,
        pool: Pool,
        names_version: bool,
    ) {
        let id = {
            let mut sources = lock(&self.sources);
            let report = SourceReport {
                source: addr.to_owned(),
                bytes: 0,
                state: SourceState::Used,
            };
            let _ = self.events.send(Event::Source(report.clone()));
            sources.push(Started {
                report,
                verified: names_version,
            });
            sources.len() - 1
        };
        for _ in 0..LANES {
            let (shared, pool) = (self.clone(), pool.clone());
            tasks.spawn(async move {
                shared.lane(id, pool).await;
                Checked::LaneEnded
            });
        }
    }

    fn is_used(&self, id: usize) -> bool {
        lock(&self.sources)[id].report.state == SourceState::Used
    }

    /// Source `id` ends in `state` (only its first ending counts), and the others are told.
    fn end_source(&self, id: usize, state: SourceState) {
        let mut sources = lock(&self.sources);
        let report = &mut sources[id].report;
        if report.state == SourceState::Used {
            report.state = state;
            let _ = self.events.send(Event::Source(report.clone()));
        }
        drop(sources);
        self.wake.notify_waiters();
    }

    /// One request at a time of source `id`: take a block, fetch, verify, write, again.
    async fn lane(&self, id: usize, pool: Pool) {
        let size = self.list.size();
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.is_used(id) {
                return;
            }
            let next = {
                let mut schedule = self.schedule();
                if schedule.remaining() == 0 {
                    return;
                }
                schedule.next(id)
            };
            let Some(k) = next else {
                woken.await;
                continue;
            };
            let (start, end) = block_range(size, k);
            let fetched = pool.pread(&self.path, start, end - start).await;
            let data = match fetched {
                Ok(data) => data,
                Err(e) => {
                    self.schedule().give_back(k, id);
                    let why = e.to_string();
                    if e.is_connection() {
                        *lock(&self.last_connection_error) = Some(e);
                    }
                    self.end_source(id, SourceState::Lost(why));
                    return;
                }
            };
            let n = data.len() as u64;
            // Every byte that crossed the link counts against the limits, a duplicate too.
            self.pace.lock().await.account(n).await;
            if data.len() as u64 != end - start {
                self.received.fetch_add(n, Ordering::Relaxed);
                self.schedule().give_back(k, id);
                let why = format!(
                    "it sent {} bytes of block {k} where {} were asked (its file changed)",
                    data.len(),
                    end - start
                );
                self.end_source(id, SourceState::Lost(why));
                return;
            }
            if self.schedule().is_done(k) {
                self.duplicate.fetch_add(n, Ordering::Relaxed);
                self.schedule().give_back(k, id);
                continue;
            }
            self.received.fetch_add(n, Ordering::Relaxed);
            let (list, file) = (self.list.clone(), self.file.clone());
            let write = self.writes.clone().read_owned().await;
            let written = tokio::task::spawn_blocking(move || {
                let _write = write;
                if !list.check(k, &data) {
                    return Ok(false);
                }
                file.write_all_at(&data, start).map(|()| true)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match written {
                Ok(true) => lock(&self.sources)[id].verified = true,
                Ok(false) => {
                    self.schedule().give_back(k, id);
                    let state = if lock(&self.sources)[id].verified {
                        SourceState::Dropped {
                            block: k,
                            start,
                            end,
                        }
                    } else {
                        SourceState::OtherVersion(format!(
                            "its first block, {k}, does not match the file's BLAKE3"
                        ))
                    };
                    self.end_source(id, state);
                    return;
                }
                Err(e) => {
                    self.schedule().give_back(k, id);
                    let _ = self.events.send(Event::LocalError(e));
                    self.wake.notify_waiters();
                    return;
                }
            }
            if self.schedule().complete(k, id) {
                lock(&self.sources)[id].report.bytes += n;
                let _ = self.events.send(Event::Block(n));
            } else {
                // Another copy won the race: this one was received, but not used.
                self.received.fetch_sub(n, Ordering::Relaxed);
                self.duplicate.fetch_add(n, Ordering::Relaxed);
            }
            self.wake.notify_waiters();
        }
    }
}

/// Bytes of the blocks marked done.
fn bytes_of(list: &BlockHashes, done: &[bool]) -> u64 {
    (0..list.len())
        .filter(|&k| done[k as usize])
        .map(|k| {
            let (s, e) = block_range(list.size(), k);
            e - s
        })
        .sum()
}

/// Open (or create) `.part` at the file's size, with the blocks an earlier run verified that
/// still match: those of a multi-source record of the same version, or the whole blocks of a
/// single-source `.part` (a prefix). Each is checked again from disk.
async fn open_part(
    dir: &Dir,
    part_file: &str,
    record_file: &str,
    list: &Arc<BlockHashes>,
    hash: &str,
) -> Result<(File, Vec<bool>, Option<Restart>), TransferError> {
    let part = dir.display_path(part_file);
    let n = list.len() as usize;
    let size = list.size();
    let on_disk = dir
        .stat(part_file, false)
        .ok()
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .map(|st| st.st_size as u64);
    let mut restarted = None;
    let claimed: Vec<bool> = match (on_disk, BlockRecord::load(dir, record_file)) {
        (None, _) => vec![false; n],
        (Some(_), Some(r)) if r.blake3 == hash && r.size == size && r.done.len() == n => r.done,
        (Some(len), None) if len <= size => (0..n as u64)
            .map(|k| block_range(size, k).1 <= len)
            .collect(),
        (Some(_), _) => {
            restarted = Some(Restart::RemoteChanged);
            vec![false; n]
        }
    };
    let fresh = !claimed.contains(&true);
    let file = match fresh {
        true => dir.create_fresh(part_file),
        false => dir.open_file(part_file, libc::O_RDWR | libc::O_CREAT),
    };
    let file = file.map_err(local(&part))?;
    file.set_len(size).map_err(local(&part))?;
    if fresh {
        return Ok((file, claimed, restarted));
    }
    let list = list.clone();
    let (file, done, kept) = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let done: Vec<bool> = claimed
            .iter()
            .enumerate()
            .map(|(k, &claimed)| {
                let (s, e) = block_range(list.size(), k as u64);
                buf.resize((e - s) as usize, 0);
                claimed && file.read_exact_at(&mut buf, s).is_ok() && list.check(k as u64, &buf)
            })
            .collect();
        let kept = claimed.iter().filter(|&&c| c).count();
        (file, done, kept)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .map_err(local(&part))?;
    let bad = kept - done.iter().filter(|&&d| d).count();
    if bad > 0 {
        tracing::info!(part = %part.display(), bad, "blocks kept from the last attempt did not match: fetching them again");
    }
    Ok((file, done, restarted))
}
