//! `Events`: the share's numbered change log, fed by inotify, read by subscribers.
//!
//! Raw watcher events become [`Event`]s: `created`, `modified` (a burst of writes to one file is
//! coalesced into at most one `modified` per [`COALESCE`]), `deleted`, `closed` (a writer closed
//! the file: "this recording is complete"), renames as `deleted` + `created`, and `resync` when the
//! kernel's queue overflowed (something was lost: re-list). Paths are relative to the share;
//! anything outside it, or not representable on a protocol line, is dropped.
//!
//! The last `capacity` events stay in memory, so a subscriber that reconnects with `since` gets
//! exactly what it missed, or `resync` if that is no longer held. Live delivery uses a bounded
//! broadcast channel: a subscriber that falls behind never blocks the watcher or the others; it
//! gets `resync` and continues from the present.
//!
//! Sequence numbers start at the current Unix time in microseconds, not at 1, so they keep
//! increasing across node restarts without any state on disk: a client's `since` from before a
//! restart is then older than everything held, and it is correctly told `resync`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inotify::EventMask;
use tokio::sync::broadcast;

mod folders;
mod raw_queue;
mod watcher;
use folders::Folders;
use raw_queue::{Next, RawReceiver, raw_queue};
use watcher::Raw;

/// Default number of events kept for replay.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Live events buffered per subscriber before it is considered lagging.
const LIVE_BUFFER: usize = 4096;

/// At most one `modified` per file per this interval.
pub const COALESCE: Duration = Duration::from_millis(500);

/// Raw watcher events queued for the ingest thread before the surplus becomes a `resync`.
const RAW_QUEUE: usize = 65_536;

/// Most entries emitted when scanning a folder that appeared (its files may predate the watch).
const SCAN_LIMIT: usize = 10_000;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Modified,
    Deleted,
    Closed,
    /// Events were lost: the subscriber should re-list.
    Resync,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Modified => "modified",
            EventKind::Deleted => "deleted",
            EventKind::Closed => "closed",
            EventKind::Resync => "resync",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "created" => EventKind::Created,
            "modified" => EventKind::Modified,
            "deleted" => EventKind::Deleted,
            "closed" => EventKind::Closed,
            "resync" => EventKind::Resync,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a change happened, when meshfs itself made it (a user's or a camera's own changes
/// carry none). Old clients never see it: the plain `subscribe` line is unchanged, and only a
/// subscriber that asks (`subscribe [SINCE] reasons`, protocols.md §1) gets `KIND:REASON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The node's retention rules removed the file (`deleted:retention`).
    Retention,
    /// Replication kept a second version under a conflict name (`created:conflict`).
    Conflict,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Retention => "retention",
            Reason::Conflict => "conflict",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Some(match s {
            "retention" => Reason::Retention,
            "conflict" => Reason::Conflict,
            _ => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One numbered change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub kind: EventKind,
    /// Relative to the share; empty for `resync`.
    pub path: String,
    /// Set when meshfs made the change itself, and why.
    pub reason: Option<Reason>,
}

impl Event {
    /// An event without a reason (what the watcher sees of everyone's changes).
    pub fn new(seq: u64, kind: EventKind, path: impl Into<String>) -> Event {
        Event {
            seq,
            kind,
            path: path.into(),
            reason: None,
        }
    }

    /// The wire form for a subscriber that asked for reasons: `<seq> <kind>[:<reason>] <path>`.
    pub fn line_with_reason(&self) -> String {
        match self.reason {
            Some(r) if !self.path.is_empty() => {
                format!("{} {}:{} {}", self.seq, self.kind, r, self.path)
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Event {
    /// The wire form every client understands, `<seq> <kind> <path>` (`<seq> resync` without
    /// a path): the reason is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} {}", self.seq, self.kind)
        } else {
            write!(f, "{} {} {}", self.seq, self.kind, self.path)
        }
    }
}

/// A line of a subscription stream, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLine {
    Event(Event),
    Ping(u64),
}

impl StreamLine {
    /// Parse `<seq> <kind>[:<reason>] [<path>]` or `<seq> ping`. A reason this version does
    /// not know is dropped, the event kept.
    pub fn parse(line: &str) -> Option<StreamLine> {
        let (seq, rest) = line.split_once(' ')?;
        let seq = seq.parse().ok()?;
        if rest == "ping" {
            return Some(StreamLine::Ping(seq));
        }
        let (kind, path) = rest.split_once(' ').unwrap_or((rest, ""));
        let (kind, reason) = match kind.split_once(':') {
            Some((kind, reason)) => (kind, Reason::parse(reason)),
            None => (kind, None),
        };
        Some(StreamLine::Event(Event {
            seq,
            kind: EventKind::parse(kind)?,
            path: path.to_owned(),
            reason,
        }))
    }
}

/// What [`Events::subscribe`] hands a new subscriber.
pub struct Subscribed {
    /// The latest sequence number when subscribing: everything up to it is either in `replay`
    /// or was before `since`.
    pub last: u64,
    /// Missed events to send first (or one `resync`).
    pub replay: Vec<Event>,
    /// Everything after `last`, live.
    pub live: broadcast::Receiver<Event>,
}

/// The change log of one share. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    log: Mutex<Log>,
    live: broadcast::Sender<Event>,
    /// Raw changes the watch took from the kernel, whether or not they became events (see
    /// [`Events::raw_changes`]).
    raw_changes: AtomicU64,
}

struct Log {
    events: VecDeque<Event>,
    capacity: usize,
    /// The number the next event gets.
    next_seq: u64,
    /// Last `modified` (or `created`) emitted per path, for coalescing.
    recent: HashMap<String, Instant>,
    /// Reasons announced by [`Events::annotate`] for a change about to be seen, and when.
    notes: HashMap<(EventKind, String), (Reason, Instant)>,
}

/// How long an announced reason waits for its change to be seen.
const NOTE_TTL: Duration = Duration::from_secs(30);

/// Most reasons waiting at once (a change that never came must not pile up).
const MAX_NOTES: usize = 4096;

/// Keeps the share's watch alive; dropping it stops watching (its threads end).
pub struct WatchGuard {
    _stop: watcher::Stop,
}

impl Events {
    /// An empty log keeping `capacity` events.
    pub fn new(capacity: usize) -> Events {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Events {
            inner: Arc::new(Inner {
                log: Mutex::new(Log {
                    events: VecDeque::with_capacity(capacity.min(4096)),
                    capacity: capacity.max(1),
                    next_seq: start,
                    recent: HashMap::new(),
                    notes: HashMap::new(),
                }),
                live,
                raw_changes: AtomicU64::new(0),
            }),
        }
    }

    /// Watch `root` (recursively, including folders created later) and feed this log.
    ///
    /// One thread reads the share's inotify instance and only queues what it reads
    /// (`events/watcher.rs`); one ingest thread turns it into log events in order. The ingest
    /// thread adds the watches itself (a new folder is watched before it is reported), so the
    /// reading thread never waits on it.
    pub fn watch(&self, root: &Path) -> std::io::Result<WatchGuard> {
        let root = root.canonicalize()?;
        // The reading thread never blocks: what does not fit is lost, and the ingest thread says
        // `resync` once it has drained what came before (see `Ingest::run`).
        let (tx, rx) = raw_queue::<Raw>(RAW_QUEUE);
        let (watches, stop) = watcher::start(tx)?;
        // The share itself must be watched; each folder beneath it is watched on its own, so
        // one that cannot be (unreadable, the watch limit) costs only its own events.
        let mut folders = Folders::new(watches);
        folders.watch_root(&root)?;
        folders.watch_tree(&root, |_| {});
        let ingest = Ingest {
            events: self.clone(),
            root,
            folders,
            loss: None,
        };
        std::thread::Builder::new()
            .name("meshfs-events".into())
            .spawn(move || ingest.run(rx))?;
        Ok(WatchGuard { _stop: stop })
    }

    /// Raw changes the watch has taken from the kernel so far, whether or not they became
    /// events (`meshfs_watch_raw_changes_total`): each one woke the watch's threads. Reading
    /// files adds none.
    pub fn raw_changes(&self) -> u64 {
        self.inner.raw_changes.load(Ordering::Relaxed)
    }

    /// The sequence number of the latest event (or just below the first one to come).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Say why the next `kind` event for `path` is about to happen, before making the change
    /// (meshfs's own deletions and conflict copies): the watcher sees the change like any
    /// other, and the event it logs carries `reason`. Forgotten after [`NOTE_TTL`].
    pub fn annotate(&self, kind: EventKind, path: &str, reason: Reason) {
        let mut log = self.lock();
        if log.notes.len() >= MAX_NOTES {
            log.notes.retain(|_, (_, at)| at.elapsed() < NOTE_TTL);
            if log.notes.len() >= MAX_NOTES {
                return;
            }
        }
        log.notes
            .insert((kind, path.to_owned()), (reason, Instant::now()));
    }

    /// Take back an announced reason whose change did not happen (the removal failed).
    pub fn forget(&self, kind: EventKind, path: &str) {
        self.lock().notes.remove(&(kind, path.to_owned()));
    }

    /// Record an event and deliver it to live subscribers.
    pub fn push(&self, kind: EventKind, path: String) {
        let mut log = self.lock();
        let now = Instant::now();
        if matches!(kind, EventKind::Modified | EventKind::Created) && log.recent.len() >= 4096 {
            // Only entries younger than COALESCE matter: the map stays as small as a burst.
            log.recent
                .retain(|_, at| now.duration_since(*at) < COALESCE);
        }
        if kind == EventKind::Modified {
            if let Some(at) = log.recent.get(&path)
                && now.duration_since(*at) < COALESCE
            {
                return;
            }
            log.recent.insert(path.clone(), now);
        } else if kind == EventKind::Created {
            // A new file's first writes are part of its creation.
            log.recent.insert(path.clone(), now);
        } else {
            log.recent.remove(&path);
        }
        let reason = if log.notes.is_empty() {
            None
        } else {
            log.notes
                .remove(&(kind, path.clone()))
                .filter(|(_, at)| at.elapsed() < NOTE_TTL)
                .map(|(r, _)| r)
        };
        let event = Event {
            seq: log.next_seq,
            kind,
            path,
            reason,
        };
        log.next_seq += 1;
        if log.events.len() >= log.capacity {
            log.events.pop_front();
        }
        log.events.push_back(event.clone());
        crate::metrics::metrics().event(kind == EventKind::Closed);
        // Sent under the lock so that `subscribe` sees each event exactly once, either in the
        // replay or live. No receivers is fine.
        let _ = self.inner.live.send(event);
    }

    /// Live subscribers at this moment (file-server `subscribe`s, the MQTT bridge, …).
    pub fn subscribers(&self) -> usize {
        self.inner.live.receiver_count()
    }

    /// Subscribe: the latest sequence number at this instant, the events after `since` that are
    /// still held (or a `resync` marker if some are not), then a live receiver for what
    /// follows. Replay and live never overlap nor leave a gap.
    pub fn subscribe(&self, since: Option<u64>) -> Subscribed {
        let log = self.lock();
        let live = self.inner.live.subscribe();
        let last = log.next_seq - 1;
        let Some(since) = since else {
            return Subscribed {
                last,
                replay: Vec::new(),
                live,
            };
        };
        let oldest = log.events.front().map_or(log.next_seq, |e| e.seq);
        let replay = if since > last || since + 1 < oldest {
            vec![Event::new(last, EventKind::Resync, "")]
        } else {
            let skip = log.events.partition_point(|e| e.seq <= since);
            log.events.iter().skip(skip).cloned().collect()
        };
        Subscribed { last, replay, live }
    }

    /// Record `created` unless this path was reported as created (or modified) a moment ago.
    fn push_created_once(&self, path: String) {
        let fresh = {
            let log = self.lock();
            log.recent
                .get(&path)
                .is_none_or(|at| at.elapsed() >= COALESCE)
        };
        if fresh {
            self.push(EventKind::Created, path);
        }
    }
}

/// The ingest thread: raw changes in, log events out. It ends with the reading thread (which
/// holds the only sender).
struct Ingest {
    events: Events,
    root: PathBuf,
    /// The folders watched, and those that could not be; adds and removes the watches.
    folders: Folders,
    /// Changes were lost (the kernel's queue or ours overflowed) and the share is not walked
    /// yet: raw changes taken since. One burst usually tells both overflows, and a walk of a
    /// big share is long enough to overflow the queue again, so the walk waits for the queue
    /// to drain (or to turn over once, if it never does) and is made once for them all.
    loss: Option<usize>,
}

impl Ingest {
    fn run(mut self, rx: RawReceiver<Raw>) {
        loop {
            if let Some(taken) = self.loss
                && (rx.drained() || taken >= RAW_QUEUE)
            {
                // The walk covers every loss told so far; one during the walk is told again.
                rx.take_loss();
                self.loss = None;
                self.lost();
            }
            let next = rx.next();
            if let Next::Item(_) = next {
                self.events
                    .inner
                    .raw_changes
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(taken) = &mut self.loss {
                    *taken += 1;
                }
            }
            match next {
                Next::Item(Raw::Change { wd, mask, name }) => self.change(wd, mask, name),
                // The kernel dropped changes (its queue was full): as below.
                Next::Item(Raw::Overflow) => self.loss = Some(self.loss.unwrap_or(0)),
                Next::Item(Raw::Failed(e)) => {
                    tracing::error!(error = %e, "the share's watch stopped: no more file events");
                    self.events.push(EventKind::Resync, String::new());
                }
                // Lost changes came after everything queued before them: one `resync`, after
                // those (once the queue is drained), so a subscriber re-lists once and no
                // stale event follows.
                Next::Lost => self.loss = Some(self.loss.unwrap_or(0)),
                Next::Closed => return,
            }
        }
    }

    /// Changes were lost. Among them may be folders made meanwhile, which nothing watches yet:
    /// the share is walked again (watches already there stay as they are) before subscribers
    /// are told `resync`, so that what they re-list is watched.
    fn lost(&mut self) {
        let root = self.root.clone();
        self.folders.watch_tree(&root, |_| {});
        self.events.push(EventKind::Resync, String::new());
    }

    /// Turn one raw change (in the folder watched as `wd`: to `name`, or to the folder itself)
    /// into zero or more log events.
    fn change(&mut self, wd: i32, mask: EventMask, name: Option<std::ffi::OsString>) {
        if mask.contains(EventMask::IGNORED) {
            self.folders.watch_ended(wd);
            return;
        }
        // A watch removed since (its folder moved away or deleted): nothing left to say.
        let Some(dir) = self.folders.path_of(wd) else {
            return;
        };
        let path = match &name {
            Some(name) => dir.join(name),
            None => dir.to_owned(),
        };
        let events = &self.events.clone();
        let rel = relative(&self.root, &path);
        // A folder's own `MOVE_SELF` is not reported: its parent's `MOVED_FROM` was.
        if mask.contains(EventMask::MOVED_FROM) {
            self.folders.forget(&path);
            if let Some(r) = rel.clone() {
                events.push(EventKind::Deleted, r);
            }
        }
        if mask.contains(EventMask::MOVED_TO) {
            if is_real_dir(&path) {
                self.new_folder(&path);
            } else if let Some(r) = rel.clone() {
                events.push(EventKind::Created, r);
            }
        }
        if mask.contains(EventMask::CREATE) {
            if mask.contains(EventMask::ISDIR) || is_real_dir(&path) {
                self.new_folder(&path);
            } else if let Some(r) = rel.clone() {
                events.push_created_once(r);
            }
        }
        // A watched folder's deletion comes twice (from its parent, and its own
        // `DELETE_SELF`): logged once.
        if mask.intersects(EventMask::DELETE | EventMask::DELETE_SELF) {
            let folder = self.folders.forget(&path);
            let of_folder = mask.intersects(EventMask::ISDIR | EventMask::DELETE_SELF);
            if (folder || !of_folder)
                && let Some(r) = rel.clone()
            {
                events.push(EventKind::Deleted, r);
            }
        }
        if mask.contains(EventMask::MODIFY)
            && let Some(r) = rel.clone()
        {
            events.push(EventKind::Modified, r);
        }
        if mask.contains(EventMask::CLOSE_WRITE)
            && let Some(r) = rel.clone()
        {
            events.push(EventKind::Closed, r);
        }
        // A folder that could not be watched changed permissions: it may be watchable now.
        if mask.contains(EventMask::ATTRIB)
            && self.folders.is_unwatched(&path)
            && is_real_dir(&path)
        {
            self.watch_and_report(&path, false);
        }
    }

    /// A folder appeared. The watcher reports it *before* it watches it, so a subscriber told
    /// `created <dir>` at once could write into it and never hear of that file. Hence: watch it
    /// first (waits until the kernel watch exists), then report it, then report what it already
    /// holds (`mkdir -p a/b && touch a/b/c` beats any watcher). Later entries come from the
    /// watch; paths reported twice are deduplicated by `push_created_once`.
    ///
    /// A file written *and closed* before its folder was watched is reported `created` only: its
    /// `closed` happened where nobody could see it.
    fn new_folder(&mut self, dir: &Path) {
        if !is_real_dir(dir) {
            // Gone already, or a symlink: never watched nor scanned (it could lead anywhere).
            // A folder gone already is still known, so that its deletion is reported.
            self.folders.note(dir);
            if let Some(r) = relative(&self.root, dir) {
                self.events.push_created_once(r);
            }
            return;
        }
        self.watch_and_report(dir, true);
    }

    /// Watch `dir` and the folders beneath it, and report what they already hold (and `dir`
    /// itself if `with_dir`), each once its folder is watched.
    fn watch_and_report(&mut self, dir: &Path, with_dir: bool) {
        let (events, root) = (&self.events, &self.root);
        let mut seen = 0;
        self.folders.watch_tree(dir, |path| {
            if path == dir {
                if with_dir && let Some(r) = relative(root, path) {
                    events.push_created_once(r);
                }
                return;
            }
            seen += 1;
            if seen == SCAN_LIMIT + 1 {
                events.push(EventKind::Resync, String::new());
            }
            if seen <= SCAN_LIMIT
                && let Some(r) = relative(root, path)
            {
                events.push_created_once(r);
            }
        });
    }
}

/// A folder itself, not a symlink to one: `Path::is_dir` follows links, and a link to `/`
/// must never be watched or scanned.
fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// `path` relative to `root`, if it is inside and can be named on a protocol line.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    if rel.is_empty() || rel.contains(['\n', '\r']) {
        return None;
    }
    Some(rel.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_since_and_resync() {
        let ev = Events::new(3);
        let base = ev.last_seq();
        for i in 0..5 {
            ev.push(EventKind::Created, format!("f{i}"));
        }
        // Held: f2, f3, f4.
        let replay = ev.subscribe(Some(base + 3)).replay;
        assert_eq!(
            replay.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["f3", "f4"]
        );
        let replay = ev.subscribe(Some(base + 1)).replay;
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].kind, EventKind::Resync);
        let replay = ev.subscribe(Some(base + 5)).replay;
        assert!(replay.is_empty());
        // A `since` from the future (another epoch) is a resync too.
        let replay = ev.subscribe(Some(base + 50)).replay;
        assert_eq!(replay[0].kind, EventKind::Resync);
    }

    #[test]
    fn modified_bursts_coalesce() {
        let ev = Events::new(100);
        let mut rx = ev.subscribe(None).live;
        ev.push(EventKind::Modified, "a".into());
        ev.push(EventKind::Modified, "a".into());
        ev.push(EventKind::Modified, "b".into());
        ev.push(EventKind::Closed, "a".into());
        ev.push(EventKind::Modified, "a".into());
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| format!("{} {}", e.kind, e.path))
            .collect();
        assert_eq!(
            kinds,
            ["modified a", "modified b", "closed a", "modified a"]
        );
    }

    #[test]
    fn annotated_changes_carry_their_reason_once() {
        let ev = Events::new(100);
        let mut rx = ev.subscribe(None).live;
        ev.annotate(EventKind::Deleted, "old.mp4", Reason::Retention);
        ev.push(EventKind::Created, "old.mp4".into());
        ev.push(EventKind::Deleted, "old.mp4".into());
        ev.push(EventKind::Deleted, "old.mp4".into());
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got[0].reason, None);
        assert_eq!(got[1].reason, Some(Reason::Retention));
        assert_eq!(got[2].reason, None);
        // The plain line never shows it; the opted-in one does.
        assert_eq!(
            got[1].to_string(),
            format!("{} deleted old.mp4", got[1].seq)
        );
        assert_eq!(
            got[1].line_with_reason(),
            format!("{} deleted:retention old.mp4", got[1].seq)
        );
        ev.annotate(EventKind::Deleted, "x", Reason::Retention);
        ev.forget(EventKind::Deleted, "x");
        ev.push(EventKind::Deleted, "x".into());
        assert_eq!(rx.try_recv().unwrap().reason, None);
    }

    /// Threads of this process with the watch's names (nextest runs each test in a process
    /// of its own).
    fn watch_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| matches!(comm.trim(), "meshfs-watch" | "meshfs-events"))
            .count()
    }

    /// Dropping the guard ends the watch: both its threads end (the reading one is woken
    /// even though no change comes), and its inotify instance is closed with them.
    #[test]
    fn dropping_the_guard_ends_the_watch_threads() {
        // Counting the process's watch threads is sound only because each test runs in its
        // own process (nextest): under `cargo test` another test's watch would be counted.
        let dir = tempfile::tempdir().unwrap();
        let before = watch_threads();
        let ev = Events::new(100);
        let until = |want: usize, what: &str| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while watch_threads() != want {
                assert!(Instant::now() < deadline, "{what}: {}", watch_threads());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let guard = ev.watch(dir.path()).unwrap();
        // A thread takes its name once it runs.
        until(before + 2, "the watch's threads never showed");
        drop(guard);
        until(before, "the watch's threads still run");
    }

    #[test]
    fn stream_lines_parse() {
        assert_eq!(StreamLine::parse("7 ping"), Some(StreamLine::Ping(7)));
        assert_eq!(
            StreamLine::parse("8 created a b.mp4"),
            Some(StreamLine::Event(Event::new(
                8,
                EventKind::Created,
                "a b.mp4"
            )))
        );
        let retained = StreamLine::parse("10 deleted:retention a b.mp4");
        assert_eq!(
            retained,
            Some(StreamLine::Event(Event {
                reason: Some(Reason::Retention),
                ..Event::new(10, EventKind::Deleted, "a b.mp4")
            }))
        );
        assert_eq!(
            StreamLine::parse("11 deleted:future a"),
            Some(StreamLine::Event(Event::new(11, EventKind::Deleted, "a")))
        );
        assert_eq!(
            StreamLine::parse("9 resync")
                .map(|l| matches!(l, StreamLine::Event(e) if e.kind == EventKind::Resync)),
            Some(true)
        );
        assert_eq!(StreamLine::parse("x created a"), None);
        assert_eq!(StreamLine::parse("1 exploded a"), None);
    }
}
